package projections

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/uptrace/bun"

	"github.com/auraos/realtime/domain"
)

// OnlineUsers is the online-users projection: the live sessions (sockets that
// joined presence) with their profile, status, connectedAt and lastSeen, and
// the chat rooms each session has joined. A user is online while one of
// their sessions lives.
type OnlineUsers struct{}

// Name implements Projection.
func (OnlineUsers) Name() string { return "online-users" }

// Version implements Projection.
func (OnlineUsers) Version() int { return 1 }

// Tables implements Projection.
func (OnlineUsers) Tables() []string { return []string{"online_sessions", "chat_members"} }

// EventTypes implements Projection. Messages move lastSeen; a forgotten
// user's profile is rewritten.
func (OnlineUsers) EventTypes() []string {
	return []string{domain.TypePresenceJoined, domain.TypePresenceLeft, domain.TypeChatMemberJoined, domain.TypeChatMemberLeft, domain.TypeMessagePosted,
		domain.TypeUserForgotten}
}

// sessionRow is a row of online_sessions.
type sessionRow struct {
	bun.BaseModel `bun:"table:online_sessions"`

	SessionID   string `bun:"session_id,pk"`
	UserID      string `bun:"user_id"`
	NodeID      string `bun:"node_id"`
	Email       string `bun:"email"`
	DisplayName string `bun:"display_name"`
	PhotoURL    string `bun:"photo_url"`
	Status      string `bun:"status"`
	ConnectedAt int64  `bun:"connected_at"`
	LastSeen    int64  `bun:"last_seen"`
}

// memberRow is a row of chat_members.
type memberRow struct {
	bun.BaseModel `bun:"table:chat_members"`

	RoomName    string `bun:"room_name,pk"`
	SessionID   string `bun:"session_id,pk"`
	UserID      string `bun:"user_id"`
	NodeID      string `bun:"node_id"`
	Email       string `bun:"email"`
	DisplayName string `bun:"display_name"`
	PhotoURL    string `bun:"photo_url"`
	JoinedAt    int64  `bun:"joined_at"`
}

func micros(t time.Time) int64      { return t.UnixMicro() }
func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// Apply implements Projection.
func (o OnlineUsers) Apply(ctx context.Context, tx bun.Tx, t Tables, events []Envelope) error {
	f := o.Deferred(t)
	if err := f.Apply(ctx, tx, events); err != nil {
		return err
	}
	return f.Flush(ctx, tx)
}

// Deferred implements Deferring: messages only move lastSeen, so the
// Applier keeps each user's latest message time until an event that is not
// a message (or Flush) needs the rows as the log has them.
func (OnlineUsers) Deferred(t Tables) Applier {
	name := t.Name("online_sessions")
	return &onlineUsersApplier{
		t: t, seen: map[string]int64{},
		// One statement moves every user's lastSeen, not one per user.
		moveSeen: bulkInsert{
			columns: []string{"user_id", "at"}, casts: []string{"", "BIGINT"},
			with: "UPDATE " + name + " SET last_seen = v.at FROM v WHERE " + name + ".user_id = v.user_id AND " + name + ".last_seen < v.at",
		},
	}
}

// onlineUsersApplier applies events to the online-users tables named by t.
type onlineUsersApplier struct {
	t Tables
	// seen holds, per user, the time of their latest message not yet
	// written to lastSeen. Moving lastSeen to the latest of several times
	// is moving it to each in turn, and only presence and membership
	// events (which flush it first) read or write the sessions, so the
	// order of effects stays the log's.
	seen     map[string]int64
	moveSeen bulkInsert
	rows     [][]any
}

// Flush implements Applier: one update moves the lastSeen of every user
// with a pending message.
func (f *onlineUsersApplier) Flush(ctx context.Context, tx bun.Tx) error {
	if len(f.seen) == 0 {
		return nil
	}
	f.rows = f.rows[:0]
	for uid, at := range f.seen {
		f.rows = append(f.rows, []any{uid, at})
	}
	clear(f.seen)
	if err := f.moveSeen.exec(ctx, tx, f.rows); err != nil {
		return fmt.Errorf("lastSeen: %w", err)
	}
	return nil
}

