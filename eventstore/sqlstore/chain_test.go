package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/uptrace/bun"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/chain"
	"github.com/auraos/realtime/eventstore/sqlstore"
	"github.com/auraos/realtime/schema"
)

// chainDB is one SQL event store database for the chain tests: open opens
// a store on it (several stand for several processes), raw is a direct
// connection for what a store never does (planting old rows, tampering).
type chainDB struct {
	kind string
	open func(t *testing.T) *sqlstore.Store
	raw  *bun.DB
}

// eachChainDB runs check on a fresh SQLite database and, when configured, a
// fresh PostgreSQL schema.
func eachChainDB(t *testing.T, check func(t *testing.T, db chainDB)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		raw, err := schema.OpenSQLite(filepath.Join(dir, "events.db"), schema.SQLiteOptions{Mode: schema.SQLiteWriter})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { raw.Close() })
		check(t, chainDB{kind: "sqlite", raw: raw, open: func(t *testing.T) *sqlstore.Store { return openSQLite(t, dir) }})
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		dsn := postgresURL(t)
		raw, err := schema.OpenPostgres(context.Background(), dsn, 2)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { raw.Close() })
		check(t, chainDB{kind: "postgres", raw: raw, open: func(t *testing.T) *sqlstore.Store { return openPostgres(t, dsn) }})
	})
}

// verifyLog checks s's chain and returns what the verifier saw.
func verifyLog(t *testing.T, s *sqlstore.Store) (*chain.Verifier, error) {
	t.Helper()
	v := chain.NewVerifier(nil)
	err := s.ScanLog(context.Background(), func(e *chain.Event, h []byte) error {
		v.Add(e, h)
		return nil
	})
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	return v, v.Err()
}

// storedHashes returns every row's hash, by position.
func storedHashes(t *testing.T, db *bun.DB) map[int64]string {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), "SELECT position, hash FROM events ORDER BY position")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]string{}
	for rows.Next() {
		var p int64
		var h []byte
		if err := rows.Scan(&p, &h); err != nil {
			t.Fatal(err)
		}
		out[p] = fmt.Sprintf("%x", h)
	}
	return out
}

