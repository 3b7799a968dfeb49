package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/uptrace/bun"

	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/schema"
	"github.com/auraos/realtime/schema/schematest"
	"github.com/auraos/realtime/socketadapter/sockettest"
)

// forgetFixture is what the forget scenario sent: the personal bytes of the
// user it forgets and of the one it keeps.
type forgetFixture struct {
	forgotten, kept []string
	aliceKey        []byte // alice's data key, from a keys export before the forget
}

// uniqueProfile is a userProfile whose every personal field is unique to
// this test run.
func uniqueProfile(uid, tag string) map[string]any {
	return map[string]any{"uid": uid, "email": uid + "." + tag + "@forget.example", "displayName": uid + " Display " + tag, "photoURL": "https://img.example/" + uid + "-" + tag + ".png"}
}

// runForgetScenario has alice and bob talk and notify each other through a
// server started with storage flags, forgets alice through the CLI while the
// server runs, and checks the socket and the CLI show none of alice's
// personal data and all of bob's. It returns what was sent; the server is
// stopped.
func runForgetScenario(t *testing.T, dataDir string, storage ...string) forgetFixture {
	t.Helper()
	tag := eventstore.NewID()[:8] // unique to the run, so a match is ours
	srv := startServer(t, dataDir, append([]string{"--presence-grace", "0"}, storage...)...)
	alice := sockettest.Dial(t, srv.URL, "websocket", nil)
	bob := sockettest.Dial(t, srv.URL, "websocket", nil)
	ap, bp := uniqueProfile("alice", tag), uniqueProfile("bob", tag)
	for uid, c := range map[string]*sockettest.Client{"alice": alice, "bob": bob} {
		p := map[string]map[string]any{"alice": ap, "bob": bp}[uid]
		if ack := c.EmitAck("join_user_room", map[string]any{"userId": uid, "userProfile": p}); ack["ok"] != true {
			t.Fatalf("%s joins: %v", uid, ack)
		}
		if ack := c.EmitAck("join_chat_room", map[string]any{"roomName": "lobby", "userProfile": p}); ack["ok"] != true {
			t.Fatalf("%s joins lobby: %v", uid, ack)
		}
	}
	fx := forgetFixture{
		forgotten: []string{ap["email"].(string), ap["displayName"].(string), "alice-" + tag + ".png", "alice words " + tag, "alice title " + tag, "alice note " + tag, "alice data " + tag},
		kept:      []string{"bob words " + tag, "bob note " + tag},
	}
	say := func(c *sockettest.Client, p map[string]any, text string) {
		t.Helper()
		if ack := c.EmitAck("send_message", map[string]any{"roomName": "lobby", "message": text, "userProfile": p}); ack["ok"] != true {
			t.Fatalf("send_message %q: %v", text, ack)
		}
	}
	say(alice, ap, "alice words "+tag)
	say(bob, bp, "bob words "+tag)
	note := func(c *sockettest.Client, to, title, message, data string) {
		t.Helper()
		n := map[string]any{"title": title, "message": message, "type": "info", "data": map[string]any{"k": data}}
		if ack := c.EmitAck("send_notification", map[string]any{"to": to, "notification": n}); ack["ok"] != true {
			t.Fatalf("send_notification %q: %v", title, ack)
		}
	}
	note(alice, "bob", "alice title "+tag, "alice note "+tag, "alice data "+tag)
	note(bob, "alice", "bob title "+tag, "bob note "+tag, "bob data "+tag)
	bob.WaitEvent("notification", func(raw json.RawMessage) bool { return bytes.Contains(raw, []byte("alice note "+tag)) })
	alice.WaitEvent("notification", func(raw json.RawMessage) bool { return bytes.Contains(raw, []byte("bob note "+tag)) })

	// Back up the keys first: the test checks alice's key's bytes are gone
	// from the files afterwards.
	export, stderr, code := runAuraos(t, nil, append([]string{"keys", "export", "--data-dir", dataDir}, storage...)...)
	if code != 0 {
		t.Fatalf("keys export: exit %d\n%s", code, stderr)
	}
	for _, line := range strings.Split(strings.TrimSpace(export), "\n") {
		var k struct {
			UserID string
			Key    []byte
		}
		if err := json.Unmarshal([]byte(line), &k); err != nil {
			t.Fatalf("keys export line %q: %v", line, err)
		}
		if k.UserID == "alice" {
			fx.aliceKey = k.Key
		}
	}
	if len(fx.aliceKey) != 32 {
		t.Fatalf("keys export has no key of alice:\n%s", export)
	}

	alice.S.Disconnect()
	bob.WaitEvent("online_users", onlineAre("bob"))
	out, stderr, code := runAuraos(t, nil, append([]string{"users", "forget", "alice", "--reason", "GDPR request " + tag, "--by", "dpo", "--data-dir", dataDir}, storage...)...)
	if code != 0 {
		t.Fatalf("users forget: exit %d\n%s%s", code, out, stderr)
	}
	if !regexp.MustCompile(`1 keys deleted; [1-9]\d* events encrypted, now unreadable; 0 events predate encryption`).MatchString(out) {
		t.Errorf("users forget printed %q", out)
	}

	// A new member gets the room's history without alice's data.
	carol := sockettest.Dial(t, srv.URL, "websocket", nil)
	if ack := carol.EmitAck("join_user_room", map[string]any{"userId": "carol", "userProfile": sockettest.Profile("carol")}); ack["ok"] != true {
		t.Fatalf("carol joins: %v", ack)
	}
	if ack := carol.EmitAck("join_chat_room", map[string]any{"roomName": "lobby", "userProfile": sockettest.Profile("carol")}); ack["ok"] != true {
		t.Fatalf("carol joins lobby: %v", ack)
	}
	history := carol.WaitEvent("chat_history", nil)
	checkShows(t, "chat_history over the socket", string(history), fx, "bob words "+tag, `"message":"[deleted]"`, `"userName":"Deleted user"`)

	read := func(args ...string) string {
		t.Helper()
		out, stderr, code := runAuraos(t, nil, append(append(args, "--data-dir", dataDir), storage...)...)
		if code != 0 {
			t.Fatalf("auraos %v: exit %d\n%s", args, code, stderr)
		}
		return out
	}
	events := read("events", "read")
	checkShows(t, "events read", events, fx, "bob words "+tag, "bob note "+tag, `"UserForgotten"`, "GDPR request "+tag, `"by":"dpo"`)
	checkShows(t, "query chat-history", read("query", "chat-history", "--room", "lobby"), fx, "bob words "+tag, "[deleted]")
	head := regexp.MustCompile(`"position":"?(\d+)`).FindAllStringSubmatch(events, -1)
	if len(head) == 0 {
		t.Fatalf("events read shows no positions:\n%s", events)
	}
	at := read("query", "chat-history", "--room", "lobby", "--at-position", head[len(head)-1][1])
	checkShows(t, "query chat-history --at-position", at, fx, "bob words "+tag, "[deleted]")
	// The chain covers the stored bytes, which forgetting does not touch.
	if v := read("events", "verify"); !strings.Contains(v, "the chain is intact") {
		t.Errorf("events verify after the forget: %s", v)
	}
	checkShows(t, "events export", decodedExport(t, read("events", "export")), fx, "UserForgotten")
	srv.stop()

	// With no server running, a rebuild gives the same history.
	read("projections", "rebuild", "--all")
	if again := read("query", "chat-history", "--room", "lobby"); again != read("query", "chat-history", "--room", "lobby", "--at-position", head[len(head)-1][1]) {
		t.Errorf("after a rebuild the history reads\n%s", again)
	}
	return fx
}

