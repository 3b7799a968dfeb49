package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/auraos/realtime/cmd/auraos/app"
	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore/sqlstore"
	"github.com/auraos/realtime/projections"
	"github.com/auraos/realtime/schema/schematest"
	"github.com/auraos/realtime/socketadapter/sockettest"
)

// query runs `auraos query name` with o and returns what it printed on
// standard output and standard error.
func query(t *testing.T, name string, o queryOptions) (string, string, error) {
	t.Helper()
	if o.format == "" {
		o.format = "json"
	}
	var out, note bytes.Buffer
	err := runQuery(context.Background(), &out, &note, name, o)
	return out.String(), note.String(), err
}

// summary shortens a JSON answer to what the cases compare: user ids,
// message texts, or apps with the totals.
func summary(t *testing.T, name, out string) string {
	t.Helper()
	var parts []string
	switch name {
	case "online-users":
		var users []struct{ ID string }
		if err := json.Unmarshal([]byte(out), &users); err != nil {
			t.Fatalf("online-users output %q: %v", out, err)
		}
		for _, u := range users {
			parts = append(parts, u.ID)
		}
	case "chat-history":
		var msgs []struct{ Message string }
		if err := json.Unmarshal([]byte(out), &msgs); err != nil {
			t.Fatalf("chat-history output %q: %v", out, err)
		}
		for _, m := range msgs {
			parts = append(parts, m.Message)
		}
	case "app-status":
		var s struct {
			TotalApps, ActiveApps, InactiveApps int
			Apps                                []struct{ AppID, Status string }
		}
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			t.Fatalf("app-status output %q: %v", out, err)
		}
		for _, a := range s.Apps {
			parts = append(parts, a.AppID+"="+a.Status)
		}
		parts = append(parts, fmt.Sprintf("%d/%d/%d", s.TotalApps, s.ActiveApps, s.InactiveApps))
	}
	return strings.Join(parts, " ")
}

// Each model at positions and times of the audit log (see auditLog), before
// its first event, between commits, exactly at one, and at the head.
func TestQueryAtAMoment(t *testing.T) {
	t.Parallel()
	l := writeAuditLog(t)
	storage := app.Storage{DataDir: l.dir, EventStore: "sqlite"}
	cases := []struct {
		model, room, at, atPosition string
		want, through               string
	}{
		{"online-users", "", "", "0", "", "0"},
		{"online-users", "", "", "1", "alice", "1"},
		{"online-users", "", "", "3", "alice bob", "3"},
		{"online-users", "", "", "11", "bob", "11"},
		{"online-users", "", "", "13", "bob d&d<1>", "13"},
		{"online-users", "", at("09:59"), "", "", "0"},
		{"online-users", "", "2026-11-27T10:01:30Z", "", "alice", "2"},
		{"online-users", "", at("10:02"), "", "alice bob", "3"},
		{"online-users", "", "2026-11-27T11:02:00+01:00", "", "alice bob", "3"},
		{"chat-history", "general", "", "3", "", "3"},
		{"chat-history", "general", "", "4", "hi @ai", "4"},
		{"chat-history", "general", "", "5", "hi @ai hello alice", "5"},
		{"chat-history", "general", "2026-11-27T10:03:59.999999Z", "", "hi @ai", "4"},
		{"chat-history", "general", at("10:04"), "", "hi @ai hello alice", "5"},
		{"chat-history", "random", "", "8", "", "8"},
		{"chat-history", "random", "", "9", "alice", "9"},
		{"chat-history", "nowhere", "", "13", "", "13"},
		{"app-status", "", "", "6", "0/0/0", "6"},
		{"app-status", "", "", "7", "a1=active 1/1/0", "7"},
		{"app-status", "", "", "8", "a1=active a2=inactive 2/1/1", "8"},
		{"app-status", "", "2026-11-27T10:06:59Z", "", "a1=active 1/1/0", "7"},
		{"app-status", "", at("23:00"), "", "a1=active a2=inactive 2/1/1", "13"},
	}
	for _, c := range cases {
		out, note, err := query(t, c.model, queryOptions{storage: storage, room: c.room, at: c.at, atPosition: c.atPosition})
		name := fmt.Sprintf("%s %s --at %q --at-position %q", c.model, c.room, c.at, c.atPosition)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := summary(t, c.model, out); got != c.want {
			t.Errorf("%s: %q, want %q", name, got, c.want)
		}
		if !strings.Contains(note, " at position "+c.through+",") {
			t.Errorf("%s: the note %q does not say position %s", name, note, c.through)
		}
	}
	// An empty model is the protocol's empty payload, not nothing.
	for model, want := range map[string]string{"online-users": "[]\n", "chat-history": "[]\n", "app-status": `{"totalApps":0,"activeApps":0,"inactiveApps":0,"apps":[]}` + "\n"} {
		out, _, err := query(t, model, queryOptions{storage: storage, room: "general", atPosition: "0"})
		if err != nil || out != want {
			t.Errorf("%s before the first event: %q %v, want %q", model, out, err, want)
		}
	}
}