// Apply implements Applier.
func (f *onlineUsersApplier) Apply(ctx context.Context, tx bun.Tx, events []Envelope) error {
	sessions, members := f.t.Ident("online_sessions"), f.t.Ident("chat_members")
	for _, rec := range events {
		if m, ok := rec.Event.(domain.MessagePosted); ok {
			if !m.IsAI && f.seen[m.UserID] < micros(m.At) {
				f.seen[m.UserID] = micros(m.At)
			}
			continue
		}
		if err := f.Flush(ctx, tx); err != nil {
			return err
		}
		var err error
		switch e := rec.Event.(type) {
		case domain.PresenceJoined:
			row := sessionRow{
				SessionID: e.SessionID, UserID: e.UserID, NodeID: e.NodeID, Email: e.Profile.Email,
				DisplayName: e.Profile.DisplayName, PhotoURL: e.Profile.PhotoURL, Status: e.Status,
				ConnectedAt: micros(e.At), LastSeen: micros(e.At),
			}
			_, err = tx.NewInsert().Model(&row).ModelTableExpr("?", sessions).
				On("CONFLICT (session_id) DO UPDATE").
				Set("user_id = EXCLUDED.user_id, node_id = EXCLUDED.node_id, email = EXCLUDED.email").
				Set("display_name = EXCLUDED.display_name, photo_url = EXCLUDED.photo_url, status = EXCLUDED.status").
				Set("connected_at = EXCLUDED.connected_at, last_seen = EXCLUDED.last_seen").
				Exec(ctx)
		case domain.PresenceLeft:
			_, err = tx.NewDelete().TableExpr("?", sessions).Where("session_id = ?", e.SessionID).Exec(ctx)
		case domain.ChatMemberJoined:
			row := memberRow{
				RoomName: e.RoomName, SessionID: e.SessionID, UserID: e.UserID, NodeID: e.NodeID, Email: e.Profile.Email,
				DisplayName: e.Profile.DisplayName, PhotoURL: e.Profile.PhotoURL, JoinedAt: micros(e.At),
			}
			_, err = tx.NewInsert().Model(&row).ModelTableExpr("?", members).
				On("CONFLICT (room_name, session_id) DO UPDATE").
				Set("user_id = EXCLUDED.user_id, node_id = EXCLUDED.node_id, email = EXCLUDED.email").
				Set("display_name = EXCLUDED.display_name, photo_url = EXCLUDED.photo_url, joined_at = EXCLUDED.joined_at").
				Exec(ctx)
		case domain.ChatMemberLeft:
			_, err = tx.NewDelete().TableExpr("?", members).Where("room_name = ? AND session_id = ?", e.RoomName, e.SessionID).Exec(ctx)
		case domain.UserForgotten:
			err = forgetProfiles(ctx, tx, f.t, e.UserID)
		}
		if err != nil {
			return fmt.Errorf("%s at %v: %w", rec.Type, rec.Position, err)
		}
	}
	return nil
}

// OnlineUser is one entry of online_users: the user's most recent session
// (its socket id and profile), when the user came online (their earliest
// live session), status, and when they were last seen active.
type OnlineUser struct {
	ID          string
	SocketID    string
	ConnectedAt time.Time
	Profile     domain.UserProfile
	Status      string
	LastSeen    time.Time
}

// OnlineUsersQuery lists the online users.
type OnlineUsersQuery struct{ DB bun.IDB }

