package schema

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// OpenSQLiteReadOnly opens the existing SQLite database at path for reading
// only, with a pool of up to maxConns connections: it creates neither the
// file nor its directory (a missing file is an error satisfying
// errors.Is(err, fs.ErrNotExist)), changes no setting and refuses writes.
//
// A WAL database that nobody has open has no -wal file: every commit is in
// the main file. It is opened immutable, which reads the main file alone
// and leaves nothing beside it (a plain read-only open would create the
// -wal and -shm files and could not remove them). A server that opens the
// database meanwhile writes to its own new -wal file and copies into the
// main file only at a checkpoint, after megabytes of commits, so a short
// read is not disturbed. A database that is open elsewhere (its -wal
// exists) is read through its -shm index as a reader of the live database;
// in a directory the reader cannot write, with nothing in the log, it is
// opened immutable too.
func OpenSQLiteReadOnly(path string, maxConns int) (*bun.DB, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	if _, err := os.Stat(path + "-wal"); errors.Is(err, fs.ErrNotExist) {
		db, err := openSQLiteReadOnly(path, maxConns, true)
		if err != nil {
			return nil, fmt.Errorf("open %s read-only: %w", path, err)
		}
		return db, nil
	}
	db, err := openSQLiteReadOnly(path, maxConns, false)
	if err == nil {
		return db, nil
	}
	if !cannotWriteBeside(err) || walHasFrames(path) {
		return nil, fmt.Errorf("open %s read-only: %w", path, err)
	}
	if db, err = openSQLiteReadOnly(path, maxConns, true); err != nil {
		return nil, fmt.Errorf("open %s read-only: %w", path, err)
	}
	return db, nil
}

func openSQLiteReadOnly(path string, maxConns int, immutable bool) (*bun.DB, error) {
	q := url.Values{}
	q.Set("mode", "ro")
	if immutable {
		q.Set("immutable", "1")
	}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "query_only(1)")
	sqldb, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, err
	}
	if maxConns <= 0 {
		maxConns = 4
	}
	sqldb.SetMaxOpenConns(maxConns)
	sqldb.SetMaxIdleConns(maxConns)
	db := bun.NewDB(sqldb, sqlitedialect.New())
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	// A ping does not read; the first read is where a WAL database needs
	// its index.
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master").Scan(&n); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// cannotWriteBeside reports whether err is SQLite failing to create or open
// for writing the files beside the database (its WAL index).
func cannotWriteBeside(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN:
		return true
	}
	return false
}

// walHasFrames reports whether the write-ahead log beside path holds
// anything (commits not yet copied into the file).
func walHasFrames(path string) bool {
	fi, err := os.Stat(path + "-wal")
	return err == nil && fi.Size() > 0
}

// HasTable reports whether the table exists in db: in SQLite's main
// database, or in PostgreSQL's current schema.
func HasTable(ctx context.Context, db *bun.DB, table string) (bool, error) {
	var ok bool
	var err error
	switch db.Dialect().Name() {
	case dialect.SQLite:
		err = db.QueryRowContext(ctx, "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?", table).Scan(&ok)
	case dialect.PG:
		err = db.QueryRowContext(ctx, "SELECT to_regclass(quote_ident(?)) IS NOT NULL", table).Scan(&ok)
	default:
		return false, fmt.Errorf("schema: unsupported dialect %s", db.Dialect().Name())
	}
	if err != nil {
		return false, fmt.Errorf("look for table %s: %w", table, err)
	}
	return ok, nil
}
