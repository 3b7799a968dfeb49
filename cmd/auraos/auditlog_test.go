package main

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/auraos/realtime/commands"
	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/sqlstore"
)

// auditStart is when the audit log's first event commits; each further
// event commits one minute later.
var auditStart = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// minuteClock returns a clock that starts at start and moves a minute per
// call, so every commit of the audit log has a known time.
func minuteClock(start time.Time) func() time.Time {
	var mu sync.Mutex
	next := start
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t := next
		next = next.Add(time.Minute)
		return t
	}
}

// auditLog is the history the audit tests read, one event per commit at
// auditStart + (position-1) minutes:
//
//	1 10:00 PresenceJoined   alice (socket a1)
//	2 10:01 ChatMemberJoined alice in general
//	3 10:02 PresenceJoined   bob (socket b1)
//	4 10:03 MessagePosted    alice in general: "hi @ai"          (correlation ask)
//	5 10:04 MessagePosted    ai-assistant's reply to 4           (correlation ask, causation 4)
//	6 10:05 NotificationSent bob → alice
//	7 10:06 AppStatusChanged a1 active by bob
//	8 10:07 AppStatusChanged a2 inactive by alice
//	9 10:08 MessagePosted    bob in random: "alice" (names her only in its text)
//	10 10:09 ChatMemberLeft  alice leaves general                 (correlation bye)
//	11 10:10 PresenceLeft    alice                                (correlation bye)
//	12 10:11 NotificationSent alice → carol
//	13 10:12 PresenceJoined  d&d<1> (an id JSON escapes)
type auditLog struct {
	dir      string
	ask, bye string // correlation ids
	ask4     string // the id of message 4
	clock    func() time.Time
}

// writeAuditLog fills a SQLite event store in a fresh data directory through
// the command handlers, as the adapter would, and closes it.
func writeAuditLog(t *testing.T) auditLog {
	t.Helper()
	ctx := context.Background()
	l := auditLog{dir: t.TempDir(), clock: minuteClock(auditStart)}
	store, err := sqlstore.OpenSQLite(ctx, l.dir, sqlstore.Options{Now: l.clock})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	// Event times come from a clock of their own, a minute per command.
	d := commands.Deps{Store: store, Now: minuteClock(auditStart.Add(-time.Second)), NewID: eventstore.NewID}
	profile := func(uid string) domain.UserProfile {
		return domain.UserProfile{UID: uid, Email: uid + "@example.com", DisplayName: "User " + uid}
	}
	cause := func(uid, socket, command, correlation string) commands.Cause {
		if correlation == "" {
			correlation = eventstore.NewID()
		}
		return commands.Cause{Actor: domain.Actor{UserID: uid, SessionID: socket, NodeID: "node-a"}, Command: command, CorrelationID: correlation}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	alice, err := commands.JoinUserRoomHandler{Deps: d}.Handle(ctx, commands.JoinUserRoom{Cause: cause("", "a1", "join_user_room", ""), UserID: "alice", Profile: profile("alice")})
	must(err)
	general, err := commands.JoinChatRoomHandler{Deps: d}.Handle(ctx, commands.JoinChatRoom{Cause: cause("alice", "a1", "join_chat_room", ""), RoomName: "general", Profile: profile("alice")})
	must(err)
	_, err = commands.JoinUserRoomHandler{Deps: d}.Handle(ctx, commands.JoinUserRoom{Cause: cause("", "b1", "join_user_room", ""), UserID: "bob", Profile: profile("bob")})
	must(err)
	l.ask = eventstore.NewID()
	hi, err := commands.SendMessageHandler{Deps: d}.Handle(ctx, commands.SendMessage{Cause: cause("alice", "a1", "send_message", l.ask),
		PostMessageInput: domain.PostMessageInput{RoomName: "general", Message: "hi @ai", Profile: profile("alice")}})
	must(err)
	l.ask4 = hi.Message.ID
	// The assistant's reply, stored as the reactor stores it.
	replyID := commands.AIReplyID(hi.Message.ID)
	reply := domain.PostAssistantMessage(hi.Message, commands.DefaultAssistantID, commands.DefaultAssistantName, "hello alice", false, replyID, d.Now())
	data, _ := json.Marshal(reply)
	meta, _ := json.Marshal(domain.Metadata{UserID: commands.DefaultAssistantID, NodeID: "node-a", Command: commands.CommandAIReply, CorrelationID: l.ask, CausationID: hi.Message.ID})
	_, err = store.Append(ctx, reply.Stream(), eventstore.Any, eventstore.EventData{ID: replyID, Type: reply.EventType(), Data: data, Metadata: meta})
	must(err)
	_, err = commands.SendNotificationHandler{Deps: d}.Handle(ctx, commands.SendNotification{Cause: cause("bob", "b1", "send_notification", ""), To: "alice", Title: "ping", Message: "are you there?", Type: "info"})
	must(err)
	_, err = commands.UpdateAppStatusHandler{Deps: d}.Handle(ctx, commands.UpdateAppStatus{Cause: cause("bob", "b1", "update_app_status", ""), AppID: "a1", Status: "active"})
	must(err)
	_, err = commands.UpdateAppStatusHandler{Deps: d}.Handle(ctx, commands.UpdateAppStatus{Cause: cause("alice", "a1", "update_app_status", ""), AppID: "a2", Status: "inactive"})
	must(err)
	_, err = commands.SendMessageHandler{Deps: d}.Handle(ctx, commands.SendMessage{Cause: cause("bob", "b1", "send_message", ""),
		PostMessageInput: domain.PostMessageInput{RoomName: "random", Message: "alice", Profile: profile("bob")}})
	must(err)
	l.bye = eventstore.NewID()
	_, err = commands.EndSessionHandler{Deps: d}.Handle(ctx, commands.EndSession{Cause: cause("alice", "a1", "disconnect", l.bye),
		Presence: &alice.Event, Chats: []domain.ChatMemberJoined{general.Event}, Reason: domain.ReasonDisconnect})
	must(err)
	_, err = commands.SendNotificationHandler{Deps: d}.Handle(ctx, commands.SendNotification{Cause: cause("alice", "a2", "send_notification", ""), To: "carol", Title: "hey", Message: "lunch?", Type: "info"})
	must(err)
	_, err = commands.JoinUserRoomHandler{Deps: d}.Handle(ctx, commands.JoinUserRoom{Cause: cause("", "x1", "join_user_room", ""), UserID: "d&d<1>", Profile: domain.UserProfile{UID: "d&d<1>", Email: "dnd@example.com"}})
	must(err)
	head, err := store.Head(ctx)
	must(err)
	if head != eventstore.Pos(13) {
		t.Fatalf("the audit log ends at %v, want 13", head)
	}
	return l
}

// at is the commit time of the audit log's minute hh:mm, as RFC 3339.
func at(hhmm string) string { return "2026-11-27T" + hhmm + ":00Z" }