// Table output: a header, one aligned row per entry (every column starts
// where its header does), the totals of app-status after a blank line.
func TestQueryTable(t *testing.T) {
	t.Parallel()
	l := writeAuditLog(t)
	storage := app.Storage{DataDir: l.dir, EventStore: "sqlite"}
	cases := []struct {
		model, room, atPosition string
		header                  []string
		rows                    int
		contains                []string
	}{
		{"online-users", "", "3", []string{"USER", "SOCKET", "STATUS", "CONNECTED AT", "LAST SEEN", "EMAIL", "NAME"}, 2, []string{"alice", "a1", "bob@example.com", "User bob"}},
		{"chat-history", "general", "5", []string{"TIME", "USER", "NAME", "TYPE", "ID", "MESSAGE"}, 2, []string{"hi @ai", "ai_response", "AI Assistant"}},
		{"app-status", "", "13", []string{"APP", "STATUS", "UPDATED AT"}, 2, []string{"a2", "inactive", "total 2  active 1  inactive 1"}},
		{"online-users", "", "0", []string{"USER", "SOCKET"}, 0, nil},
	}
	for _, c := range cases {
		out, _, err := query(t, c.model, queryOptions{storage: storage, room: c.room, atPosition: c.atPosition, format: "table"})
		if err != nil {
			t.Fatalf("%s: %v", c.model, err)
		}
		lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
		rows := lines[1:]
		if c.model == "app-status" {
			rows = rows[:len(rows)-2] // the blank line and the totals
		}
		if len(rows) != c.rows {
			t.Fatalf("%s: %d rows, want %d:\n%s", c.model, len(rows), c.rows, out)
		}
		for i, h := range c.header {
			col := strings.Index(lines[0], h)
			if col < 0 || (i > 0 && lines[0][col-2:col] != "  ") {
				t.Fatalf("%s: header %q lacks column %s", c.model, lines[0], h)
			}
			for _, r := range rows {
				if col > 0 && (len(r) <= col || r[col-1] != ' ' || r[col] == ' ') {
					t.Errorf("%s: column %s (at %d) is not aligned in %q", c.model, h, col, r)
				}
			}
		}
		for _, s := range c.contains {
			if !strings.Contains(out, s) {
				t.Errorf("%s: table lacks %q:\n%s", c.model, s, out)
			}
		}
	}
}

