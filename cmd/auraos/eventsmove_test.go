package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auraos/realtime/cmd/auraos/app"
	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/esdb/esdbtest"
	"github.com/auraos/realtime/eventstore/sqlstore"
	"github.com/auraos/realtime/schema/schematest"
	"github.com/auraos/realtime/socketadapter/sockettest"
)

// fillMoveSource fills a SQLite store in a fresh directory with events
// whose bytes a re-encoder would change (spacing, escapes, key order) and
// returns the directory and what ReadAll reads back.
func fillMoveSource(t *testing.T) (string, []eventstore.RecordedEvent) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	s, err := sqlstore.OpenSQLite(ctx, dir, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 300 {
		e := eventstore.EventData{
			Type:     domain.TypeMessagePosted,
			Data:     json.RawMessage(fmt.Sprintf("{ \"z\": %d,\n  \"a\" : \"h\\u00e9llo <b> \\\"%d\\\"\" }", i, i)),
			Metadata: json.RawMessage(fmt.Sprintf(`{"userId":"u%d" , "k":[1, 2]}`, i%3)),
		}
		if _, err := s.Append(ctx, fmt.Sprintf("chat-%d", i%7), eventstore.Any, e); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.ReadAll(ctx, eventstore.ReadAllOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return dir, all
}

// sameLog fails unless got holds want's events in order with the same ids,
// streams, versions, types and bytes (and times, when withTimes is set).
func sameLog(t *testing.T, got, want []eventstore.RecordedEvent, withTimes bool) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.Stream != w.Stream || g.Version != w.Version || g.Type != w.Type ||
			!bytes.Equal(g.Data, w.Data) || !bytes.Equal(g.Metadata, w.Metadata) || withTimes && !g.Time.Equal(w.Time) {
			t.Fatalf("event %d:\n got %+v\nwant %+v", i, g, w)
		}
		if i > 0 && !got[i-1].Position.Less(g.Position) {
			t.Fatalf("event %d: position %v after %v", i, g.Position, got[i-1].Position)
		}
	}
}

// readAllOf reads the whole log the storage selects.
func readAllOf(t *testing.T, storage app.Storage) []eventstore.RecordedEvent {
	t.Helper()
	s, err := storage.OpenEventStoreReadOnly(context.Background(), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	all, err := s.ReadAll(context.Background(), eventstore.ReadAllOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return all
}

// An exported SQLite log imports into an empty store of every kind with the
// same events byte for byte, and verifies there (on EventStoreDB, each
// stream's chain); a second import into the full store is refused.
func TestEventsExportImport(t *testing.T) {
	t.Parallel()
	src, want := fillMoveSource(t)
	file := filepath.Join(t.TempDir(), "log.jsonl")
	stdout, stderr, code := runAuraos(t, nil, "events", "export", "--data-dir", src, "--out", file)
	if code != 0 || !strings.HasPrefix(stdout, fmt.Sprintf("exported %d events to %s", len(want), file)) {
		t.Fatalf("export: exit %d, %q, %q", code, stdout, stderr)
	}
	// The file agrees with standard output's export.
	toStdout, _, code := runAuraos(t, nil, "events", "export", "--data-dir", src)
	if written, err := os.ReadFile(file); code != 0 || err != nil || string(written) != toStdout {
		t.Fatalf("export to stdout: exit %d, %v; differs from the file", code, err)
	}
	targets := []struct {
		name  string
		flags func(t *testing.T) []string
		times bool
	}{
		{"sqlite", func(t *testing.T) []string { return []string{"--data-dir", t.TempDir()} }, true},
		{"postgres", func(t *testing.T) []string {
			return []string{"--data-dir", t.TempDir(), "--event-store", schematest.PostgresURL(t)}
		}, true},
		{"esdb", func(t *testing.T) []string {
			return []string{"--data-dir", t.TempDir(), "--event-store", esdbtest.StartServer(t, esdbtest.Options{}).URL()}
		}, false},
	}
	for _, tc := range targets {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			flags := tc.flags(t)
			stdout, stderr, code := runAuraos(t, nil, append([]string{"events", "import", "--in", file}, flags...)...)
			if code != 0 || !strings.HasPrefix(stdout, fmt.Sprintf("imported %d events", len(want))) {
				t.Fatalf("import: exit %d, %q, %q", code, stdout, stderr)
			}
			storage := app.Storage{DataDir: flags[1], EventStore: "sqlite"}
			if len(flags) > 2 {
				storage.EventStore = flags[3]
			}
			sameLog(t, readAllOf(t, storage), want, tc.times)
			if stdout, stderr, code := runAuraos(t, nil, append([]string{"events", "verify"}, flags...)...); code != 0 || !strings.Contains(stdout, fmt.Sprintf("checked %d events", len(want))) {
				t.Fatalf("verify on the target: exit %d, %q, %q", code, stdout, stderr)
			}
			_, stderr, code = runAuraos(t, nil, append([]string{"events", "import", "--in", file}, flags...)...)
			if code != 1 || !strings.Contains(stderr, "CONFLICT: the target event store is not empty") {
				t.Fatalf("second import: exit %d, %q", code, stderr)
			}
		})
	}
}

