package schema

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/lib/pq" // also the "postgres" database/sql driver
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"modernc.org/sqlite" // also the "sqlite" database/sql driver

	"github.com/auraos/realtime/internal/redact"
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
	// SQLiteReadOnly is a reader pool that SQLite itself keeps from writing,
	// as OpenSQLiteReadOnly opens it: opening creates no database (a
	// missing one is an error) and every write fails.
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
	// SecureDelete overwrites deleted content with zeros (PRAGMA
	// secure_delete), so that deleted keys and rewritten personal data do
	// not stay behind in free pages of the file.
	SecureDelete bool
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
		return OpenSQLiteReadOnly(path, opts.MaxReaders)
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
	if opts.SecureDelete {
		q.Add("_pragma", "secure_delete(ON)")
	}
	if opts.Mode == SQLiteWriter {
		q.Set("_txlock", "immediate")
		// Checkpoint the WAL into the database every 16 MiB rather than
		// every 4 MiB: the writer runs fewer of them.
		q.Add("_pragma", "wal_autocheckpoint(4000)")
	}
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
		// lib/pq's parse errors quote the connection string, password and all.
		return nil, redact.Error(fmt.Errorf("connect to postgres %s: %w", dsn, err))
	}
	if err := checkCurrentSchema(pingCtx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres %s: %w", redact.Text(dsn), err)
	}
	return db, nil
}

// checkCurrentSchema fails when no schema of the connection's search_path
// exists: PostgreSQL itself only says "no schema has been selected to create
// in" at the first CREATE, which names neither the schema nor the fix.
func checkCurrentSchema(ctx context.Context, db *bun.DB) error {
	var current sql.NullString
	var path, user string
	if err := db.QueryRowContext(ctx, "SELECT current_schema(), current_setting('search_path'), current_user").Scan(&current, &path, &user); err != nil {
		return fmt.Errorf("read the current schema: %w", err)
	}
	if current.Valid {
		return nil
	}
	first, _, _ := strings.Cut(path, ",")
	first = strings.Trim(strings.TrimSpace(first), `"`)
	if first == "$user" {
		first = user
	}
	if first == "" {
		return fmt.Errorf("search_path is empty; add search_path=<schema> to the URL")
	}
	name := first
	if !simpleIdentifier.MatchString(name) {
		name = pq.QuoteIdentifier(name)
	}
	return fmt.Errorf("schema %q does not exist (search_path is %s); create it with CREATE SCHEMA %s, or name an existing schema in search_path", first, path, name)
}

// simpleIdentifier is a name PostgreSQL takes unquoted as itself.
var simpleIdentifier = regexp.MustCompile(`^[a-z_][a-z0-9_$]*$`)

// IsPostgresURL reports whether s names a PostgreSQL database rather than the
// embedded SQLite one.
func IsPostgresURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}
