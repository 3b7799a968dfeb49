package schema

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	_ "github.com/lib/pq" // the "postgres" database/sql driver
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"modernc.org/sqlite" // also the "sqlite" database/sql driver
)

// SQLiteMode says how a SQLite connection pool will be used.
type SQLiteMode int

const (
	// SQLiteWriter is a pool of one connection whose transactions take the
	// write lock when they begin (BEGIN IMMEDIATE), so they never fail to
	// upgrade from a read lock halfway.
	SQLiteWriter SQLiteMode = iota
	// SQLiteReader is a pool of several connections for concurrent reads.
	SQLiteReader
	// SQLiteReadOnly is a reader pool that SQLite itself keeps from writing
	// (mode=ro): opening creates nothing (a missing database is an error,
	// not a new file, and no -wal or -shm file appears beside one nobody
	// has open) and every write fails. The database must already be in WAL
	// mode, as every database OpenSQLite writes is.
	SQLiteReadOnly
)

// SQLiteOptions tunes OpenSQLite.
type SQLiteOptions struct {
	Mode SQLiteMode
	// Synchronous is SQLite's synchronous setting; FULL (the default) syncs
	// the write-ahead log on every commit, so a commit survives power loss.
	// NORMAL is enough for data that can be rebuilt, such as read models.
	Synchronous string
	// MaxReaders caps the reader pool (default 4).
	MaxReaders int
}

func init() {
	// SQLite syncs with fsync unless told otherwise in this build;
	// fdatasync is what SQLite uses on Linux elsewhere and is just as
	// durable: it skips only the timestamp update. Where it is not
	// available the setting stays off.
	_, _ = sqlite.Fdatasync(true)
}

// OpenSQLite opens (creating it and its directory if needed) the SQLite
// database at path in WAL mode, with a busy timeout so that other processes
// holding the write lock are waited for rather than failed. In
// SQLiteReadOnly mode it creates nothing and fails when path does not
// exist. Its errors are not coded: callers say what the database was for.
func OpenSQLite(path string, opts SQLiteOptions) (*bun.DB, error) {
	if opts.Mode == SQLiteReadOnly {
		return openSQLiteReadOnly(path, opts)
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create data directory: %w", err)
		}
	}
	sync := strings.ToUpper(opts.Synchronous)
	if sync == "" {
		sync = "FULL"
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous("+sync+")")
	q.Add("_pragma", "foreign_keys(ON)")
	if opts.Mode == SQLiteWriter {
		q.Set("_txlock", "immediate")
		// Checkpoint the WAL into the database every 16 MiB rather than
		// every 4 MiB: the writer runs fewer of them.
		q.Add("_pragma", "wal_autocheckpoint(4000)")
	}
	return openSQLitePool(path, q, opts)
}

// openSQLiteReadOnly opens path with mode=ro. It sets no journal mode:
// switching to WAL would be a write, and SQLite refuses it on a read-only
// connection. A WAL database that nobody has open has no -wal file, and its
// main file holds every commit; SQLite would still create the -wal and -shm
// files beside it for a reader and could not remove them, so such a
// database is opened immutable instead, which reads the main file alone.
// Should a writer open it meanwhile, its commits go to the new -wal file,
// not the main file, until a checkpoint: the reader keeps a consistent
// view of the moment it opened.
func openSQLiteReadOnly(path string, opts SQLiteOptions) (*bun.DB, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open %s read-only: %w", path, err)
	}
	q := url.Values{}
	q.Set("mode", "ro")
	if _, err := os.Stat(path + "-wal"); errors.Is(err, fs.ErrNotExist) {
		q.Set("immutable", "1")
	}
	q.Add("_pragma", "busy_timeout(10000)")
	return openSQLitePool(path, q, opts)
}

// OpenSQLiteMemory opens a private in-memory SQLite database, for data that
// lives only as long as the returned pool: the pool holds its one connection
// open, since the database goes with it, and nothing touches the disk. Its
// errors are not coded, as OpenSQLite's.
func OpenSQLiteMemory() (*bun.DB, error) {
	q := url.Values{}
	q.Set("mode", "memory")
	q.Add("_pragma", "foreign_keys(ON)")
	return openSQLitePool("auraos-memory", q, SQLiteOptions{Mode: SQLiteWriter})
}

// openSQLitePool opens a pool of connections to the SQLite URI file:path?q,
// sized for opts.Mode, and checks that it answers.
func openSQLitePool(path string, q url.Values, opts SQLiteOptions) (*bun.DB, error) {
	sqldb, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if opts.Mode == SQLiteWriter {
		sqldb.SetMaxOpenConns(1)
		sqldb.SetMaxIdleConns(1)
	} else {
		n := opts.MaxReaders
		if n <= 0 {
			n = 4
		}
		sqldb.SetMaxOpenConns(n)
		sqldb.SetMaxIdleConns(n)
	}
	sqldb.SetConnMaxIdleTime(0)
	sqldb.SetConnMaxLifetime(0)
	db := bun.NewDB(sqldb, sqlitedialect.New())
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, nil
}

// OpenPostgres opens a pool to the PostgreSQL database at dsn (a postgres://
// URL or key=value string that lib/pq accepts) and checks that it answers.
func OpenPostgres(ctx context.Context, dsn string, maxConns int) (*bun.DB, error) {
	sqldb, err := sql.Open("postgres", dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	if maxConns <= 0 {
		maxConns = 10
	}
	sqldb.SetMaxOpenConns(maxConns)
	sqldb.SetMaxIdleConns(maxConns)
	sqldb.SetConnMaxIdleTime(5 * time.Minute)
	db := bun.NewDB(sqldb, pgdialect.New())
	pingCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to postgres %s: %w", RedactURL(dsn), err)
	}
	return db, nil
}

// IsPostgresURL reports whether s names a PostgreSQL database rather than the
// embedded SQLite one.
func IsPostgresURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// userinfo matches the user:password@ part of a URL or connection string.
var userinfo = regexp.MustCompile(`://([^:/@]*):[^@/]*@`)

// RedactURL returns s with any password replaced by "xxxxx", for logs and
// error messages. It also handles connection strings that are not valid
// URLs, such as EventStoreDB's comma-separated host lists.
func RedactURL(s string) string {
	return userinfo.ReplaceAllString(s, "://$1:xxxxx@")
}
