package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/uptrace/bun"

	"github.com/auraos/realtime/cmd/auraos/app"
	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/sqlstore"
	"github.com/auraos/realtime/projections"
	// Named payload: the package's tests have a helper called wire.
	payload "github.com/auraos/realtime/socketadapter/wire"
)

// queryOptions are the flags of `auraos query MODEL`.
type queryOptions struct {
	storage    app.Storage
	at         string
	atPosition string
	format     string
	room       string
	// now is the clock that tells a past --at from a future one.
	now func() time.Time
}

// readModel is one model `auraos query` prints: the projection that keeps
// it and how its answer is read and printed.
type readModel struct {
	name       string
	projection projections.Projection
	// answer reads the model from db as the socket would send it.
	answer func(ctx context.Context, db bun.IDB, o queryOptions) (any, error)
	// table prints the answer as aligned columns.
	table func(tw io.Writer, answer any)
}

// appStatusAnswer is `query app-status` in JSON: the counts of
// system_status_update, then each app as app_updated gives it.
type appStatusAnswer struct {
	payload.AppTotals
	Apps []payload.AppUpdated `json:"apps"`
}

// readModels are the models of `auraos query`, in the order help lists them.
var readModels = []readModel{
	{
		name: "online-users", projection: projections.OnlineUsers{},
		answer: func(ctx context.Context, db bun.IDB, _ queryOptions) (any, error) {
			users, err := projections.OnlineUsersQuery{DB: db}.Handle(ctx)
			return payload.OnlineUsers(users), err
		},
		table: func(tw io.Writer, a any) {
			fmt.Fprintln(tw, "USER\tSOCKET\tSTATUS\tCONNECTED AT\tLAST SEEN\tEMAIL\tNAME")
			for _, u := range a.([]payload.OnlineUser) {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", u.ID, u.SocketID, u.Status, u.ConnectedAt, u.LastSeen, u.UserProfile.Email, u.UserProfile.DisplayName)
			}
		},
	},
	{
		name: "chat-history", projection: projections.ChatHistory{},
		answer: func(ctx context.Context, db bun.IDB, o queryOptions) (any, error) {
			msgs, err := projections.ChatHistoryQuery{DB: db}.Handle(ctx, o.room, eventstore.Start, projections.HistoryLimit)
			return payload.History(msgs), err
		},
		table: func(tw io.Writer, a any) {
			fmt.Fprintln(tw, "TIME\tUSER\tNAME\tTYPE\tID\tMESSAGE")
			for _, m := range a.([]payload.Message) {
				// The message goes last and on one line, so a long or
				// multi-line one leaves the other columns aligned.
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.Timestamp, m.UserID, m.UserName, m.MessageType, m.ID, strings.Join(strings.Fields(m.Message), " "))
			}
		},
	},
	{
		name: "app-status", projection: projections.AppStatus{},
		answer: func(ctx context.Context, db bun.IDB, _ queryOptions) (any, error) {
			apps, err := projections.AppsQuery{DB: db}.Handle(ctx)
			if err != nil {
				return nil, err
			}
			totals, err := projections.AppTotalsQuery{DB: db}.Handle(ctx)
			return appStatusAnswer{AppTotals: payload.Totals(totals), Apps: payload.Apps(apps)}, err
		},
		table: func(tw io.Writer, a any) {
			s := a.(appStatusAnswer)
			fmt.Fprintln(tw, "APP\tSTATUS\tUPDATED AT")
			for _, app := range s.Apps {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", app.AppID, app.Status, app.UpdatedAt)
			}
			fmt.Fprintf(tw, "\ntotal %d\tactive %d\tinactive %d\n", s.TotalApps, s.ActiveApps, s.InactiveApps)
		},
	},
}

func newQueryCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "query",
		Short: "Print a read model now, or as it was at a past moment",
		Long: `Print a read model (online-users, chat-history --room R, app-status) as a client
would get it. Without --at or --at-position it reads the live read database, opened
read-only: nothing is created or changed. With one of them it folds the event log up to
that moment, with the projections' own code, into a temporary in-memory database and
prints exactly what live processing held then.

--at-position N takes the events at positions up to N. --at TIME (RFC 3339) takes the
log up to its first event committed after TIME: commit times are compared as instants
(any offset), at the store's microsecond precision, and an event committed exactly at
TIME is in. A moment before the first event prints an empty model.

--format json (the default) prints the protocol's payload: online_users, chat_history,
or for app-status the counts of system_status_update with each app as app_updated
gives it. --format table prints aligned columns. The position the answer stands at goes
to standard error.`,
	}
	for _, m := range readModels {
		cmd.AddCommand(newQueryModelCommand(m))
	}
	return cmd
}

func newQueryModelCommand(m readModel) *cobra.Command {
	o := queryOptions{now: time.Now}
	short := map[string]string{
		"online-users": "Print the online users (the online_users payload)",
		"chat-history": "Print a room's last 50 messages (the chat_history payload)",
		"app-status":   "Print every app's status and the counts of system_status_update",
	}[m.name]
	cmd := &cobra.Command{
		Use:   m.name,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runQuery(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), m.name, o)
		},
	}
	o.storage.Register(cmd.Flags())
	cmd.Flags().StringVar(&o.at, "at", "", "as it was at this RFC 3339 time (the log up to its first event committed after it)")
	cmd.Flags().StringVar(&o.atPosition, "at-position", "", "as it was with the events at positions up to this one")
	cmd.Flags().StringVar(&o.format, "format", "json", "output format: json or table")
	if m.name == "chat-history" {
		cmd.Flags().StringVar(&o.room, "room", "", "the chat room (required)")
	}
	return cmd
}

