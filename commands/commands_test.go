package commands_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/auraos/realtime/commands"
	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/sqlstore"
	"github.com/auraos/realtime/eventstore/sqlstore/sqlstoretest"
)

func setup(t *testing.T) (*sqlstore.Store, commands.Deps) {
	t.Helper()
	s := sqlstoretest.OpenSQLite(t, sqlstore.Options{})
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	return s, commands.Deps{Store: s, Now: func() time.Time { return now }, NewID: eventstore.NewID}
}

func cause(uid, command string) commands.Cause {
	return commands.Cause{Actor: domain.Actor{UserID: uid, SessionID: "sock-1", NodeID: "node-1"}, Command: command, CorrelationID: eventstore.NewID()}
}

func profile(uid string) domain.UserProfile {
	return domain.UserProfile{UID: uid, Email: uid + "@example.com", DisplayName: "User " + uid}
}

func all(t *testing.T, s *sqlstore.Store) []eventstore.RecordedEvent {
	t.Helper()
	evs, err := s.ReadAll(context.Background(), eventstore.ReadAllOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestSendMessageIsIdempotentPerClientMsgID(t *testing.T) {
	t.Parallel()
	s, d := setup(t)
	h := commands.SendMessageHandler{Deps: d}
	send := func(uid, room, clientID, text string) commands.SentMessage {
		t.Helper()
		res, err := h.Handle(context.Background(), commands.SendMessage{Cause: cause(uid, "send_message"),
			PostMessageInput: domain.PostMessageInput{RoomName: room, Message: text, Profile: profile(uid), ClientMsgID: clientID}})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	first := send("u1", "general", "c-1", "hello")
	retry := send("u1", "general", "c-1", "hello")
	if retry.Message.ID != first.Message.ID || retry.Position != first.Position {
		t.Fatalf("retry = %s at %v, first = %s at %v", retry.Message.ID, retry.Position, first.Message.ID, first.Position)
	}
	// The same clientMsgId from another user or in another room is another message.
	other := send("u2", "general", "c-1", "hello")
	elsewhere := send("u1", "random", "c-1", "hello")
	plain1, plain2 := send("u1", "general", "", "again"), send("u1", "general", "", "again")
	ids := map[string]bool{first.Message.ID: true, other.Message.ID: true, elsewhere.Message.ID: true, plain1.Message.ID: true, plain2.Message.ID: true}
	if len(ids) != 5 {
		t.Fatalf("expected 5 distinct message ids, got %v", ids)
	}
	if got := len(all(t, s)); got != 5 {
		t.Fatalf("stored %d events, want 5", got)
	}
}

func TestRetriedCommandStoresOnce(t *testing.T) {
	t.Parallel()
	s, d := setup(t)
	c := cause("u1", "send_notification")
	cmd := commands.SendNotification{Cause: c, To: "u2", Title: "T", Message: "M", Type: "info", Data: json.RawMessage(`{"k":1}`)}
	h := commands.SendNotificationHandler{Deps: d}
	a, err := h.Handle(context.Background(), cmd)
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.Handle(context.Background(), cmd)
	if err != nil || a.Position != b.Position {
		t.Fatalf("retry: %v %v vs %v", err, b.Position, a.Position)
	}
	evs := all(t, s)
	if len(evs) != 1 || evs[0].Stream != "notify-u2" || evs[0].Type != domain.TypeNotificationSent {
		t.Fatalf("stored %+v", evs)
	}
	var meta domain.Metadata
	if err := json.Unmarshal(evs[0].Metadata, &meta); err != nil {
		t.Fatal(err)
	}
	if meta != (domain.Metadata{UserID: "u1", SocketID: "sock-1", NodeID: "node-1", Command: "send_notification", CorrelationID: c.CorrelationID}) {
		t.Fatalf("metadata %+v", meta)
	}
}

func TestRefusedCommandsStoreNothing(t *testing.T) {
	t.Parallel()
	s, d := setup(t)
	ctx := context.Background()
	type check struct {
		name string
		err  error
		code string
	}
	var checks []check
	_, err := commands.SendMessageHandler{Deps: d}.Handle(ctx, commands.SendMessage{Cause: cause("u1", "send_message"), PostMessageInput: domain.PostMessageInput{RoomName: "r", Message: "x", Profile: profile("u2")}})
	checks = append(checks, check{"impersonation", err, domain.EFORBIDDEN})
	_, err = commands.BroadcastSystemAlertHandler{Deps: d}.Handle(ctx, commands.BroadcastSystemAlert{Cause: cause("u1", "broadcast_system_alert"), Title: "t", Message: "m", Severity: "info"})
	checks = append(checks, check{"non-admin alert", err, domain.EFORBIDDEN})
	_, err = commands.UpdateAppStatusHandler{Deps: d}.Handle(ctx, commands.UpdateAppStatus{Cause: cause("u1", "update_app_status"), AppID: "a", Status: "on"})
	checks = append(checks, check{"bad status", err, domain.EINVALID})
	_, err = commands.UpdateDataAgentHandler{Deps: d}.Handle(ctx, commands.UpdateDataAgent{Cause: cause("u1", "data_agent_update"), AgentID: "", Status: "x"})
	checks = append(checks, check{"no agent", err, domain.EINVALID})
	for _, c := range checks {
		if domain.ErrorCode(c.err) != c.code {
			t.Errorf("%s: %v, want %s", c.name, c.err, c.code)
		}
	}
	if n := len(all(t, s)); n != 0 {
		t.Fatalf("refused commands stored %d events", n)
	}
}

func TestAppStatusRecordsPreviousAndSurvivesRaces(t *testing.T) {
	t.Parallel()
	s, d := setup(t)
	h := commands.UpdateAppStatusHandler{Deps: d}
	ctx := context.Background()
	first, err := h.Handle(ctx, commands.UpdateAppStatus{Cause: cause("u1", "update_app_status"), AppID: "app1", Status: "active"})
	if err != nil || first.Event.PreviousStatus != "" {
		t.Fatalf("first: %+v %v", first, err)
	}
	second, err := h.Handle(ctx, commands.UpdateAppStatus{Cause: cause("u1", "update_app_status"), AppID: "app1", Status: "inactive"})
	if err != nil || second.Event.PreviousStatus != domain.AppActive {
		t.Fatalf("second: %+v %v", second, err)
	}
	// Concurrent updates each reload and land, one after another.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := h.Handle(ctx, commands.UpdateAppStatus{Cause: cause("u1", "update_app_status"), AppID: "app1", Status: "active"})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil && !errors.Is(err, eventstore.ErrWrongExpectedVersion) {
			t.Fatalf("concurrent update: %v", err)
		}
	}
	evs, _ := s.ReadStream(ctx, "app-app1", eventstore.ReadStreamOptions{})
	for i, e := range evs {
		if e.Version != uint64(i) {
			t.Fatalf("versions not contiguous: %d at %d", e.Version, i)
		}
	}
	if len(evs) < 3 {
		t.Fatalf("only %d events", len(evs))
	}
}

func TestEndSessionIsIdempotent(t *testing.T) {
	t.Parallel()
	s, d := setup(t)
	ctx := context.Background()
	j, err := commands.JoinUserRoomHandler{Deps: d}.Handle(ctx, commands.JoinUserRoom{Cause: cause("", "join_user_room"), UserID: "u1", Profile: profile("u1")})
	if err != nil || j.Actor.UserID != "u1" {
		t.Fatalf("%+v %v", j, err)
	}
	c, err := commands.JoinChatRoomHandler{Deps: d}.Handle(ctx, commands.JoinChatRoom{Cause: cause("u1", "join_chat_room"), RoomName: "general", Profile: profile("u1")})
	if err != nil {
		t.Fatal(err)
	}
	end := commands.EndSession{Cause: cause("u1", "disconnect"), Presence: &j.Event, Chats: []domain.ChatMemberJoined{c.Event}, Reason: domain.ReasonDisconnect}
	for range 2 {
		if _, err := (commands.EndSessionHandler{Deps: d}).Handle(ctx, end); err != nil {
			t.Fatal(err)
		}
	}
	// Leaving the room explicitly ends the same membership: stored once.
	if _, err := (commands.LeaveChatRoomHandler{Deps: d}).Handle(ctx, commands.LeaveChatRoom{Cause: cause("u1", "leave_room"), Joined: c.Event}); err != nil {
		t.Fatal(err)
	}
	types := map[string]int{}
	for _, e := range all(t, s) {
		types[e.Type]++
	}
	if types[domain.TypePresenceLeft] != 1 || types[domain.TypeChatMemberLeft] != 1 {
		t.Fatalf("stored %v", types)
	}
}
