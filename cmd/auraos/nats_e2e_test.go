package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auraos/realtime/eventstore/esdb/esdbtest"
	"github.com/auraos/realtime/schema/schematest"
	"github.com/auraos/realtime/socketadapter/natssignal/natstest"
	"github.com/auraos/realtime/socketadapter/sockettest"
)

// The NATS settings of the end-to-end tests: leases of 3s (renewed every
// second) and a sweep every 200ms, so a dead server's sessions end within
// about 3.2s of its last renewal.
const natsLeaseTTL, natsReap = "3s", "200ms"

// onlineAre matches an online_users list of exactly these users.
func onlineAre(want ...string) func(json.RawMessage) bool {
	slices.Sort(want)
	return func(raw json.RawMessage) bool {
		var list []struct{ ID string }
		if json.Unmarshal(raw, &list) != nil {
			return false
		}
		var got []string
		for _, u := range list {
			got = append(got, u.ID)
		}
		slices.Sort(got)
		return slices.Equal(got, want)
	}
}

// leftIs matches the user_left of uid.
func leftIs(uid string) func(json.RawMessage) bool {
	return func(raw json.RawMessage) bool { return string(raw) == `"`+uid+`"` }
}

// messageIs matches a new_message with this text.
func messageIs(text string) func(json.RawMessage) bool {
	return func(raw json.RawMessage) bool {
		var m struct{ Message string }
		return json.Unmarshal(raw, &m) == nil && m.Message == text
	}
}

// joinAll has each client join presence as its user and the room.
func joinAll(t *testing.T, room string, clients map[string]*sockettest.Client) {
	t.Helper()
	for uid, c := range clients {
		if ack := c.EmitAck("join_user_room", map[string]any{"userId": uid, "userProfile": sockettest.Profile(uid)}); ack["ok"] != true {
			t.Fatalf("%s joins presence: %v", uid, ack)
		}
		if ack := c.EmitAck("join_chat_room", map[string]any{"roomName": room, "userProfile": sockettest.Profile(uid)}); ack["ok"] != true {
			t.Fatalf("%s joins %s: %v", uid, room, ack)
		}
	}
}

func typing(t *testing.T, c *sockettest.Client, room, uid string, start bool) {
	t.Helper()
	event := "typing_stop"
	if start {
		event = "typing_start"
	}
	if ack := c.EmitAck(event, map[string]any{"roomName": room, "userProfile": sockettest.Profile(uid)}); ack["ok"] != true {
		t.Fatalf("%s %s: %v", uid, event, ack)
	}
}

func send(t *testing.T, c *sockettest.Client, room, uid, text string) {
	t.Helper()
	if ack := c.EmitAck("send_message", map[string]any{"roomName": room, "message": text, "userProfile": sockettest.Profile(uid)}); ack["ok"] != true {
		t.Fatalf("%s send_message %q: %v", uid, text, ack)
	}
}

// count returns how many of c's events of that name match.
func count(c *sockettest.Client, event string, match func(json.RawMessage) bool) int {
	n := 0
	for _, raw := range c.Received(event) {
		if match(raw) {
			n++
		}
	}
	return n
}

// waitReconnected waits (generously) until the server counts a
// reconnection to the broker.
func waitReconnected(t *testing.T, s *server) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); scrape(t, s.URL)["auraos_signal_reconnects_total"] < 1; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not reconnect to NATS within 60s:\n%s", s.URL, s.out.String())
		}
	}
}

// Two `serve` processes on one store share typing and liveness through
// NATS: typing crosses (and is never shown twice on its own server), a
// second server with a running node's id is refused, restarting the broker
// loses nothing but the typing of that moment, and a server killed with -9
// has its sessions ended by the other within the lease TTL plus the reap
// interval, exactly once.
func TestTwoServersOverNATS(t *testing.T) {
	t.Parallel()
	t.Run("eventstoredb", func(t *testing.T) {
		db := esdbtest.StartServer(t, esdbtest.Options{})
		// Each server has a read database of its own, so their key tables
		// differ: personal data stays in clear (see Personal data).
		twoServersOverNATS(t, db.URL(), []string{"--event-store", db.URL(), "--personal-data-in-clear"})
	})
	t.Run("postgres", func(t *testing.T) {
		pg := schematest.PostgresURL(t) // skips without AURAOS_TEST_POSTGRES_URL
		twoServersOverNATS(t, pg, []string{"--event-store", pg, "--read-db", pg})
	})
}

