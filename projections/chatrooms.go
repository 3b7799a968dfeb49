package projections

import (
	"context"
	"slices"
	"strings"

	"github.com/uptrace/bun"

	"github.com/auraos/realtime/eventstore"
)

// ChatRoom is one chat room as the operators' console shows it: who is in
// it now and what was said last.
type ChatRoom struct {
	Name string
	// Members counts the distinct users with an open membership.
	Members int
	// Messages counts the messages the chat history holds.
	Messages int
	// Last holds the newest messages, oldest first.
	Last []ChatMessage
}

// ChatRoomsQuery lists the chat rooms of the online-users and chat-history
// read models.
type ChatRoomsQuery struct{ DB bun.IDB }

// Handle returns every room with members or messages, by name byte by
// byte, each with its last messages (at most last). It returns EUNAVAILABLE
// when the read database cannot answer.
func (q ChatRoomsQuery) Handle(ctx context.Context, last int) ([]ChatRoom, error) {
	db := q.DB
	var members []struct {
		RoomName string `bun:"room_name"`
		N        int    `bun:"n"`
	}
	if err := db.NewSelect().Model((*memberRow)(nil)).ColumnExpr("room_name").ColumnExpr("COUNT(DISTINCT user_id) AS n").
		Group("room_name").Scan(ctx, &members); err != nil {
		return nil, readError("chat members", err)
	}
	var messages []struct {
		RoomName string `bun:"room_name"`
		N        int    `bun:"n"`
	}
	if err := db.NewSelect().Model((*messageRow)(nil)).ColumnExpr("room_name").ColumnExpr("COUNT(*) AS n").
		Group("room_name").Scan(ctx, &messages); err != nil {
		return nil, readError("chat history", err)
	}
	rooms := map[string]*ChatRoom{}
	room := func(name string) *ChatRoom {
		if r, ok := rooms[name]; ok {
			return r
		}
		r := &ChatRoom{Name: name}
		rooms[name] = r
		return r
	}
	for _, m := range members {
		room(m.RoomName).Members = m.N
	}
	for _, m := range messages {
		room(m.RoomName).Messages = m.N
	}
	out := make([]ChatRoom, 0, len(rooms))
	for _, r := range rooms {
		if r.Messages > 0 && last > 0 {
			msgs, err := (ChatHistoryQuery{DB: db}).Handle(ctx, r.Name, eventstore.Start, last)
			if err != nil {
				return nil, err
			}
			r.Last = msgs
		}
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b ChatRoom) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
