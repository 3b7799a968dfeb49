package sqlstore

import (
	"context"
	"database/sql"
	"strings"
	"time"
)

// dialect is everything the store does differently on SQLite and on
// PostgreSQL, one small type per database (sqliteDialect, pgDialect), so the
// store itself never has to ask which database it runs on.
type dialect interface {
	// reservePositions takes the log's write lock inside tx and reserves
	// positions for that many new events. The lock is held until tx ends and
	// is taken before any position is chosen, so commit order is position
	// order. Its statements come prepared from stmts.
	reservePositions(ctx context.Context, tx *sql.Tx, stmts *statements, events int, fail failFunc) (reservation, error)
	// insert writes one chunk of a batch's rows inside tx; last says it is
	// the batch's final chunk. Rows the database skipped (ON CONFLICT) make it
	// return errRowsSkipped, so the batch is decided again with every id
	// looked up. Its statements come prepared from stmts.
	insert(ctx context.Context, tx *sql.Tx, stmts *statements, rows []eventRow, last bool, fail failFunc) error
	// writeStatements are the queries reservePositions and insert take
	// from their statements, prepared before each group transaction begins.
	writeStatements() []string
	// lockLog takes the log's write lock inside tx without reserving
	// positions, for work on stored rows (the chain backfill).
	lockLog(ctx context.Context, tx *sql.Tx, fail failFunc) error
	// setHashes stores hashes[i] as the hash of the row at positions[i],
	// inside tx.
	setHashes(ctx context.Context, tx *sql.Tx, positions []int64, hashes [][]byte, fail failFunc) error
	// newLoader starts a bulk load of rows into the events table inside tx,
	// as Import writes them: faster than insert, with no conflict handling
	// (a duplicate is an error).
	newLoader(ctx context.Context, tx *sql.Tx, fail failFunc) (loader, error)
	// afterImport runs inside an import's transaction once its rows, at
	// positions 1 to last, are inserted.
	afterImport(ctx context.Context, tx *sql.Tx, last int64, fail failFunc) error
	// placeholder writes the driver's placeholder for the nth (from 1) bound
	// argument of a statement.
	placeholder(q *strings.Builder, n int)
	// timeValue encodes a commit time for the created_at column.
	timeValue(t time.Time) any
	// readTxOptions are the options of the transaction that reads a
	// subscription batch together with the head, from one snapshot.
	readTxOptions() *sql.TxOptions
	// classify turns a driver error into an EUNAVAILABLE or ECONFLICT error.
	classify(what string, err error) error
}

// failFunc turns a driver error of the step named what into the port's
// errors. The store hands the dialect its classify bound to the
// transaction's context, so a dialect's errors read the same as the store's.
type failFunc func(what string, err error) error

// reservation is where a batch's positions lie: its events take after+1,
// after+2, …, and the log continues after through even when the batch uses
// fewer positions than it reserved (positions may have gaps).
type reservation struct {
	after   int64
	through int64
}

// loader writes rows in bulk: add takes up to insertChunk rows at a time
// (it may keep them until later), close writes what is left.
type loader interface {
	add(rows []eventRow) error
	close() error
}

// eventColumns are the events table's columns in insertStatement's order.
var eventColumns = []string{"position", "event_id", "stream", "version", "type", "data", "metadata", "created_at", "hash"}

// insertColumns is the number of columns insertStatement binds per row.
const insertColumns = 9

// insertStatement builds one multi-row INSERT with d's placeholders, so
// payloads are bound, not quoted.
func insertStatement(d dialect, rows []eventRow) (string, []any) {
	var q strings.Builder
	q.Grow(96 + len(rows)*48)
	q.WriteString("INSERT INTO events (position, event_id, stream, version, type, data, metadata, created_at, hash) VALUES ")
	args := make([]any, 0, len(rows)*insertColumns)
	for i, r := range rows {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteByte('(')
		for c := 1; c <= insertColumns; c++ {
			if c > 1 {
				q.WriteByte(',')
			}
			d.placeholder(&q, i*insertColumns+c)
		}
		q.WriteByte(')')
		args = append(args, r.Position, r.EventID, r.Stream, r.Version, r.Type, r.Data, r.Metadata, r.CreatedAt, r.Hash)
	}
	q.WriteString(" ON CONFLICT DO NOTHING")
	return q.String(), args
}