// listFiles returns every file under dir with a hash of its content.
func listFiles(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		out[path] = sha256.Sum256(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestQueryRefusesBadFlags(t *testing.T) {
	t.Parallel()
	l := writeAuditLog(t)
	storage := app.Storage{DataDir: l.dir, EventStore: "sqlite"}
	empty := t.TempDir()
	fixedNow := func() time.Time { return auditStart.Add(time.Hour) }
	cases := []struct {
		name, model string
		o           queryOptions
		code, says  string
	}{
		{"format", "online-users", queryOptions{storage: storage, format: "xml"}, domain.EINVALID, "--format"},
		{"no room", "chat-history", queryOptions{storage: storage}, domain.EINVALID, "needs --room"},
		{"room too long", "chat-history", queryOptions{storage: storage, room: strings.Repeat("r", 129)}, domain.EINVALID, "--room"},
		{"both moments", "app-status", queryOptions{storage: storage, at: at("10:00"), atPosition: "1"}, domain.EINVALID, "not both"},
		{"a time without a zone", "app-status", queryOptions{storage: storage, at: "2026-11-27 10:00"}, domain.EINVALID, "--at"},
		{"a time exactly now", "app-status", queryOptions{storage: storage, at: at("11:00"), now: fixedNow}, "", ""},
		{"a time after now", "app-status", queryOptions{storage: storage, at: "2026-11-27T11:00:01Z", now: fixedNow}, domain.EINVALID, "in the future"},
		{"a position that is no number", "app-status", queryOptions{storage: storage, atPosition: "ten"}, domain.EINVALID, "--at-position"},
		{"a negative position", "app-status", queryOptions{storage: storage, atPosition: "-3"}, domain.EINVALID, "--at-position"},
		{"a position past the head", "online-users", queryOptions{storage: storage, atPosition: "14"}, domain.EINVALID, "past the head of the log (13)"},
		{"no read database", "online-users", queryOptions{storage: app.Storage{DataDir: empty, EventStore: "sqlite"}}, domain.EUNAVAILABLE, "no read models"},
		{"a read database of no known kind", "online-users", queryOptions{storage: app.Storage{DataDir: l.dir, ReadDB: "mysql://db/x"}}, domain.EINVALID, "--read-db"},
		{"an unknown model", "typing", queryOptions{storage: storage}, domain.EINVALID, "unknown read model"},
	}
	for _, c := range cases {
		_, _, err := query(t, c.model, c.o)
		if c.code == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if domain.ErrorCode(err) != c.code || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v, want %s saying %q", c.name, err, c.code, c.says)
		}
	}
	if files := listFiles(t, empty); len(files) != 0 {
		t.Fatalf("a query of a missing read database created %v", files)
	}
}

// Without --at, query reads the live read model read-only: it answers what
// the same moment folded from the log answers, and leaves every file as it
// was; a model that never ran or that another version wrote is refused.
func TestQueryNowReadsTheLiveModelReadOnly(t *testing.T) {
	t.Parallel()
	for _, kind := range schematest.Kinds() {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			l := writeAuditLog(t)
			storage := app.Storage{DataDir: l.dir, EventStore: "sqlite"}
			if kind == "postgres" {
				storage.ReadDB = schematest.PostgresURL(t)
			}
			ctx := context.Background()
			var rebuilt bytes.Buffer
			if err := runProjectionsRebuild(ctx, &rebuilt, storage, projections.All(), false); err != nil {
				t.Fatal(err)
			}
			// One line per projection, then the one read that fed them.
			if !regexp.MustCompile(`^rebuilt online-users: \d+ events through position 13\nrebuilt chat-history: \d+ events through position 13\nrebuilt app-status: \d+ events through position 13\nread 11 events once for 3 projections in \S+ \(\d+ events/s\)\n$`).MatchString(rebuilt.String()) {
				t.Errorf("rebuild printed:\n%s", rebuilt.String())
			}
			before := listFiles(t, l.dir)
			for _, model := range []string{"online-users", "chat-history", "app-status"} {
				for _, format := range []string{"json", "table"} {
					now, note, err := query(t, model, queryOptions{storage: storage, room: "general", format: format})
					if err != nil {
						t.Fatalf("%s now: %v", model, err)
					}
					folded, _, err := query(t, model, queryOptions{storage: storage, room: "general", format: format, atPosition: "13"})
					if err != nil {
						t.Fatal(err)
					}
					if now != folded || !strings.Contains(note, "at position 13, from the live read model") {
						t.Errorf("%s %s now (%s):\n%s\nfolded at the head:\n%s", model, format, note, now, folded)
					}
				}
			}
			if after := listFiles(t, l.dir); !reflect.DeepEqual(before, after) {
				t.Errorf("querying changed the data directory:\nbefore %v\nafter  %v", before, after)
			}

			// The database refuses writes.
			ro, err := storage.OpenReadDBReadOnly(ctx)
			if err != nil {
				t.Fatal(err)
			}
			db := ro.Reader
			// SQLite says "readonly database", PostgreSQL "read-only transaction".
			if _, err := db.ExecContext(ctx, "DELETE FROM app_status"); err == nil || !strings.Contains(strings.ReplaceAll(err.Error(), "-", ""), "readonly") {
				t.Errorf("a DELETE on the read-only read database: %v", err)
			}
			db.Close()

			// A stored version other than the code's.
			rdb, err := storage.OpenReadDB(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := rdb.Writer.ExecContext(ctx, "UPDATE projection_checkpoints SET version = 99 WHERE name = 'app-status'"); err != nil {
				t.Fatal(err)
			}
			_, _, err = query(t, "app-status", queryOptions{storage: storage})
			if domain.ErrorCode(err) != domain.EUNAVAILABLE || !errors.Is(err, projections.ErrNeedsRebuild) || !strings.Contains(err.Error(), "rebuild app-status") {
				t.Errorf("a model of another version: %v", err)
			}
			// One that never ran.
			if _, err := rdb.Writer.ExecContext(ctx, "DELETE FROM projection_checkpoints WHERE name = 'online-users'"); err != nil {
				t.Fatal(err)
			}
			rdb.Close()
			_, _, err = query(t, "online-users", queryOptions{storage: storage})
			if domain.ErrorCode(err) != domain.EUNAVAILABLE || !strings.Contains(err.Error(), "never run") {
				t.Errorf("a model that never ran: %v", err)
			}
			// A past moment needs no read database at all.
			if _, _, err := query(t, "online-users", queryOptions{storage: storage, atPosition: "3"}); err != nil {
				t.Errorf("a past moment: %v", err)
			}
		})
	}
}