func twoServersOverNATS(t *testing.T, eventStore string, store []string) {
	broker := natstest.Start(t) // the test's own: it restarts it
	common := slices.Clip(append(store, "--signals", broker.URL, "--signals-prefix", natstest.Prefix(t), "--lease-ttl", natsLeaseTTL, "--reap-interval", natsReap))
	nodeA := startServer(t, t.TempDir(), append(common, "--node-id", "node-a")...)
	nodeB := startServer(t, t.TempDir(), append(common, "--node-id", "node-b")...)

	// A second server given node-a's id refuses to start.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	began := time.Now()
	out, err := exec.CommandContext(ctx, auraosBin, append([]string{"serve", "--addr", freeAddr(t), "--data-dir", t.TempDir(), "--node-id", "node-a"}, common...)...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "node id node-a is held by another running server") {
		t.Fatalf("a second node-a: err=%v\n%s", err, out)
	}
	t.Logf("a second server with a running node's id failed after %s", time.Since(began).Round(time.Millisecond))

	const room = "over-nats"
	ann := sockettest.Dial(t, nodeA.URL, "websocket", nil)
	carol := sockettest.Dial(t, nodeA.URL, "websocket", nil)
	bob := sockettest.Dial(t, nodeB.URL, "websocket", nil)
	joinAll(t, room, map[string]*sockettest.Client{"ann": ann, "carol": carol, "bob": bob})
	bob.WaitEvent("online_users", onlineAre("ann", "bob", "carol"))

	// Typing crosses. Carol, on ann's server, sees ann's typing once: bob's
	// typing, sent after bob saw ann's, reaches node-a after any echo of
	// ann's signal would have.
	typing(t, ann, room, "ann", true)
	bob.WaitEvent("user_typing", typingOf("ann", true))
	typing(t, bob, room, "bob", true)
	carol.WaitEvent("user_typing", typingOf("bob", true))
	if n := count(carol, "user_typing", typingOf("ann", true)); n != 1 {
		t.Fatalf("carol saw ann's typing %d times on ann's own server, want 1", n)
	}
	if n := count(ann, "user_typing", typingOf("ann", true)); n != 0 {
		t.Fatalf("ann saw her own typing %d times", n)
	}
	typing(t, ann, room, "ann", false)
	bob.WaitEvent("user_typing", typingOf("ann", false))
	send(t, ann, room, "ann", "before the broker restart")
	bob.WaitEvent("new_message", messageIs("before the broker restart"))

	// The broker goes away: chat, presence and acks carry on.
	broker.Stop()
	send(t, ann, room, "ann", "while the broker is down")
	bob.WaitEvent("new_message", messageIs("while the broker is down"))
	typing(t, bob, room, "bob", false) // acked, though nobody on node-a sees it
	dave := sockettest.Dial(t, nodeB.URL, "websocket", nil)
	joinAll(t, room, map[string]*sockettest.Client{"dave": dave})
	ann.WaitEvent("online_users", onlineAre("ann", "bob", "carol", "dave"))

	broker.Start()
	waitReconnected(t, nodeA)
	waitReconnected(t, nodeB)
	typing(t, carol, room, "carol", true)
	bob.WaitEvent("user_typing", typingOf("carol", true))
	send(t, bob, room, "bob", "after the broker restart")
	ann.WaitEvent("new_message", messageIs("after the broker restart"))
	// The restart was not taken for deaths: everybody is still online.
	if ack := dave.EmitAck("join_user_room", map[string]any{"userId": "dave", "userProfile": sockettest.Profile("dave")}); ack["ok"] != true {
		t.Fatalf("dave joins again: %v", ack)
	}

	// kill -9 of node-a: bob sees its users leave.
	nodeA.kill()
	killed := time.Now()
	bob.WaitEvent("user_left", leftIs("ann"))
	bob.WaitEvent("user_left", leftIs("carol"))
	t.Logf("user_left reached node-b's client %s after kill -9 of node-a (lease TTL %s, reap interval %s)", time.Since(killed).Round(time.Millisecond), natsLeaseTTL, natsReap)
	bob.WaitEvent("user_left_chat", nil)
	bob.WaitEvent("online_users", onlineAre("bob", "dave"))

	out, err = exec.Command(auraosBin, "events", "read", "--event-store", eventStore, "--type", "PresenceLeft").CombinedOutput()
	if err != nil {
		t.Fatalf("events read: %v\n%s", err, out)
	}
	var downs []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.Contains(line, `"reason":"node_down"`) {
			if !strings.Contains(line, `"command":"node_down"`) || !strings.Contains(line, `"nodeId":"node-a"`) {
				t.Fatalf("a node_down end that does not say who and why: %s", line)
			}
			downs = append(downs, line)
		}
	}
	if len(downs) != 2 {
		t.Fatalf("%d sessions ended with node_down, want ann's and carol's once each:\n%s", len(downs), out)
	}
}

