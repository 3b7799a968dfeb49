package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
)

// sqliteDialect is the embedded SQLite database. It needs no state: the
// file's one write lock serializes every writer, in this process and others.
type sqliteDialect struct{}

// The write transaction holds SQLite's write lock from its start (BEGIN
// IMMEDIATE), so the head read under it cannot move before the commit: the
// batch's positions are simply the next ones, and nothing is reserved past
// them.
func (sqliteDialect) reservePositions(ctx context.Context, tx *sql.Tx, _ int, fail failFunc) (reservation, error) {
	var head int64
	if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(position), 0) FROM events").Scan(&head); err != nil {
		return reservation{}, fail("read head", err)
	}
	return reservation{after: head, through: head}, nil
}

// Other SQLite processes notice commits through data_version, so the insert
// sends no notice and RowsAffected tells whether rows were skipped.
func (d sqliteDialect) insert(ctx context.Context, tx *sql.Tx, rows []eventRow, _ bool, fail failFunc) error {
	query, args := insertStatement(d, rows)
	res, err := tx.ExecContext(ctx, query, args...)
	if err != nil {
		return fail("insert events", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != int64(len(rows)) {
		return errRowsSkipped
	}
	return nil
}

// BEGIN IMMEDIATE took the lock already.
func (sqliteDialect) lockLog(context.Context, *sql.Tx, failFunc) error { return nil }

// One prepared UPDATE per row is what SQLite does fastest: there is no
// network round trip to save.
func (sqliteDialect) setHashes(ctx context.Context, tx *sql.Tx, positions []int64, hashes [][]byte, fail failFunc) error {
	if len(positions) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, "UPDATE events SET hash = ? WHERE position = ?")
	if err != nil {
		return fail("store hashes", err)
	}
	defer stmt.Close()
	for i, p := range positions {
		if _, err := stmt.ExecContext(ctx, hashes[i], p); err != nil {
			return fail("store hashes", err)
		}
	}
	return nil
}

// SQLite's positions follow the rows: nothing to move on.
func (sqliteDialect) afterImport(context.Context, *sql.Tx, int64, failFunc) error { return nil }

// SQLite gets anonymous ? placeholders: it resolves $n as names, by a linear
// search per parameter.
func (sqliteDialect) placeholder(q *strings.Builder, _ int) { q.WriteByte('?') }

// created_at is unix microseconds: SQLite has no timestamp type, and an
// integer sorts and compares exactly.
func (sqliteDialect) timeValue(t time.Time) any { return t.UnixMicro() }

// A SQLite read transaction sees one snapshot of the WAL from its first read.
func (sqliteDialect) readTxOptions() *sql.TxOptions { return &sql.TxOptions{ReadOnly: true} }

// SQLite reports full disks, I/O errors and locks held by other processes as
// result codes; those are the store being unavailable, not the append being
// wrong, except constraint violations.
func (sqliteDialect) classify(what string, err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_FULL:
			return eventstore.Unavailable(what+": the disk or database is full", err)
		case sqlite3.SQLITE_IOERR:
			return eventstore.Unavailable(what+": disk I/O error", err)
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return eventstore.Unavailable(what+": the database is locked by another process", err)
		case sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM:
			return eventstore.Unavailable(what+": the database file cannot be written", err)
		case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
			return eventstore.Unavailable(what+": the database file is corrupt", err)
		case sqlite3.SQLITE_CONSTRAINT:
			return domain.WrapError(domain.ECONFLICT, what+": constraint violation", err)
		}
	}
	return eventstore.Unavailable(what, err)
}