// runQuery prints the model named. Errors are coded: EINVALID for a bad
// flag, a moment after the log's head or in the future; EUNAVAILABLE when
// a database cannot be read or the live model is missing or stale.
func runQuery(ctx context.Context, out, note io.Writer, name string, o queryOptions) error {
	var model readModel
	for _, m := range readModels {
		if m.name == name {
			model = m
		}
	}
	if model.answer == nil {
		return domain.Errorf(domain.EINVALID, "unknown read model %q (known: online-users, chat-history, app-status)", name)
	}
	if o.format != "json" && o.format != "table" {
		return domain.Errorf(domain.EINVALID, "--format %q: want json or table", o.format)
	}
	if name == "chat-history" {
		if o.room == "" {
			return domain.Errorf(domain.EINVALID, "chat-history needs --room")
		}
		if err := domain.CheckRoomName("--room", o.room); err != nil {
			return err
		}
	}
	if o.at != "" && o.atPosition != "" {
		return domain.Errorf(domain.EINVALID, "give --at or --at-position, not both")
	}
	if o.now == nil {
		o.now = time.Now
	}

	var (
		db      bun.IDB
		through eventstore.Position
		source  string
	)
	if o.at == "" && o.atPosition == "" {
		live, cp, err := openLiveModel(ctx, o.storage, model.projection)
		if err != nil {
			return err
		}
		defer live.Close()
		db, through, source = live, cp, "the live read model"
	} else {
		cut, atPosition, err := queryCut(o)
		if err != nil {
			return err
		}
		folded, res, err := foldModel(ctx, o.storage, model.projection, cut, atPosition)
		if err != nil {
			return err
		}
		defer folded.Close()
		db, through = folded, res.Through
		source = fmt.Sprintf("the log folded up to %s (%d events)", cut, res.Events)
	}
	answer, err := model.answer(ctx, db, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(note, "%s at position %s, from %s\n", model.name, through, source)
	if o.format == "table" {
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		model.table(tw, answer)
		return tw.Flush()
	}
	b := payload.Encode(answer)
	_, err = out.Write(append(b, '\n'))
	return err
}

// queryCut reads --at or --at-position, and returns the position too when
// one was given. A time after now is refused, since its answer would keep
// changing as events arrive.
func queryCut(o queryOptions) (projections.Cut, *eventstore.Position, error) {
	if o.atPosition != "" {
		p, err := parsePosition("--at-position", o.atPosition)
		return projections.AtPosition(p), &p, err
	}
	t, err := parseTime("--at", o.at)
	if err != nil {
		return projections.Cut{}, nil, err
	}
	if now := o.now(); t.After(now) {
		return projections.Cut{}, nil, domain.Errorf(domain.EINVALID, "--at %s is in the future (now %s): only past moments have a state", t.Format(time.RFC3339Nano), now.UTC().Format(time.RFC3339))
	}
	return projections.AtTime(t), nil, nil
}

// openLiveModel opens the live read database read-only and returns where
// p's tables stand, refusing a model that never ran or that another version
// of the code wrote (EUNAVAILABLE).
func openLiveModel(ctx context.Context, storage app.Storage, p projections.Projection) (*bun.DB, eventstore.Position, error) {
	rdb, err := storage.OpenReadDBReadOnly(ctx)
	if err != nil {
		return nil, eventstore.Start, err
	}
	db := rdb.Reader
	cp, ok, err := projections.CheckpointQuery{DB: db}.Handle(ctx, p)
	switch {
	case err != nil:
		err = domain.WrapError(domain.EUNAVAILABLE, "the read database holds no read models (run auraos migrate or serve on it first)", err)
	case !ok:
		err = domain.Errorf(domain.EUNAVAILABLE, "%s has never run on this read database: start auraos serve, or run auraos projections rebuild %s, or ask for a past moment with --at", p.Name(), p.Name())
	case cp.Version != p.Version():
		err = domain.WrapError(domain.EUNAVAILABLE, fmt.Sprintf("%s was written by version %d of its code, this is version %d: run auraos projections rebuild %s", p.Name(), cp.Version, p.Version(), p.Name()), projections.ErrNeedsRebuild)
	}
	if err != nil {
		db.Close()
		return nil, eventstore.Start, err
	}
	return db, cp.Position, nil
}

// foldModel folds the log up to cut into a temporary database. A position
// past the log's head is refused (EINVALID): the log never stood there.
func foldModel(ctx context.Context, storage app.Storage, p projections.Projection, cut projections.Cut, atPosition *eventstore.Position) (*bun.DB, projections.FoldResult, error) {
	store, err := storage.OpenLogReadOnly(ctx, sqlstore.Options{})
	if err != nil {
		return nil, projections.FoldResult{}, err
	}
	defer store.Close()
	if atPosition != nil {
		head, err := store.Head(ctx)
		if err != nil {
			return nil, projections.FoldResult{}, err
		}
		if head.Less(*atPosition) {
			return nil, projections.FoldResult{}, domain.Errorf(domain.EINVALID, "--at-position %s is past the head of the log (%s)", atPosition, head)
		}
	}
	return projections.FoldInMemory(ctx, store, []projections.Projection{p}, cut)
}
