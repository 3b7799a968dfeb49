package main

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/auraos/realtime/eventstore/esdb/esdbtest"
	"github.com/auraos/realtime/socketadapter/sockettest"
)

// `auraos serve --event-store esdb://…` serves the protocol end to end on
// the EventStoreDB store (against the in-process test server), across a
// restart.
func TestServeOnEventStoreDB(t *testing.T) {
	t.Parallel()
	db := esdbtest.StartServer(t, esdbtest.Options{})
	dir := t.TempDir()
	srv := startServer(t, dir, "--event-store", db.URL())

	alice := sockettest.Dial(t, srv.URL, "websocket", nil)
	bob := sockettest.Dial(t, srv.URL, "websocket", nil)
	alice.EmitAck("join_user_room", map[string]any{"userId": "alice", "userProfile": sockettest.Profile("alice")})
	bob.EmitAck("join_user_room", map[string]any{"userId": "bob", "userProfile": sockettest.Profile("bob")})
	alice.EmitAck("join_chat_room", map[string]any{"roomName": "esdb", "userProfile": sockettest.Profile("alice")})
	bob.EmitAck("join_chat_room", map[string]any{"roomName": "esdb", "userProfile": sockettest.Profile("bob")})
	alice.WaitEvent("user_joined_chat", nil)
	ack := alice.EmitAck("send_message", map[string]any{"roomName": "esdb", "message": "stored in EventStoreDB", "userProfile": sockettest.Profile("alice")})
	if ack["ok"] != true {
		t.Fatalf("send_message: %v", ack)
	}
	bob.WaitEvent("new_message", func(raw json.RawMessage) bool { return strings.Contains(string(raw), ack["id"].(string)) })
	if ack := bob.EmitAck("update_app_status", map[string]any{"appId": "app1", "status": "active"}); ack["ok"] != true {
		t.Fatalf("update_app_status: %v", ack)
	}
	alice.WaitEvent("app_updated", nil)
	alice.WaitEvent("online_users", func(raw json.RawMessage) bool {
		return strings.Contains(string(raw), `"bob"`) && strings.Contains(string(raw), `"alice"`)
	})
	srv.kill()

	// Restart on the same EventStoreDB (and read models): history kept,
	// nobody online from before once their presence grace has passed.
	srv2 := startServer(t, dir, "--event-store", db.URL(), "--presence-grace", "1s")
	carol := sockettest.Dial(t, srv2.URL, "websocket", nil)
	carol.EmitAck("join_user_room", map[string]any{"userId": "carol", "userProfile": sockettest.Profile("carol")})
	carol.WaitEvent("online_users", func(raw json.RawMessage) bool {
		return strings.Contains(string(raw), `"carol"`) && !strings.Contains(string(raw), `"alice"`) && !strings.Contains(string(raw), `"bob"`)
	})
	carol.EmitAck("join_chat_room", map[string]any{"roomName": "esdb", "userProfile": sockettest.Profile("carol")})
	hist := carol.WaitEvent("chat_history", nil)
	if !strings.Contains(string(hist), "stored in EventStoreDB") {
		t.Fatalf("chat_history after restart: %s", hist)
	}
	status := carol.EmitAck("request_system_status", nil)
	if status["ok"] != true {
		t.Fatalf("request_system_status: %v", status)
	}
	st := carol.WaitEvent("system_status_update", func(raw json.RawMessage) bool { return strings.Contains(string(raw), `"totalApps":1`) })
	_ = st
	srv2.stop()

	// Auditors read the same log, with the key table in the read models.
	out, err := exec.Command(auraosBin, "events", "read", "--event-store", db.URL(), "--data-dir", dir, "--type", "MessagePosted").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "stored in EventStoreDB") || !strings.Contains(string(out), `"command":"send_message"`) {
		t.Fatalf("events read: %v\n%s", err, out)
	}
}
