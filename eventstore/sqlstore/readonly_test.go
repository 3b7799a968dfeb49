package sqlstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/sqlstore"
	"github.com/auraos/realtime/schema"
)

// The read-only opens find no store where there is none, create nothing,
// read what a writer appends, and refuse appends.
func TestReadOnlyOpens(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	missing := filepath.Join(t.TempDir(), "missing")
	if _, err := sqlstore.OpenSQLiteReadOnly(ctx, missing, sqlstore.Options{}); !errors.Is(err, sqlstore.ErrNoStore) {
		t.Fatalf("missing directory: %v, want ErrNoStore", err)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Fatalf("the read-only open created %s", missing)
	}

	dir := t.TempDir()
	w := openSQLite(t, dir)
	ev := eventstore.EventData{Type: "E", Data: json.RawMessage(`{}`)}
	if _, err := w.Append(ctx, "s-1", eventstore.Any, ev); err != nil {
		t.Fatal(err)
	}
	r, err := sqlstore.OpenSQLiteReadOnly(ctx, dir, sqlstore.Options{CrossProcessPoll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Append(ctx, "s-2", eventstore.Any, ev); domain.ErrorCode(err) != domain.EUNAVAILABLE {
		t.Fatalf("append to a read-only store: %v", err)
	}
	sub, err := r.Subscribe(ctx, eventstore.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if _, err := w.Append(ctx, "s-1", eventstore.Any, ev); err != nil {
		t.Fatal(err)
	}
	seen := 0
	for seen < 2 {
		waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		b, err := sub.Next(waitCtx)
		cancel()
		if err != nil {
			t.Fatalf("after %d events: %v", seen, err)
		}
		seen += len(b.Events)
	}
	if evs, err := r.ReadStream(ctx, "s-2", eventstore.ReadStreamOptions{}); err != nil || len(evs) != 0 {
		t.Fatalf("s-2 after a refused append: %v %v", evs, err)
	}
}

func TestReadOnlyOpenOnPostgresCreatesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := postgresURL(t)
	if _, err := sqlstore.OpenPostgresReadOnly(ctx, dsn, sqlstore.Options{}); !errors.Is(err, sqlstore.ErrNoStore) {
		t.Fatalf("empty schema: %v, want ErrNoStore", err)
	}
	db, err := schema.OpenPostgres(ctx, dsn, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if ok, err := schema.HasTable(ctx, db, "events"); err != nil || ok {
		t.Fatalf("events table after a read-only open: %v %v", ok, err)
	}
	w := openPostgres(t, dsn)
	if _, err := w.Append(ctx, "s-1", eventstore.Any, eventstore.EventData{Type: "E", Data: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	r, err := sqlstore.OpenPostgresReadOnly(ctx, dsn, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	evs, err := r.ReadAll(ctx, eventstore.ReadAllOptions{})
	if err != nil || len(evs) != 1 {
		t.Fatalf("read-only ReadAll: %d events, %v", len(evs), err)
	}
}
