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
func (sqliteDialect) reservePositions(ctx context.Context, tx *sql.Tx, stmts *statements, _ int, fail failFunc) (reservation, error) {
	stmt, err := stmts.in(ctx, tx, sqliteHead)
	if err != nil {
		return reservation{}, fail("read head", err)
	}
	var head int64
	if err := stmt.QueryRowContext(ctx).Scan(&head); err != nil {
		return reservation{}, fail("read head", err)
	}
	return reservation{after: head, through: head}, nil
}

// Other SQLite processes notice commits through data_version, so the insert
// sends no notice. The rows go in one prepared single-row INSERT each: a
// multi-row INSERT costs a parse of the whole statement per batch, and SQLite
// gives it a statement journal (it writes several rows, so it could abort
// halfway), which copies every page it touches once more. RowsAffected tells
// whether rows were skipped.
func (d sqliteDialect) insert(ctx context.Context, tx *sql.Tx, stmts *statements, rows []eventRow, _ bool, fail failFunc) error {
	stmt, err := stmts.in(ctx, tx, sqliteInsertOne)
	if err != nil {
		return fail("insert events", err)
	}
	for _, r := range rows {
		res, err := stmt.ExecContext(ctx, r.Position, r.EventID, r.Stream, r.Version, r.Type, r.Data, r.Metadata, r.CreatedAt, r.Hash)
		if err != nil {
			return fail("insert events", err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return errRowsSkipped
		}
	}
	return nil
}

// sqliteHead reads the log's head.
const sqliteHead = "SELECT COALESCE(MAX(position), 0) FROM events"

func (sqliteDialect) writeStatements() []string { return []string{sqliteHead, sqliteInsertOne} }

// sqliteInsertOne inserts one event, or nothing when its position or id is
// taken.
var sqliteInsertOne = "INSERT INTO events (" + strings.Join(eventColumns, ", ") + ") VALUES (?" + strings.Repeat(", ?", len(eventColumns)-1) + ") ON CONFLICT DO NOTHING"

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

// SQLite loads with one prepared multi-row INSERT reused for every full
// chunk: parsing a statement of insertChunk rows costs as much as running it.
//
// A bulk load also keeps its statement journals in memory and a larger page
// cache (until it ends): otherwise SQLite spills both to disk as the indexes
// grow, writing every page twice.
func (d sqliteDialect) newLoader(ctx context.Context, tx *sql.Tx, fail failFunc) (loader, error) {
	for _, pragma := range []string{"PRAGMA temp_store = MEMORY", "PRAGMA cache_size = -262144"} {
		if _, err := tx.ExecContext(ctx, pragma); err != nil {
			return nil, fail("prepare the import", err)
		}
	}
	query, _ := insertStatement(d, make([]eventRow, insertChunk))
	stmt, err := tx.PrepareContext(ctx, strings.TrimSuffix(query, " ON CONFLICT DO NOTHING"))
	if err != nil {
		return nil, fail("prepare the import", err)
	}
	return &sqliteLoader{ctx: ctx, tx: tx, d: d, full: stmt, fail: fail}, nil
}

type sqliteLoader struct {
	ctx  context.Context
	tx   *sql.Tx
	d    sqliteDialect
	full *sql.Stmt
	fail failFunc
}

func (l *sqliteLoader) add(rows []eventRow) error {
	query, args := insertStatement(l.d, rows)
	var err error
	if len(rows) == insertChunk {
		_, err = l.full.ExecContext(l.ctx, args...)
	} else {
		_, err = l.tx.ExecContext(l.ctx, strings.TrimSuffix(query, " ON CONFLICT DO NOTHING"), args...)
	}
	if err != nil {
		return l.fail("import events", err)
	}
	return nil
}

func (l *sqliteLoader) close() error {
	err := l.full.Close()
	// The connection is the store's writer: back to its usual settings.
	for _, pragma := range []string{"PRAGMA temp_store = DEFAULT", "PRAGMA cache_size = -2000"} {
		if _, perr := l.tx.ExecContext(context.WithoutCancel(l.ctx), pragma); perr != nil && err == nil {
			err = l.fail("finish the import", perr)
		}
	}
	return err
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