// decodedExport returns an export's lines with their base64 data and
// metadata decoded, so that checkShows sees the bytes the log stores.
func decodedExport(t *testing.T, export string) string {
	t.Helper()
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(export), "\n") {
		var l map[string]any
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("export line %q: %v", line, err)
		}
		for _, field := range []string{"data", "metadata"} {
			if s, ok := l[field].(string); ok {
				raw, err := base64.StdEncoding.DecodeString(s)
				if err != nil {
					t.Fatalf("export line's %s: %v", field, err)
				}
				l[field] = string(raw)
			}
		}
		fmt.Fprintf(&b, "%v\n", l)
	}
	return b.String()
}

// checkShows fails when out holds any of the forgotten user's bytes or
// lacks any of want.
func checkShows(t *testing.T, what, out string, fx forgetFixture, want ...string) {
	t.Helper()
	for _, s := range fx.forgotten {
		if strings.Contains(out, s) {
			t.Errorf("%s shows the forgotten %q:\n%s", what, s, out)
		}
	}
	for _, s := range want {
		if !strings.Contains(out, s) {
			t.Errorf("%s lacks %q:\n%s", what, s, out)
		}
	}
}

// Forgetting a user leaves none of their personal bytes on any read path
// nor in the SQLite files, and the other user's data intact.
func TestForgetUserEndToEnd(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fx := runForgetScenario(t, dir)
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	var all []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
		for _, s := range fx.forgotten {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds the forgotten %q", filepath.Base(f), s)
			}
		}
		if bytes.Contains(b, fx.aliceKey) {
			t.Errorf("%s still holds alice's deleted key", filepath.Base(f))
		}
	}
	if !bytes.Contains(all, []byte(fx.kept[0])) {
		t.Errorf("no file holds bob's message (%q): the read models lost it", fx.kept[0])
	}
}

// The same on PostgreSQL: no table holds the forgotten user's bytes.
func TestForgetUserEndToEndPostgres(t *testing.T) {
	t.Parallel()
	pg := schematest.PostgresURL(t)
	fx := runForgetScenario(t, t.TempDir(), "--event-store", pg, "--read-db", pg)
	ctx := context.Background()
	db, err := schema.OpenPostgres(ctx, pg, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var tables []string
	if err := db.NewRaw("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()").Scan(ctx, &tables); err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for _, table := range tables {
		var rows []string
		if err := db.NewRaw("SELECT t::text FROM ? AS t", bun.Ident(table)).Scan(ctx, &rows); err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			all.WriteString(r + "\n")
			for _, s := range fx.forgotten {
				if strings.Contains(r, s) {
					t.Errorf("table %s holds the forgotten %q: %s", table, s, r)
				}
			}
		}
	}
	if !strings.Contains(all.String(), fx.kept[0]) {
		t.Errorf("no table holds bob's message (%q)", fx.kept[0])
	}
}