// Handle returns each online user once, ordered by when they came online
// and then by id.
func (q OnlineUsersQuery) Handle(ctx context.Context) ([]OnlineUser, error) {
	var rows []sessionRow
	if err := q.DB.NewSelect().Model(&rows).Order("user_id", "connected_at DESC", "session_id DESC").Scan(ctx); err != nil {
		return nil, readError("online users", err)
	}
	var out []OnlineUser
	for i := 0; i < len(rows); {
		latest := rows[i]
		u := OnlineUser{
			ID: latest.UserID, SocketID: latest.SessionID, Status: latest.Status,
			Profile:     domain.UserProfile{UID: latest.UserID, Email: latest.Email, DisplayName: latest.DisplayName, PhotoURL: latest.PhotoURL},
			ConnectedAt: fromMicros(latest.ConnectedAt), LastSeen: fromMicros(latest.LastSeen),
		}
		for ; i < len(rows) && rows[i].UserID == latest.UserID; i++ {
			if at := fromMicros(rows[i].ConnectedAt); at.Before(u.ConnectedAt) {
				u.ConnectedAt = at
			}
			if seen := fromMicros(rows[i].LastSeen); seen.After(u.LastSeen) {
				u.LastSeen = seen
			}
		}
		out = append(out, u)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].ConnectedAt.Equal(out[j].ConnectedAt) {
			return out[i].ConnectedAt.Before(out[j].ConnectedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// UserSessionsQuery counts a user's live sessions.
type UserSessionsQuery struct{ DB bun.IDB }

// Handle returns how many sessions of uid are live; 0 means offline.
func (q UserSessionsQuery) Handle(ctx context.Context, uid string) (int, error) {
	n, err := q.DB.NewSelect().Model((*sessionRow)(nil)).Where("user_id = ?", uid).Count(ctx)
	if err != nil {
		return 0, readError("user sessions", err)
	}
	return int(n), nil
}

// OpenSessionsQuery lists what a node's sessions joined and never ended; it
// satisfies commands.OpenSessions.
type OpenSessionsQuery struct{ DB bun.IDB }

// OpenSessionsOf returns the presence joins and chat memberships of the live
// sessions held by nodeID, rebuilt as the events that started them.
func (q OpenSessionsQuery) OpenSessionsOf(ctx context.Context, nodeID string) ([]domain.PresenceJoined, []domain.ChatMemberJoined, error) {
	var sessions []sessionRow
	if err := q.DB.NewSelect().Model(&sessions).Where("node_id = ?", nodeID).Order("session_id").Scan(ctx); err != nil {
		return nil, nil, readError("open sessions", err)
	}
	var members []memberRow
	if err := q.DB.NewSelect().Model(&members).Where("node_id = ?", nodeID).Order("room_name", "session_id").Scan(ctx); err != nil {
		return nil, nil, readError("open chat memberships", err)
	}
	joins := make([]domain.PresenceJoined, len(sessions))
	for i, s := range sessions {
		joins[i] = domain.PresenceJoined{
			SchemaVersion: domain.SchemaVersion, UserID: s.UserID, SessionID: s.SessionID, NodeID: s.NodeID,
			Profile: domain.UserProfile{UID: s.UserID, Email: s.Email, DisplayName: s.DisplayName, PhotoURL: s.PhotoURL},
			Status:  s.Status, At: fromMicros(s.ConnectedAt),
		}
	}
	chats := make([]domain.ChatMemberJoined, len(members))
	for i, m := range members {
		chats[i] = domain.ChatMemberJoined{
			SchemaVersion: domain.SchemaVersion, RoomName: m.RoomName, UserID: m.UserID, SessionID: m.SessionID, NodeID: m.NodeID,
			Profile: domain.UserProfile{UID: m.UserID, Email: m.Email, DisplayName: m.DisplayName, PhotoURL: m.PhotoURL},
			At:      fromMicros(m.JoinedAt),
		}
	}
	return joins, chats, nil
}

// NodesWithOpenSessions returns, in order, the nodes that hold a session or
// a chat membership the read model has not seen end.
func (q OpenSessionsQuery) NodesWithOpenSessions(ctx context.Context) ([]string, error) {
	var nodes []string
	err := q.DB.NewRaw("SELECT node_id FROM online_sessions UNION SELECT node_id FROM chat_members ORDER BY 1").Scan(ctx, &nodes)
	if err != nil {
		return nil, readError("nodes with open sessions", err)
	}
	return nodes, nil
}

// readError wraps a read-model query failure as EUNAVAILABLE: the read
// database could not answer.
func readError(what string, err error) error {
	if domain.ErrorCode(err) != domain.EINTERNAL {
		return err
	}
	return domain.WrapError(domain.EUNAVAILABLE, "read database unavailable: "+what, err)
}

// OnlineCountQuery counts the online users.
type OnlineCountQuery struct{ DB bun.IDB }

// Handle returns how many users have at least one live session.
func (q OnlineCountQuery) Handle(ctx context.Context) (int, error) {
	var n int
	if err := q.DB.NewSelect().Model((*sessionRow)(nil)).ColumnExpr("COUNT(DISTINCT user_id)").Scan(ctx, &n); err != nil {
		return 0, readError("online count", err)
	}
	return n, nil
}

// forgetProfiles rewrites the profile of every live session and chat
// membership of userID to the placeholders its events now read as (see
// domain.PersonalDataOf), so rows written before the forget equal the rows
// a rebuild after it writes.
func forgetProfiles(ctx context.Context, db bun.IDB, t Tables, userID string) error {
	for _, table := range []string{"online_sessions", "chat_members"} {
		if _, err := db.NewUpdate().TableExpr("?", t.Ident(table)).
			Set("email = ''").Set("display_name = ?", domain.PlaceholderName).Set("photo_url = ''").
			Where("user_id = ?", userID).Exec(ctx); err != nil {
			return fmt.Errorf("forget %s in %s: %w", userID, table, err)
		}
	}
	return nil
}
