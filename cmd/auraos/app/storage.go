package app

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/uptrace/bun"

	"github.com/spf13/pflag"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/esdb"
	"github.com/auraos/realtime/eventstore/sqlstore"
	"github.com/auraos/realtime/schema"
)

// Storage says where the event log and the read models live, as the
// storage flags every command shares set it.
type Storage struct {
	// DataDir holds the embedded SQLite databases.
	DataDir string
	// EventStore is "sqlite" (or empty: SQLite in DataDir), a postgres://
	// URL, or an esdb:// or esdb+discover:// connection string.
	EventStore string
	// ReadDB is empty (SQLite in DataDir) or a postgres:// URL.
	ReadDB string
}

// Register adds the storage flags to flags, with their defaults.
func (c *Storage) Register(flags *pflag.FlagSet) {
	flags.StringVar(&c.DataDir, "data-dir", "./data", "directory of the embedded SQLite databases (event store and read models)")
	flags.StringVar(&c.EventStore, "event-store", "sqlite", `event store: "sqlite" (embedded, in --data-dir), a postgres:// URL, or an esdb:// or esdb+discover:// EventStoreDB/KurrentDB connection string`)
	flags.StringVar(&c.ReadDB, "read-db", "", `read-model database: empty for SQLite in --data-dir, or a postgres:// URL`)
}

// ReadDB is the read-model database: a writer for runners and rebuilds, a
// reader pool for queries (the same pool on PostgreSQL).
type ReadDB struct {
	Writer, Reader *bun.DB
}

// Close closes both pools.
func (r ReadDB) Close() error {
	err := r.Writer.Close()
	if r.Reader != r.Writer {
		err = errors.Join(err, r.Reader.Close())
	}
	return err
}

// readModelFile is the SQLite read-model database inside the data directory.
const readModelFile = "read.db"

// OpenReadDB opens and migrates the read-model database c selects. The
// SQLite read models sync with synchronous=NORMAL: they can always be
// rebuilt from the log, and their checkpoint commits with their rows. It
// returns EUNAVAILABLE when the database cannot be opened.
func (c *Storage) OpenReadDB(ctx context.Context) (ReadDB, error) {
	var r ReadDB
	switch {
	case c.ReadDB == "" || c.ReadDB == "sqlite":
		path := filepath.Join(c.DataDir, readModelFile)
		w, err := schema.OpenSQLite(path, schema.SQLiteOptions{Mode: schema.SQLiteWriter, Synchronous: "NORMAL"})
		if err != nil {
			return r, domain.WrapError(domain.EUNAVAILABLE, "read database unavailable", err)
		}
		rd, err := schema.OpenSQLite(path, schema.SQLiteOptions{Mode: schema.SQLiteReader, Synchronous: "NORMAL", MaxReaders: 8})
		if err != nil {
			w.Close()
			return r, domain.WrapError(domain.EUNAVAILABLE, "read database unavailable", err)
		}
		r = ReadDB{Writer: w, Reader: rd}
	case schema.IsPostgresURL(c.ReadDB):
		db, err := schema.OpenPostgres(ctx, c.ReadDB, 16)
		if err != nil {
			return r, domain.WrapError(domain.EUNAVAILABLE, "read database unavailable", err)
		}
		r = ReadDB{Writer: db, Reader: db}
	default:
		return r, fmt.Errorf("--read-db %q: want empty (SQLite in --data-dir) or a postgres:// URL", schema.RedactURL(c.ReadDB))
	}
	if err := schema.Migrate(ctx, r.Writer, schema.ReadModels); err != nil {
		r.Close()
		return ReadDB{}, err
	}
	return r, nil
}

// OpenEventStore opens the event store c selects; opts tune the SQL stores
// (their logger also serves EventStoreDB).
func (c *Storage) OpenEventStore(ctx context.Context, opts sqlstore.Options) (eventstore.Store, error) {
	switch {
	case c.EventStore == "" || c.EventStore == "sqlite":
		return sqlstore.OpenSQLite(ctx, c.DataDir, opts)
	case schema.IsPostgresURL(c.EventStore):
		return sqlstore.OpenPostgres(ctx, c.EventStore, opts)
	case isESDBURL(c.EventStore):
		return esdb.Open(ctx, c.EventStore, esdb.Options{Logger: opts.Logger})
	default:
		scheme, _, _ := strings.Cut(c.EventStore, ":")
		return nil, fmt.Errorf("--event-store %q: unknown kind %q (want sqlite, postgres:// or esdb://)", schema.RedactURL(c.EventStore), scheme)
	}
}

// Open opens the event store and then the read-model database; if the
// second fails, the first is closed again. The caller closes both.
func (c *Storage) Open(ctx context.Context, opts sqlstore.Options) (eventstore.Store, ReadDB, error) {
	store, err := c.OpenEventStore(ctx, opts)
	if err != nil {
		return nil, ReadDB{}, err
	}
	rdb, err := c.OpenReadDB(ctx)
	if err != nil {
		store.Close()
		return nil, ReadDB{}, err
	}
	return store, rdb, nil
}

// isESDBURL reports whether s is an EventStoreDB/KurrentDB connection string.
func isESDBURL(s string) bool {
	return strings.HasPrefix(s, "esdb://") || strings.HasPrefix(s, "esdb+discover://")
}
