package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
)

// ChatHistory is the chat-history projection: every message of every room,
// found by room in log order.
type ChatHistory struct{}

// Name implements Projection.
func (ChatHistory) Name() string { return "chat-history" }

// Version implements Projection.
func (ChatHistory) Version() int { return 1 }

// Tables implements Projection.
func (ChatHistory) Tables() []string { return []string{"chat_messages"} }

// EventTypes implements Projection: messages, and forgotten users, whose
// messages are rewritten.
func (ChatHistory) EventTypes() []string {
	return []string{domain.TypeMessagePosted, domain.TypeUserForgotten}
}

// messageRow is a row of chat_messages.
type messageRow struct {
	bun.BaseModel `bun:"table:chat_messages"`

	CommitPosition  int64   `bun:"commit_position,pk"`
	PreparePosition int64   `bun:"prepare_position,pk"`
	ID              string  `bun:"id"`
	RoomName        string  `bun:"room_name"`
	UserID          string  `bun:"user_id"`
	UserName        string  `bun:"user_name"`
	UserAvatar      *string `bun:"user_avatar"`
	Message         string  `bun:"message"`
	MessageType     string  `bun:"message_type"`
	IsAI            bool    `bun:"is_ai"`
	InReplyTo       string  `bun:"in_reply_to"`
	CreatedAt       int64   `bun:"created_at"`
}

// messageColumns are the columns of chat_messages in the order Apply binds
// them.
var messageColumns = []string{"commit_position", "prepare_position", "id", "room_name", "user_id", "user_name",
	"user_avatar", "message", "message_type", "is_ai", "in_reply_to", "created_at"}

// AppendOnlyTables implements AppendOnly: chat history inserts messages,
// and rewrites a forgotten user's by a scan that no secondary index serves.
func (ChatHistory) AppendOnlyTables() []string { return []string{"chat_messages"} }

// Apply implements Projection: multi-row inserts of the messages. A message
// already present (a replay) is left as it is. A UserForgotten rewrites the
// user's messages stored so far, after inserting the messages before it.
func (ChatHistory) Apply(ctx context.Context, tx bun.Tx, t Tables, events []Envelope) error {
	rows := make([][]any, 0, len(events))
	ins := bulkInsert{table: t.Name("chat_messages"), columns: messageColumns, conflict: "ON CONFLICT DO NOTHING", fresh: t == Rebuilding}
	for _, rec := range events {
		if f, ok := rec.Event.(domain.UserForgotten); ok {
			if err := ins.exec(ctx, tx, rows); err != nil {
				return fmt.Errorf("insert messages: %w", err)
			}
			rows = rows[:0]
			if err := forgetMessages(ctx, tx, t, f.UserID); err != nil {
				return err
			}
			continue
		}
		m, ok := rec.Event.(domain.MessagePosted)
		if !ok {
			continue
		}
		c, p, err := dbPosition(rec.Position)
		if err != nil {
			return err
		}
		var avatar any
		if m.UserAvatar != nil {
			avatar = *m.UserAvatar
		}
		rows = append(rows, []any{c, p, m.ID, m.RoomName, m.UserID, m.UserName, avatar, m.Message,
			string(m.MessageType), m.IsAI, m.InReplyTo, micros(m.At)})
	}
	if err := ins.exec(ctx, tx, rows); err != nil {
		return fmt.Errorf("insert messages: %w", err)
	}
	return nil
}

// forgetMessages rewrites userID's messages (not the assistant's, which
// are about nobody) to the placeholders their events now read as.
func forgetMessages(ctx context.Context, db bun.IDB, t Tables, userID string) error {
	_, err := db.NewUpdate().TableExpr("?", t.Ident("chat_messages")).
		Set("user_name = ?", domain.PlaceholderName).Set("user_avatar = NULL").Set("message = ?", domain.PlaceholderText).
		Where("user_id = ? AND NOT is_ai", userID).Exec(ctx)
	if err != nil {
		return fmt.Errorf("forget the messages of %s: %w", userID, err)
	}
	return nil
}

// ForgetUser rewrites, in the live tables of db, every read-model row that
// holds userID's personal data to the placeholders their events read as once
// the user's keys are gone: what the projections do when they reach the
// user's UserForgotten event, done at once by `auraos users forget` so the
// rows are rewritten even when no server runs. It is idempotent. It returns
// EUNAVAILABLE when the database fails.
func ForgetUser(ctx context.Context, db bun.IDB, userID string) error {
	err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := forgetProfiles(ctx, tx, Live, userID); err != nil {
			return err
		}
		return forgetMessages(ctx, tx, Live, userID)
	})
	if err != nil {
		return readError("forget a user", err)
	}
	return nil
}

// ChatMessage is one message of chat_history and new_message.
type ChatMessage struct {
	ID          string
	RoomName    string
	UserID      string
	UserName    string
	UserAvatar  *string
	Message     string
	MessageType string
	Timestamp   time.Time
	IsAI        bool
	Position    eventstore.Position
}

// HistoryLimit is how many messages chat_history holds.
const HistoryLimit = 50

// ChatHistoryQuery reads a room's last messages.
type ChatHistoryQuery struct{ DB bun.IDB }

// Handle returns the room's last limit messages at or before through
// (eventstore.Start for no bound), oldest first, in one query on the
// (room_name, position) index.
func (q ChatHistoryQuery) Handle(ctx context.Context, room string, through eventstore.Position, limit int) ([]ChatMessage, error) {
	if limit <= 0 {
		limit = HistoryLimit
	}
	sel := q.DB.NewSelect().Model((*messageRow)(nil)).Where("room_name = ?", room)
	if !through.IsZero() {
		c, p, err := dbPosition(through)
		if err != nil {
			return nil, err
		}
		sel = sel.Where("(commit_position < ? OR (commit_position = ? AND prepare_position <= ?))", c, c, p)
	}
	inner := sel.OrderExpr("commit_position DESC, prepare_position DESC").Limit(int64(limit))
	var rows []messageRow
	err := q.DB.NewSelect().TableExpr("(?) AS recent", inner).ColumnExpr("recent.*").
		OrderExpr("commit_position, prepare_position").Scan(ctx, &rows)
	if err != nil {
		return nil, readError("chat history", err)
	}
	out := make([]ChatMessage, len(rows))
	for i, r := range rows {
		out[i] = ChatMessage{
			ID: r.ID, RoomName: r.RoomName, UserID: r.UserID, UserName: r.UserName, UserAvatar: r.UserAvatar,
			Message: r.Message, MessageType: r.MessageType, Timestamp: fromMicros(r.CreatedAt), IsAI: r.IsAI,
			Position: eventstore.Position{Commit: uint64(r.CommitPosition), Prepare: uint64(r.PreparePosition)},
		}
	}
	return out, nil
}
