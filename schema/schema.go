// Package schema holds the embedded SQL migrations of AuraOS's databases (the
// SQL event store and the read models, for SQLite and PostgreSQL), applies
// them, and opens the databases with the settings the stores rely on.
package schema

import (
	"context"
	"embed"
	"fmt"
	"hash/fnv"
	"io/fs"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/migrate"
)

//go:embed sqlite postgres
var migrations embed.FS

// Set is one group of migrations with its own bookkeeping tables, so that the
// event store and the read models can share a database or live apart.
type Set struct {
	name string
	dir  string
}

var (
	// EventStore creates the events table of the SQL event store.
	EventStore = Set{name: "events", dir: "events"}
	// ReadModels creates the projection checkpoints and the read-model tables.
	ReadModels = Set{name: "readmodels", dir: "readmodels"}
)

// Migrate applies the migrations of set that db has not applied yet. Each
// migration runs in its own transaction and is recorded only after it
// succeeds. On PostgreSQL concurrent migrators wait for each other on an
// advisory lock; the statements are idempotent, so a repeated run is
// harmless.
func Migrate(ctx context.Context, db *bun.DB, set Set) error {
	root, err := dialectDir(db.Dialect().Name())
	if err != nil {
		return err
	}
	sub, err := fs.Sub(migrations, root+"/"+set.dir)
	if err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	ms := migrate.NewMigrations()
	if err := ms.Discover(sub); err != nil {
		return fmt.Errorf("schema: discover %s migrations: %w", set.name, err)
	}
	if set == ReadModels {
		registerTableMigration(ms)
	}
	m := migrate.NewMigrator(db, ms,
		migrate.WithTableName("auraos_"+set.name+"_migrations"),
		migrate.WithLocksTableName("auraos_"+set.name+"_migration_locks"),
		migrate.WithMarkAppliedOnSuccess(true),
	)
	if db.Dialect().Name() == dialect.PG {
		conn, err := db.Conn(ctx)
		if err != nil {
			return fmt.Errorf("schema: %w", err)
		}
		defer conn.Close()
		key := lockKey("auraos-migrate-" + set.name)
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(?)", key); err != nil {
			return fmt.Errorf("schema: lock %s migrations: %w", set.name, err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(?)", key) //nolint:errcheck // the lock also ends with the session
	}
	if err := m.Init(ctx); err != nil {
		return fmt.Errorf("schema: init %s migrations: %w", set.name, err)
	}
	if _, err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("schema: migrate %s: %w", set.name, err)
	}
	return nil
}

// lockKey turns a name into a PostgreSQL advisory lock key.
func lockKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return int64(h.Sum64())
}
