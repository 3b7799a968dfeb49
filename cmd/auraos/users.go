package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/user"
	"time"

	"github.com/spf13/cobra"

	"github.com/auraos/realtime/cmd/auraos/app"
	"github.com/auraos/realtime/cmd/auraos/eventfilter"
	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/shred"
	"github.com/auraos/realtime/eventstore/sqlstore"
	"github.com/auraos/realtime/projections"
)

func newUsersCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "users",
		Short: "Manage users as data subjects (forget a user)",
	}
	cmd.AddCommand(newUsersForgetCommand())
	return cmd
}

// forgetOptions are the flags of `users forget`.
type forgetOptions struct {
	storage app.Storage
	reason  string
	by      string
	now     func() time.Time
}

func newUsersForgetCommand() *cobra.Command {
	o := forgetOptions{now: time.Now}
	cmd := &cobra.Command{
		Use:   "forget UID",
		Short: "Erase a user's personal data: delete their keys and record who asked and why",
		Long: `Erase the personal data of user UID (GDPR art. 17) without rewriting the log: delete
the user's data keys, so every personal field encrypted under them (profile email,
display name and photo, message texts, the notifications they sent) reads from now
on as a fixed placeholder on every read path; append a UserForgotten event (stream
user-UID) saying who asked (--by) and why (--reason); and rewrite the read-model
rows and recoverable sessions that held the user's data. It works while a server
runs (its projections rewrite their rows when they read the event) and when none
does. On PostgreSQL the touched tables are vacuumed.

It prints how many of the user's events were encrypted (now unreadable) and how
many predate encryption: those are stored in clear and stay in the log's files,
although every read path shows them as erased too.

A user who connects again afterwards is a new person with a new key. Forget users
after they have disconnected: a session open at this moment keeps their profile in
the server's memory until it ends.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runForget(cmd.Context(), cmd.OutOrStdout(), o, args[0])
		},
	}
	o.storage.Register(cmd.Flags())
	cmd.Flags().StringVar(&o.reason, "reason", "", "why the user is forgotten (required; stored in clear in the log, so no personal data)")
	cmd.Flags().StringVar(&o.by, "by", "", "who asked, recorded in the event and its metadata (default: the operating-system user running the command)")
	return cmd
}

// operator is the default --by: the operating-system user.
func operator() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if name := os.Getenv("USER"); name != "" {
		return name
	}
	return "unknown-operator"
}

func runForget(ctx context.Context, out io.Writer, o forgetOptions, uid string) error {
	if o.by == "" {
		o.by = operator()
	}
	e, err := domain.ForgetUser(uid, o.reason, o.by, o.now())
	if err != nil {
		return err
	}
	store, rdb, err := o.storage.Open(ctx, sqlstore.Options{})
	if err != nil {
		return err
	}
	defer rdb.Close()
	defer store.Close()

	encrypted, clear, err := countPersonalEvents(ctx, store.Inner(), uid)
	if err != nil {
		return err
	}
	keys, err := store.Forget(ctx, uid)
	if err != nil {
		return err
	}
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	meta, err := json.Marshal(domain.Metadata{UserID: o.by, Command: "users_forget", CorrelationID: eventstore.NewID()})
	if err != nil {
		return err
	}
	res, err := store.Append(ctx, e.Stream(), eventstore.Any, eventstore.EventData{Type: e.EventType(), Data: data, Metadata: meta})
	if err != nil {
		return fmt.Errorf("the keys of %s are deleted, but recording the UserForgotten failed (run the command again): %w", uid, err)
	}
	// The running server's projections do the same when they read the
	// event; doing it here too means it happens when none runs.
	if err := projections.ForgetUser(ctx, rdb.Writer, uid); err != nil {
		return err
	}
	sessions, err := projections.RecoverySessions{DB: rdb.Writer}.ForgetUser(ctx, uid)
	if err != nil {
		return err
	}
	if k, ok := keysOf(ctx, o.storage, rdb); ok {
		if err := k.Vacuum(ctx, "chat_messages", "online_sessions", "chat_members", "recovery_sessions"); err != nil {
			return err
		}
	}
	_, err = fmt.Fprintf(out, "forgot %s at position %v (asked by %s): %d keys deleted; %d events encrypted, now unreadable; %d events predate encryption (stored in clear, shown as erased); %d recoverable sessions rewritten\n",
		uid, res.LastPosition(), o.by, keys, encrypted, clear, sessions)
	return err
}

// keysOf returns the SQL key table of rdb, when it has one.
func keysOf(ctx context.Context, storage app.Storage, rdb app.ReadDB) (*shred.SQLKeys, bool) {
	k, err := storage.Keys(ctx, rdb)
	if err != nil {
		return nil, false
	}
	sk, ok := k.(*shred.SQLKeys)
	return sk, ok
}

// countPersonalEvents counts the events of raw whose personal data is
// about uid: stored encrypted, and stored in clear.
func countPersonalEvents(ctx context.Context, raw eventstore.Store, uid string) (encrypted, clear int, err error) {
	var types []string
	for _, t := range domain.EventTypes() {
		if _, ok := domain.PersonalDataOf(t); ok {
			types = append(types, t)
		}
	}
	const page = 1000
	from := eventstore.Start
	for {
		evs, err := raw.ReadAll(ctx, eventstore.ReadAllOptions{From: from, Limit: page, Filter: eventstore.Filter{EventTypes: types}})
		if err != nil {
			return 0, 0, err
		}
		for _, e := range evs {
			switch subject, state := shred.Inspect(e.Type, e.Data); {
			case subject != uid:
			case state == shred.Encrypted:
				encrypted++
			case state == shred.Clear:
				clear++
			}
		}
		if len(evs) < page {
			return encrypted, clear, nil
		}
		from = eventfilter.Next(evs[len(evs)-1].Position)
	}
}
