package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/esdb"
	"github.com/auraos/realtime/eventstore/esdb/esdbtest"
	"github.com/auraos/realtime/eventstore/sqlstore"
	"github.com/auraos/realtime/schema"
	"github.com/auraos/realtime/schema/schematest"
)

// chainLogSize is how many events tamperLog's logs hold.
const chainLogSize = 60

// tamperLog is a filled event store of one kind: the flags that select it,
// and a direct connection to its database for the tampering.
type tamperLog struct {
	flags []string
	raw   *bun.DB
}

// newTamperLog fills a fresh store of kind ("sqlite" or "postgres") with
// chainLogSize events in a few streams and returns it, closed.
func newTamperLog(t *testing.T, kind string) tamperLog {
	t.Helper()
	ctx := context.Background()
	var store *sqlstore.Store
	var l tamperLog
	var err error
	switch kind {
	case "sqlite":
		dir := t.TempDir()
		store, err = sqlstore.OpenSQLite(ctx, dir, sqlstore.Options{})
		if err == nil {
			l.flags = []string{"--data-dir", dir}
		}
	default:
		dsn := schematest.PostgresURL(t)
		store, err = sqlstore.OpenPostgres(ctx, dsn, sqlstore.Options{})
		l.flags = []string{"--data-dir", t.TempDir(), "--event-store", dsn}
	}
	if err != nil {
		t.Fatal(err)
	}
	for i := range chainLogSize {
		e := eventstore.EventData{Type: "MessagePosted", Data: json.RawMessage(fmt.Sprintf(`{"i":%d,"text":"héllo"}`, i)), Metadata: json.RawMessage(`{"userId":"u1"}`)}
		if _, err := store.Append(ctx, fmt.Sprintf("chat-%d", i%4), eventstore.Any, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	if kind == "sqlite" {
		l.raw, err = schema.OpenSQLite(filepath.Join(l.flags[1], "events.db"), schema.SQLiteOptions{Mode: schema.SQLiteWriter})
	} else {
		l.raw, err = schema.OpenPostgres(ctx, l.flags[3], 1)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.raw.Close() })
	return l
}

// exec runs the tampering statements on the log's database, then lets the
// database go (SQLite checkpoints its WAL), as an intruder would leave it.
func (l tamperLog) exec(t *testing.T, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := l.raw.ExecContext(context.Background(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// run runs `auraos events SUB` on the log with extra arguments.
func (l tamperLog) run(t *testing.T, sub string, extra ...string) (string, string, int) {
	t.Helper()
	return runAuraos(t, nil, append(append([]string{"events", sub}, l.flags...), extra...)...)
}

// The tamper test of issue 15: in a copy of a filled log of each SQL kind,
// one row's data edited, one row's metadata edited, a row deleted, a row
// inserted and two rows swapped are each reported at the right position by
// the real binary (exit 1), and the untouched log verifies (exit 0), its
// head agreeing with `events head` and passing as --expect.
func TestEventsVerifyNamesTheTamperedPosition(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			for _, tc := range []struct {
				name   string
				stmts  []string
				wantAt int // 0: the log verifies
			}{
				{"untouched", nil, 0},
				{"data edited", []string{`UPDATE events SET data = '{"i":9,"text":"hello"}' WHERE position = 10`}, 10},
				{"metadata edited", []string{`UPDATE events SET metadata = '{"userId":"u2"}' WHERE position = 20`}, 20},
				{"row deleted", []string{`DELETE FROM events WHERE position = 30`}, 30},
				{"row inserted", []string{fmt.Sprintf(`INSERT INTO events (position, event_id, stream, version, type, data, metadata, created_at, hash) SELECT %d, '%s', 'chat-9', 0, type, data, metadata, created_at, hash FROM events WHERE position = %d`, chainLogSize+1, eventstore.NewID(), chainLogSize)}, chainLogSize + 1},
				{"rows swapped", []string{
					`UPDATE events SET position = -1 WHERE position = 40`,
					`UPDATE events SET position = 40 WHERE position = 41`,
					`UPDATE events SET position = 41 WHERE position = -1`,
				}, 40},
			} {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					l := newTamperLog(t, kind)
					var head headJSON
					stdout, _, code := l.run(t, "head", "--format", "json")
					if code != 0 || json.Unmarshal([]byte(stdout), &head) != nil || head.Position != chainLogSize || len(head.Hash) != 64 {
						t.Fatalf("head: exit %d, %q", code, stdout)
					}
					l.exec(t, tc.stmts...)
					stdout, stderr, code := l.run(t, "verify")
					if tc.wantAt == 0 {
						want := fmt.Sprintf("the chain is intact: checked %d events; head %d:%s\n", chainLogSize, head.Position, head.Hash)
						if code != 0 || stdout != want {
							t.Fatalf("verify: exit %d, stdout %q, stderr %q; want %q", code, stdout, stderr, want)
						}
						expect := fmt.Sprintf("%d:%s", head.Position, head.Hash)
						if _, stderr, code := l.run(t, "verify", "--expect", expect); code != 0 {
							t.Fatalf("verify --expect the head: exit %d, %s", code, stderr)
						}
						return
					}
					want := fmt.Sprintf("CONFLICT: event log tampered with: the chain breaks at position %d:", tc.wantAt)
					if code != 1 || stdout != "" || !strings.Contains(stderr, want) {
						t.Fatalf("verify: exit %d, stdout %q, stderr %q; want 1 and %q", code, stdout, stderr, want)
					}
				})
			}
		})
	}
}

