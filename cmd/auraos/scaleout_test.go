package main

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/auraos/realtime/schema/schematest"
	"github.com/auraos/realtime/socketadapter/sockettest"
)

// typingOf matches a user_typing of uid with the given state.
func typingOf(uid string, isTyping bool) func(json.RawMessage) bool {
	return func(raw json.RawMessage) bool {
		var p struct {
			UserID   string `json:"userId"`
			IsTyping bool   `json:"isTyping"`
		}
		return json.Unmarshal(raw, &p) == nil && p.UserID == uid && p.IsTyping == isTyping
	}
}

// Two servers that share a PostgreSQL event store and read database serve one
// set of rooms: a message sent through one reaches a member connected to the
// other, and so do typing indicators, which cross through PostgreSQL NOTIFY.
func TestTwoServersShareRoomsAndTyping(t *testing.T) {
	t.Parallel()
	pg := schematest.PostgresURL(t) // skips without AURAOS_TEST_POSTGRES_URL
	shared := []string{"--event-store", pg, "--read-db", pg}
	nodeA := startServer(t, t.TempDir(), append(shared, "--node-id", "node-a")...)
	nodeB := startServer(t, t.TempDir(), append(shared, "--node-id", "node-b")...)

	ann := sockettest.Dial(t, nodeA.URL, "websocket", nil)
	bob := sockettest.Dial(t, nodeB.URL, "websocket", nil)
	for c, uid := range map[*sockettest.Client]string{ann: "ann", bob: "bob"} {
		if ack := c.EmitAck("join_chat_room", map[string]any{"roomName": "shared", "userProfile": sockettest.Profile(uid)}); ack["ok"] != true {
			t.Fatalf("%s joins: %v", uid, ack)
		}
	}

	ann.EmitAck("typing_start", map[string]any{"roomName": "shared", "userProfile": sockettest.Profile("ann")})
	bob.WaitEvent("user_typing", typingOf("ann", true))

	if ack := ann.EmitAck("send_message", map[string]any{"roomName": "shared", "message": "across nodes", "userProfile": sockettest.Profile("ann")}); ack["ok"] != true {
		t.Fatalf("send_message: %v", ack)
	}
	bob.WaitEvent("new_message", messageIs("across nodes"))

	// A typing socket that goes away stops typing on the other node too.
	ann.S.Disconnect()
	bob.WaitEvent("user_typing", typingOf("ann", false))

	for _, raw := range ann.Received("user_typing") {
		if typingOf("ann", true)(raw) {
			t.Fatal("ann saw her own typing indicator")
		}
	}
}

// A server that dies and does not come back has its sessions ended by the
// others: its users leave presence and their rooms, and the log says why.
func TestLostServerSessionsAreEnded(t *testing.T) {
	t.Parallel()
	pg := schematest.PostgresURL(t)
	shared := []string{"--event-store", pg, "--read-db", pg, "--reap-interval", "200ms", "--presence-grace", "1s"}
	doomed := startServer(t, t.TempDir(), append(shared, "--node-id", "doomed")...)
	survivor := startServer(t, t.TempDir(), append(shared, "--node-id", "survivor")...)

	ann := sockettest.Dial(t, doomed.URL, "websocket", nil)
	bob := sockettest.Dial(t, survivor.URL, "websocket", nil)
	joinAll(t, "lobby", map[string]*sockettest.Client{"ann": ann, "bob": bob})
	bob.WaitEvent("online_users", onlineAre("ann", "bob"))

	doomed.kill()
	bob.WaitEvent("user_left", leftIs("ann"))
	bob.WaitEvent("user_left_chat", nil)
	bob.WaitEvent("online_users", onlineAre("bob"))

	out, err := exec.Command(auraosBin, "events", "read", "--event-store", pg, "--type", "PresenceLeft").CombinedOutput()
	if err != nil {
		t.Fatalf("events read: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), `"reason":"node_down"`) || !strings.Contains(string(out), `"command":"node_down"`) {
		t.Fatalf("the log does not say the session ended because its server went down:\n%s", out)
	}
}
