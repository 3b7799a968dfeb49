package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/uptrace/bun"

	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/internal/redact"
	"github.com/auraos/realtime/schema"
)

// ErrNoStore is the error (wrapped with where and why) of the read-only
// opens when there is no event store to read: readers must not take a
// typo in a path for an empty log.
var ErrNoStore = errors.New("no event store")

// OpenSQLiteReadOnly opens the existing SQLite event store in dataDir for
// reading, as auditors' commands do: it creates nothing (no directory, no
// file, no table), applies no migrations, works on a copy whose files and
// directory are read-only, and fails with ErrNoStore when dataDir holds no
// event store. Reads and subscriptions work as on OpenSQLite's store
// (another process's commits included); appends fail with EUNAVAILABLE.
func OpenSQLiteReadOnly(ctx context.Context, dataDir string, opts Options) (*Store, error) {
	path := filepath.Join(dataDir, sqliteFile)
	db, err := schema.OpenSQLiteReadOnly(path, 8)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s (%s not found)", ErrNoStore, dataDir, sqliteFile)
	}
	if err != nil {
		return nil, eventstore.Unavailable("open "+path, err)
	}
	if err := requireEventsTable(ctx, db, fmt.Sprintf("%s (%s has no events table)", dataDir, sqliteFile)); err != nil {
		db.Close()
		return nil, err
	}
	return startSQLite(ctx, path, opts, db, db)
}

// OpenPostgresReadOnly opens the existing PostgreSQL event store at dsn for
// reading: it applies no migrations and creates nothing, and fails with
// ErrNoStore when the connection's current schema has no events table.
// Reads and subscriptions work as on OpenPostgres's store.
func OpenPostgresReadOnly(ctx context.Context, dsn string, opts Options) (*Store, error) {
	db, err := schema.OpenPostgres(ctx, dsn, 10)
	if err != nil {
		return nil, eventstore.Unavailable("connect", err)
	}
	var current string
	if err := db.QueryRowContext(ctx, "SELECT current_schema()").Scan(&current); err != nil {
		db.Close()
		return nil, eventstore.Unavailable("read current schema", err)
	}
	where := fmt.Sprintf("%s (schema %q has no events table)", redact.Text(dsn), current)
	if err := requireEventsTable(ctx, db, where); err != nil {
		db.Close()
		return nil, err
	}
	return startPostgres(ctx, dsn, opts, db)
}

// requireEventsTable fails with ErrNoStore in where when db has no events
// table.
func requireEventsTable(ctx context.Context, db *bun.DB, where string) error {
	ok, err := schema.HasTable(ctx, db, "events")
	if err != nil {
		return eventstore.Unavailable("look for the events table", err)
	}
	if !ok {
		return fmt.Errorf("%w in %s", ErrNoStore, where)
	}
	return nil
}