// A server cut off from NATS but still serving loses its lease; the other
// server ends its sessions, and the cut-off server drops those sockets.
// Once back, it holds its lease again and serves on.
func TestServerCutOffFromNATSDropsItsSessions(t *testing.T) {
	t.Parallel()
	broker := natstest.Start(t)
	link := newProxy(t, strings.TrimPrefix(broker.URL, "nats://"))
	db := esdbtest.StartServer(t, esdbtest.Options{})
	common := []string{"--event-store", db.URL(), "--signals-prefix", natstest.Prefix(t), "--lease-ttl", natsLeaseTTL, "--reap-interval", natsReap}
	nodeA := startServer(t, t.TempDir(), append(common, "--node-id", "node-a", "--signals", broker.URL)...)
	nodeB := startServer(t, t.TempDir(), append(common, "--node-id", "node-b", "--signals", "nats://"+link.addr)...)

	const room = "cut-off"
	ann := sockettest.Dial(t, nodeA.URL, "websocket", nil)
	bob := sockettest.Dial(t, nodeB.URL, "websocket", nil)
	joinAll(t, room, map[string]*sockettest.Client{"ann": ann, "bob": bob})
	ann.WaitEvent("online_users", onlineAre("ann", "bob"))

	link.cut()
	cut := time.Now()
	ann.WaitEvent("user_left", leftIs("bob"))
	t.Logf("user_left reached node-a's client %s after node-b was cut off from NATS", time.Since(cut).Round(time.Millisecond))
	select {
	case <-bob.Disconnected():
	case <-time.After(30 * time.Second):
		t.Fatal("node-b kept serving a socket whose session the log says is over")
	}

	link.start()
	waitReconnected(t, nodeB)
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(nodeB.out.String(), "this node's lease is held again"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("node-b did not take its lease again within 60s:\n%s", nodeB.out.String())
		}
	}
	erin := sockettest.Dial(t, nodeB.URL, "websocket", nil)
	joinAll(t, room, map[string]*sockettest.Client{"erin": erin})
	ann.WaitEvent("online_users", onlineAre("ann", "erin"))
	typing(t, erin, room, "erin", true)
	ann.WaitEvent("user_typing", typingOf("erin", true))
}

// --signals is checked before anything is opened: an unknown form, postgres
// without a PostgreSQL event store, a bad prefix or lease TTL are refused
// with what to give instead; `config print` masks a NATS URL's credentials.
func TestSignalsFlags(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--signals", "redis://cache:6379"}, `--signals "redis://cache:6379": want postgres, none, or nats://host:4222`},
		{[]string{"--signals", "postgres"}, "--signals postgres needs a PostgreSQL event store"},
		{[]string{"--signals", "postgres", "--event-store", "esdb://localhost:2113?tls=false"}, "--signals postgres needs a PostgreSQL event store"},
		{[]string{"--signals", "nats://a:4222,http://b"}, "is not a NATS URL"},
		{[]string{"--signals", "nats://a:4222", "--signals-prefix", "a.b"}, "--signals-prefix"},
		{[]string{"--signals", "nats://a:4222", "--lease-ttl", "100ms"}, "--lease-ttl 100ms: must be at least 1s"},
	} {
		out, err := exec.Command(auraosBin, append([]string{"serve", "--addr", freeAddr(t), "--data-dir", t.TempDir()}, c.args...)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Errorf("serve %v: err=%v, want %q in:\n%s", c.args, err, c.want, out)
		}
	}
	printCmd := exec.Command(auraosBin, "config", "print")
	printCmd.Env = append(os.Environ(), "AURAOS_SIGNALS=nats://s3cr3t-token@a:4222,nats://u:pw@b:4222")
	out, err := printCmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "signals: nats://xxxxx@a:4222,nats://u:xxxxx@b:4222") || strings.Contains(string(out), "s3cr3t") {
		t.Fatalf("config print: %v\n%s", err, out)
	}
}