// Concurrent writers of several stores on one database (several processes)
// leave one unbroken chain: each writer reads the head's hash again when
// another one appended.
func TestChainUnderConcurrentWriters(t *testing.T) {
	t.Parallel()
	eachChainDB(t, func(t *testing.T, db chainDB) {
		stores := []*sqlstore.Store{db.open(t), db.open(t)}
		ctx := context.Background()
		var wg sync.WaitGroup
		const writers, each = 4, 30
		for si, s := range stores {
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range each {
						evs := []eventstore.EventData{event(fmt.Sprintf(`{"i":%d}`, i)), event(`{"second":true}`)}
						if _, err := s.Append(ctx, fmt.Sprintf("s%d-w%d", si, w%3), eventstore.Any, evs[:1+i%2]...); err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
		}
		wg.Wait()
		v, err := verifyLog(t, stores[0])
		if err != nil {
			t.Fatalf("verify: %v", err)
		}
		head, err := stores[1].Head(ctx)
		if err != nil {
			t.Fatal(err)
		}
		anchor, err := stores[1].ChainHead(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v.Head() != anchor || v.Head().Position != head.Commit || v.Count() < 2*writers*each {
			t.Fatalf("verified %d events to %v; head %v, chain head %v", v.Count(), v.Head(), head, anchor)
		}
	})
}

// A log written before the chain existed (the first migration's table,
// without the hash column) verifies after a store opened it; filling the
// hashes resumes where an interrupted run stopped, giving the same hashes;
// and appends continue the chain.
func TestChainMigrationOfAnOldLog(t *testing.T) {
	t.Parallel()
	eachChainDB(t, func(t *testing.T, db chainDB) {
		ctx := context.Background()
		ddl, err := os.ReadFile(filepath.Join("..", "..", "schema", db.kind, "events", "20261127000001_events.tx.up.sql"))
		if err != nil {
			t.Fatal(err)
		}
		for _, stmt := range strings.Split(string(ddl), "--bun:split") {
			if _, err := db.raw.ExecContext(ctx, stmt); err != nil {
				t.Fatalf("old schema: %v", err)
			}
		}
		const old = 12001 // more than one backfill batch
		created := map[string]string{"sqlite": "1764000000000000", "postgres": "'2026-11-27T10:00:00Z'::timestamptz"}[db.kind]
		for start := 1; start <= old; start += 1000 {
			var q strings.Builder
			q.WriteString("INSERT INTO events (position, event_id, stream, version, type, data, metadata, created_at) VALUES ")
			for p := start; p < min(start+1000, old+1); p++ {
				if p > start {
					q.WriteByte(',')
				}
				fmt.Fprintf(&q, "(%d, '%s', 'chat-%d', %d, 'E', '{\"p\": %d}', '{}', %s)", p, eventstore.NameID("old", fmt.Sprint(p)), p%7, (p-1)/7, p, created)
			}
			if _, err := db.raw.ExecContext(ctx, q.String()); err != nil {
				t.Fatalf("old rows: %v", err)
			}
		}
		s := db.open(t)
		if v, err := verifyLog(t, s); err != nil || v.Count() != old {
			t.Fatalf("after the migration: %d events, %v", v.Count(), err)
		}
		before := storedHashes(t, db.raw)
		s.Close()
		// An interrupted backfill: the second half has no hashes yet.
		if _, err := db.raw.ExecContext(ctx, "UPDATE events SET hash = NULL WHERE position > 6000"); err != nil {
			t.Fatal(err)
		}
		s = db.open(t)
		after := storedHashes(t, db.raw)
		for p, h := range before {
			if after[p] != h {
				t.Fatalf("position %d: hash %s after resuming, %s before", p, after[p], h)
			}
		}
		// A release without the chain appended rows: the writer fills them
		// before it appends after them.
		if _, err := db.raw.ExecContext(ctx, fmt.Sprintf("INSERT INTO events (position, event_id, stream, version, type, data, metadata, created_at) VALUES (%d, '%s', 'late', 0, 'E', '{}', '{}', %s)", old+1, eventstore.NameID("late"), created)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(ctx, "new", eventstore.NoStream, event(`{"new":1}`)); err != nil {
			t.Fatal(err)
		}
		if v, err := verifyLog(t, s); err != nil || v.Count() != old+2 {
			t.Fatalf("after appending: %d events, %v", v.Count(), err)
		}
	})
}

// events yields what ReadAll returns of s, as Import takes it.
func events(t *testing.T, s eventstore.Store) iter.Seq2[eventstore.RecordedEvent, error] {
	t.Helper()
	all, err := s.ReadAll(context.Background(), eventstore.ReadAllOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return func(yield func(eventstore.RecordedEvent, error) bool) {
		for _, e := range all {
			if !yield(e, nil) {
				return
			}
		}
	}
}

// Import loads a log into an empty store with the same ids, streams,
// versions, bytes and times, new positions and a chain that verifies; it
// refuses a store that holds events and a log whose versions skip, storing
// nothing.
func TestImport(t *testing.T) {
	t.Parallel()
	source := openSQLite(t, t.TempDir())
	ctx := context.Background()
	for i := range 1200 {
		data := fmt.Sprintf(`{ "i" : %d,  "spaced": "kept as is" }`, i)
		e := eventstore.EventData{ID: eventstore.NewID(), Type: "E", Data: []byte(data), Metadata: []byte(`{"userId":"u1"}`)}
		if _, err := source.Append(ctx, fmt.Sprintf("chat-%d", i%5), eventstore.Any, e); err != nil {
			t.Fatal(err)
		}
	}
	want, err := source.ReadAll(ctx, eventstore.ReadAllOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eachChainDB(t, func(t *testing.T, db chainDB) {
		target := db.open(t)
		n, err := target.Import(ctx, events(t, source), nil)
		if err != nil || n != len(want) {
			t.Fatalf("import: %d, %v", n, err)
		}
		got, err := target.ReadAll(ctx, eventstore.ReadAllOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			w, g := want[i], got[i]
			if g.Position != eventstore.Pos(uint64(i+1)) || g.ID != w.ID || g.Stream != w.Stream || g.Version != w.Version ||
				g.Type != w.Type || string(g.Data) != string(w.Data) || string(g.Metadata) != string(w.Metadata) || !g.Time.Equal(w.Time) {
				t.Fatalf("event %d: got %+v, want %+v", i, g, w)
			}
		}
		if v, err := verifyLog(t, target); err != nil || v.Count() != uint64(len(want)) {
			t.Fatalf("verify: %d, %v", v.Count(), err)
		}
		// The log continues after the import.
		res, err := target.Append(ctx, "after", eventstore.NoStream, event(`{}`))
		if err != nil || res.LastPosition() != eventstore.Pos(uint64(len(want)+1)) {
			t.Fatalf("append after the import: %v, %v", res, err)
		}
		if _, err := target.Import(ctx, events(t, source), nil); !errors.Is(err, sqlstore.ErrNotEmpty) || domain.ErrorCode(err) != domain.ECONFLICT {
			t.Fatalf("import into a full store: %v", err)
		}
	})
	eachChainDB(t, func(t *testing.T, db chainDB) {
		target := db.open(t)
		skipping := func(yield func(eventstore.RecordedEvent, error) bool) {
			for i, e := range want[:10] {
				if i == 7 {
					e.Version += 5
				}
				if !yield(e, nil) {
					return
				}
			}
		}
		if _, err := target.Import(ctx, skipping, nil); domain.ErrorCode(err) != domain.EINVALID || !strings.Contains(err.Error(), "version") {
			t.Fatalf("import with a version gap: %v", err)
		}
		if head, err := target.Head(ctx); err != nil || !head.IsZero() {
			t.Fatalf("a failed import stored events: head %v, %v", head, err)
		}
	})
}