// decodeJSON decodes a JSON document into generic values, for comparing
// payloads whatever their spacing or escaping.
func decodeJSON(t *testing.T, what string, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s %q: %v", what, b, err)
	}
	return v
}

// What query prints is what the socket sends for the same state: the
// chat_history a joining client gets, the online_users list, the
// app_updated payloads and system_status_update's counts, from the live read
// model of a running server and folded from its log.
func TestQueryAnswersAsTheSocketSends(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := startServer(t, dir)
	alice := sockettest.Dial(t, srv.URL, "websocket", nil)
	alice.EmitAck("join_user_room", map[string]any{"userId": "alice", "userProfile": sockettest.Profile("alice")})
	alice.EmitAck("join_chat_room", map[string]any{"roomName": "general", "userProfile": sockettest.Profile("alice")})
	for _, m := range []string{"first", "second <b>&</b>", "third\nline"} {
		alice.EmitAck("send_message", map[string]any{"roomName": "general", "message": m, "userProfile": sockettest.Profile("alice")})
	}
	bob := sockettest.Dial(t, srv.URL, "websocket", nil)
	bob.EmitAck("join_user_room", map[string]any{"userId": "bob", "userProfile": sockettest.Profile("bob")})
	bob.EmitAck("update_app_status", map[string]any{"appId": "a1", "status": "active"})
	bob.EmitAck("update_app_status", map[string]any{"appId": "a2", "status": "active"})
	bob.EmitAck("update_app_status", map[string]any{"appId": "a2", "status": "inactive"})
	// Joining now, bob gets the room's history.
	bob.EmitAck("join_chat_room", map[string]any{"roomName": "general", "userProfile": sockettest.Profile("bob")})
	history := bob.WaitEvent("chat_history", nil)
	online := bob.WaitEvent("online_users", func(raw json.RawMessage) bool {
		var users []any
		return json.Unmarshal(raw, &users) == nil && len(users) == 2
	})
	bob.S.Emit("request_system_status")
	status := bob.WaitEvent("system_status_update", func(raw json.RawMessage) bool {
		var s struct{ TotalApps int }
		return json.Unmarshal(raw, &s) == nil && s.TotalApps == 2
	})
	apps := map[string]any{}
	for _, raw := range bob.Received("app_updated") {
		a := decodeJSON(t, "app_updated", raw).(map[string]any)
		apps[a["appId"].(string)] = a
	}
	if len(apps) != 2 {
		t.Fatalf("app_updated payloads: %v", apps)
	}

	store, err := sqlstore.OpenSQLite(context.Background(), dir, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	head, err := store.Head(context.Background())
	store.Close()
	if err != nil {
		t.Fatal(err)
	}
	storage := app.Storage{DataDir: dir, EventStore: "sqlite"}
	for _, moment := range []queryOptions{{storage: storage}, {storage: storage, atPosition: head.String()}} {
		label := "now"
		if moment.atPosition != "" {
			label = "at the head " + moment.atPosition
		}
		moment.room = "general"
		out, _, err := query(t, "chat-history", moment)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := decodeJSON(t, "chat-history", []byte(out)), decodeJSON(t, "chat_history", history); !reflect.DeepEqual(got, want) {
			t.Errorf("chat-history %s:\n%s\nthe socket sent\n%s", label, out, history)
		}
		// Bob's join moved nobody's lastSeen; the list after it is the
		// last presence change.
		out, _, err = query(t, "online-users", moment)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := decodeJSON(t, "online-users", []byte(out)), decodeJSON(t, "online_users", online); !reflect.DeepEqual(got, want) {
			t.Errorf("online-users %s:\n%s\nthe socket sent\n%s", label, out, online)
		}
		out, _, err = query(t, "app-status", moment)
		if err != nil {
			t.Fatal(err)
		}
		got := decodeJSON(t, "app-status", []byte(out)).(map[string]any)
		sent := decodeJSON(t, "system_status_update", status).(map[string]any)
		for _, k := range []string{"totalApps", "activeApps", "inactiveApps"} {
			if got[k] != sent[k] {
				t.Errorf("app-status %s: %s %v, system_status_update %v", label, k, got[k], sent[k])
			}
		}
		if list := got["apps"].([]any); len(list) != 2 || !reflect.DeepEqual(list[0], apps["a1"]) || !reflect.DeepEqual(list[1], apps["a2"]) {
			t.Errorf("app-status %s apps %v, the socket's last app_updated %v", label, list, apps)
		}
	}
}