// A file that does not verify is refused before anything is written: an
// edited event, a cut-short file, a file that is not an export; and
// standard input is read like a file.
func TestEventsImportRefusesBadFiles(t *testing.T) {
	t.Parallel()
	src, want := fillMoveSource(t)
	var exported bytes.Buffer
	if err := runEventsExport(context.Background(), &exported, &bytes.Buffer{}, app.Storage{DataDir: src, EventStore: "sqlite"}, "-"); err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(exported.String(), "\n")
	lines = lines[:len(lines)-1] // the empty string after the last newline
	edited := append([]string(nil), lines...)
	var l exportLine
	if err := json.Unmarshal([]byte(edited[5]), &l); err != nil {
		t.Fatal(err)
	}
	l.Data = []byte(`{"z":4}`)
	b, _ := json.Marshal(l)
	edited[5] = string(b) + "\n"
	for _, tc := range []struct {
		name, file, code, want string
	}{
		{"edited event", strings.Join(edited, ""), domain.ECONFLICT, "the chain breaks at position 5"},
		{"cut short", strings.Join(lines[:len(lines)-1], ""), domain.EINVALID, "cut short"},
		{"events dropped", lines[0] + strings.Join(lines[3:], ""), domain.ECONFLICT, "the chain breaks at position 1"},
		{"not an export", "{\"hello\":1}\n", domain.EINVALID, "not an auraos export"},
		{"not JSON", "auraos\n", domain.EINVALID, "line 1 is not a line of an auraos export"},
		{"empty", "", domain.EINVALID, "not an auraos export"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			err := runEventsImport(context.Background(), &bytes.Buffer{}, &bytes.Buffer{}, strings.NewReader(tc.file), app.Storage{DataDir: dir, EventStore: "sqlite"}, "-")
			if tc.code == domain.ECONFLICT && domain.ErrorCode(err) != domain.ECONFLICT || tc.code == domain.EINVALID && domain.ErrorCode(err) != domain.EINVALID ||
				!strings.Contains(fmt.Sprint(err), tc.want) {
				t.Fatalf("import: %v; want %s with %q", err, tc.code, tc.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "events.db")); !os.IsNotExist(err) {
				t.Fatalf("a refused import created the store: %v", err)
			}
		})
	}
	dir := t.TempDir()
	if err := runEventsImport(context.Background(), &bytes.Buffer{}, &bytes.Buffer{}, strings.NewReader(exported.String()), app.Storage{DataDir: dir, EventStore: "sqlite"}, "-"); err != nil {
		t.Fatalf("import from standard input: %v", err)
	}
	sameLog(t, readAllOf(t, app.Storage{DataDir: dir, EventStore: "sqlite"}), want, true)
	if err := runEventsImport(context.Background(), &bytes.Buffer{}, &bytes.Buffer{}, nil, app.Storage{DataDir: dir}, ""); domain.ErrorCode(err) != domain.EINVALID {
		t.Fatalf("import without --in: %v", err)
	}
}

// Issue 15's move: serve on the embedded store, post messages (acked),
// stop; export the log and the keys; import both into PostgreSQL; rebuild
// the projections there;
// serve on PostgreSQL: the messages acked before the move are in
// chat_history after it.
func TestMoveFromSQLiteToPostgres(t *testing.T) {
	t.Parallel()
	pg := schematest.PostgresURL(t) // skips without AURAOS_TEST_POSTGRES_URL
	before := t.TempDir()
	srv := startServer(t, before)
	alice := sockettest.Dial(t, srv.URL, "websocket", nil)
	alice.EmitAck("join_user_room", map[string]any{"userId": "alice", "userProfile": sockettest.Profile("alice")})
	alice.EmitAck("join_chat_room", map[string]any{"roomName": "moving", "userProfile": sockettest.Profile("alice")})
	var acked []string
	for i := range 5 {
		text := fmt.Sprintf("posted before the move %d", i)
		ack := alice.EmitAck("send_message", map[string]any{"roomName": "moving", "message": text, "userProfile": sockettest.Profile("alice")})
		if ack["ok"] != true {
			t.Fatalf("send_message: %v", ack)
		}
		acked = append(acked, text)
	}
	srv.stop()

	file := filepath.Join(t.TempDir(), "log.jsonl")
	if _, stderr, code := runAuraos(t, nil, "events", "export", "--data-dir", before, "--out", file); code != 0 {
		t.Fatalf("export: exit %d, %s", code, stderr)
	}
	// The personal fields are encrypted under keys that live in the read
	// database: they move too, or the messages would read as erased.
	keys := filepath.Join(t.TempDir(), "keys.jsonl")
	if _, stderr, code := runAuraos(t, nil, "keys", "export", "--data-dir", before, "--out", keys); code != 0 {
		t.Fatalf("keys export: exit %d, %s", code, stderr)
	}
	after := t.TempDir() // the PostgreSQL server's own data directory (nothing of SQLite in it)
	pgFlags := []string{"--data-dir", after, "--event-store", pg, "--read-db", pg}
	for _, args := range [][]string{
		append([]string{"events", "import", "--in", file}, pgFlags...),
		append([]string{"keys", "import", "--in", keys}, pgFlags...),
		append([]string{"projections", "rebuild", "--all"}, pgFlags...),
		append([]string{"events", "verify"}, pgFlags...),
	} {
		if stdout, stderr, code := runAuraos(t, nil, args...); code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args[:2], code, stdout, stderr)
		}
	}
	srv = startServer(t, after, "--event-store", pg, "--read-db", pg)
	bob := sockettest.Dial(t, srv.URL, "websocket", nil)
	bob.EmitAck("join_user_room", map[string]any{"userId": "bob", "userProfile": sockettest.Profile("bob")})
	bob.EmitAck("join_chat_room", map[string]any{"roomName": "moving", "userProfile": sockettest.Profile("bob")})
	hist := string(bob.WaitEvent("chat_history", nil))
	for _, text := range acked {
		if !strings.Contains(hist, text) {
			t.Fatalf("chat_history after the move lacks %q:\n%s", text, hist)
		}
	}
	srv.stop()
}