// --expect proves the log still holds a recorded prefix: a truncated log
// or a rewritten one fails, a malformed anchor is refused as invalid, and
// head and verify print JSON.
func TestEventsVerifyExpect(t *testing.T) {
	t.Parallel()
	l := newTamperLog(t, "sqlite")
	stdout, _, code := l.run(t, "verify", "--format", "json")
	var report verifyJSON
	if code != 0 || json.Unmarshal([]byte(stdout), &report) != nil || report.Events != chainLogSize || report.Head.Position != chainLogSize {
		t.Fatalf("verify --format json: exit %d, %q", code, stdout)
	}
	head := fmt.Sprintf("%d:%s", report.Head.Position, report.Head.Hash)
	other := fmt.Sprintf("%d:%s", report.Head.Position-1, report.Head.Hash)
	for _, tc := range []struct {
		expect string
		want   string
	}{
		{"12", "INVALID_PAYLOAD: --expect: \"12\" is not POSITION:HASH"},
		{"x:" + report.Head.Hash, "INVALID_PAYLOAD: --expect:"},
		{"5:abc", "INVALID_PAYLOAD: --expect:"},
		{other, fmt.Sprintf("the chain breaks at position %d: its hash is", report.Head.Position-1)},
		{fmt.Sprintf("%d:%s", chainLogSize+5, report.Head.Hash), fmt.Sprintf("the chain breaks at position %d: the expected position is not in the log", chainLogSize+5)},
	} {
		if _, stderr, code := l.run(t, "verify", "--expect", tc.expect); code != 1 || !strings.Contains(stderr, tc.want) {
			t.Errorf("--expect %s: exit %d, stderr %q; want 1 and %q", tc.expect, code, stderr, tc.want)
		}
	}
	// The last event deleted: only the recorded head notices.
	l.exec(t, fmt.Sprintf("DELETE FROM events WHERE position = %d", chainLogSize))
	if _, stderr, code := l.run(t, "verify"); code != 0 {
		t.Fatalf("verify without --expect after the last event was deleted: exit %d, %s", code, stderr)
	}
	want := fmt.Sprintf("the chain breaks at position %d: the expected position is not in the log", chainLogSize)
	if _, stderr, code := l.run(t, "verify", "--expect", head); code != 1 || !strings.Contains(stderr, want) {
		t.Fatalf("verify --expect the old head: exit %d, stderr %q; want %q", code, stderr, want)
	}
	if _, stderr, code := l.run(t, "head", "--format", "xml"); code != 1 || !strings.Contains(stderr, `INVALID_PAYLOAD: --format "xml": want table or json`) {
		t.Fatalf("head --format xml: exit %d, %q", code, stderr)
	}
	stdout, _, code = l.run(t, "head")
	if code != 0 || !strings.HasPrefix(stdout, "POSITION  HASH\n59 ") {
		t.Fatalf("head: exit %d, %q", code, stdout)
	}
}

// On EventStoreDB each stream carries its own chain: verify checks them all
// through the real binary, names the first event whose link was forged
// (appended behind the store's back), and head and --expect are refused.
func TestEventsVerifyOnEventStoreDB(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := esdbtest.StartServer(t, esdbtest.Options{})
	s, err := esdb.Open(ctx, db.URL(), esdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		e := eventstore.EventData{Type: "MessagePosted", Data: json.RawMessage(fmt.Sprintf(`{"i": %d}`, i)), Metadata: json.RawMessage(`{"userId":"u1"}`)}
		if _, err := s.Append(ctx, fmt.Sprintf("chat-%d", i%3), eventstore.Any, e); err != nil {
			t.Fatal(err)
		}
	}
	flags := []string{"--data-dir", t.TempDir(), "--event-store", db.URL()}
	stdout, stderr, code := runAuraos(t, nil, append([]string{"events", "verify"}, flags...)...)
	if code != 0 || stdout != "the stream chains are intact: checked 30 events in 3 streams\n" {
		t.Fatalf("verify: exit %d, %q, %q", code, stdout, stderr)
	}
	for _, args := range [][]string{{"events", "head"}, {"events", "verify", "--expect", "1:" + strings.Repeat("0", 64)}} {
		if _, stderr, code := runAuraos(t, nil, append(args, flags...)...); code != 1 || !strings.Contains(stderr, "INVALID_PAYLOAD: this event store has no global hash chain") {
			t.Errorf("%v: exit %d, %q", args, code, stderr)
		}
	}
	// An event appended with the client itself, its link made up.
	cfg, err := esdbclient.ParseConnectionString(db.URL())
	if err != nil {
		t.Fatal(err)
	}
	client, err := esdbclient.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	forged := esdbclient.EventData{EventID: uuid.New(), EventType: "MessagePosted", ContentType: esdbclient.ContentTypeJson,
		Data: []byte(`{"i":99}`), Metadata: []byte(`{"auraosChain":"` + strings.Repeat("ab", 32) + `","metadata":{"userId":"u1"}}`)}
	if _, err := client.AppendToStream(ctx, "chat-1", esdbclient.AppendToStreamOptions{}, forged); err != nil {
		t.Fatal(err)
	}
	last, err := s.ReadStream(ctx, "chat-1", eventstore.ReadStreamOptions{Direction: eventstore.Backwards, From: eventstore.End, Limit: 1})
	if err != nil || len(last) != 1 || string(last[0].Metadata) != `{"userId":"u1"}` {
		t.Fatalf("the forged event reads as %+v (%v)", last, err)
	}
	s.Close()
	want := fmt.Sprintf(`the chain breaks at position %d: stream "chat-1", version 10: the event does not match its link`, last[0].Position.Commit)
	if _, stderr, code := runAuraos(t, nil, append([]string{"events", "verify"}, flags...)...); code != 1 || !strings.Contains(stderr, want) {
		t.Fatalf("verify after the forgery: exit %d, %q; want %q", code, stderr, want)
	}
}
