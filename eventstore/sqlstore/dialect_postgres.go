package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
)

// pgDialect is PostgreSQL, where several processes may share one schema's
// log. It carries what ties those processes together: the advisory lock that
// serializes their writers, the channel their commits are announced on, and
// this store's own name in those announcements.
type pgDialect struct {
	// lockKey is the transaction-level advisory lock every writer of the
	// schema takes before it draws positions.
	lockKey int64
	// notifyChannel is the schema's NOTIFY channel, on which each commit
	// wakes the other processes' subscribers.
	notifyChannel string
	// instance names this store in its notices, so it can skip its own.
	instance string
}

// newPGDialect derives the lock and the channel from the schema's name, so
// every process using that schema (and only those) agrees on them.
func newPGDialect(schemaName string) pgDialect {
	h := fnv.New64a()
	h.Write([]byte("auraos-events-" + schemaName))
	return pgDialect{
		lockKey:       int64(h.Sum64()),
		notifyChannel: fmt.Sprintf("auraos_events_%x", h.Sum64()),
		instance:      eventstore.NewID(),
	}
}

// The advisory lock is taken and as many positions as the batch has events
// are drawn from the sequence in one round trip: nextval's argument is
// computed from the lock's result, so each draw happens after the lock is
// held (the first call takes it; the others find it held), and positions
// follow commit order. A batch that uses fewer leaves a gap.
func (d pgDialect) reservePositions(ctx context.Context, tx *sql.Tx, stmts *statements, events int, fail failFunc) (reservation, error) {
	stmt, err := stmts.in(ctx, tx, pgReservePositions)
	if err != nil {
		return reservation{}, fail("lock the log", err)
	}
	var first int64
	if err := stmt.QueryRowContext(ctx, d.lockKey, events).Scan(&first); err != nil {
		return reservation{}, fail("lock the log", err)
	}
	return reservation{after: first - 1, through: first - 1 + int64(events)}, nil
}

// pgReservePositions takes the lock and draws $2 positions, returning the
// first.
const pgReservePositions = "SELECT min(nextval(('events_position_seq' || left(pg_advisory_xact_lock($1)::text, 0))::regclass)) FROM generate_series(1, $2::int)"

func (pgDialect) writeStatements() []string {
	return []string{pgReservePositions, pgInsertRows, pgAppendAtHead}
}

// lockLog takes the advisory lock every writer of the schema takes.
func (d pgDialect) lockLog(ctx context.Context, tx *sql.Tx, fail failFunc) error {
	if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", d.lockKey); err != nil {
		return fail("lock the log", err)
	}
	return nil
}

// All of a batch's hashes go in one statement, as arrays: one round trip.
func (pgDialect) setHashes(ctx context.Context, tx *sql.Tx, positions []int64, hashes [][]byte, fail failFunc) error {
	if len(positions) == 0 {
		return nil
	}
	_, err := tx.ExecContext(ctx,
		"UPDATE events AS e SET hash = u.h FROM unnest($1::bigint[], $2::bytea[]) AS u(p, h) WHERE e.position = u.p",
		pq.Array(positions), pq.ByteaArray(hashes))
	if err != nil {
		return fail("store hashes", err)
	}
	return nil
}

// PostgreSQL loads with COPY, which streams rows without a statement per
// chunk.
func (pgDialect) newLoader(ctx context.Context, tx *sql.Tx, fail failFunc) (loader, error) {
	stmt, err := tx.PrepareContext(ctx, "COPY events ("+strings.Join(eventColumns, ", ")+") FROM STDIN")
	if err != nil {
		return nil, fail("start the import", err)
	}
	return &pgLoader{ctx: ctx, stmt: stmt, fail: fail}, nil
}

type pgLoader struct {
	ctx  context.Context
	stmt *sql.Stmt
	fail failFunc
}

func (l *pgLoader) add(rows []eventRow) error {
	for _, r := range rows {
		if _, err := l.stmt.ExecContext(l.ctx, r.Position, r.EventID, r.Stream, r.Version, r.Type, r.Data, r.Metadata, r.CreatedAt, r.Hash); err != nil {
			return l.fail("import events", err)
		}
	}
	return nil
}

func (l *pgLoader) close() error {
	if _, err := l.stmt.ExecContext(l.ctx); err != nil {
		l.stmt.Close()
		return l.fail("import events", err)
	}
	if err := l.stmt.Close(); err != nil {
		return l.fail("import events", err)
	}
	return nil
}

// The position sequence moves past the imported rows (never back), so the
// next append continues the log.
func (pgDialect) afterImport(ctx context.Context, tx *sql.Tx, last int64, fail failFunc) error {
	if last == 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, "SELECT setval('events_position_seq', GREATEST($1::bigint, (SELECT last_value FROM events_position_seq)))", last); err != nil {
		return fail("move the position sequence past the import", err)
	}
	return nil
}

// A batch's rows go in as one array per column, through one statement
// prepared once: its text does not depend on the number of rows, so the
// server parses and plans it once per connection instead of once per
// commit, and binding it is one round trip. All rows of a batch share one
// commit time.
//
// The last chunk's statement also sends the notice that wakes other
// processes' subscribers when the transaction commits; PostgreSQL delivers
// it only then, and never for a rolled-back transaction. The rows are
// counted through RETURNING, since the statement is a query.
func (d pgDialect) insert(ctx context.Context, tx *sql.Tx, stmts *statements, rows []eventRow, last bool, fail failFunc) error {
	stmt, err := stmts.in(ctx, tx, pgInsertRows)
	if err != nil {
		return fail("insert events", err)
	}
	c := columnsOf(rows)
	notice := ""
	if last {
		notice = d.notice(rows[len(rows)-1].Position)
	}
	var inserted int64
	var ignored sql.NullString
	err = stmt.QueryRowContext(ctx, pq.Int64Array(c.positions), pq.StringArray(c.ids), pq.StringArray(c.streams),
		pq.Int64Array(c.versions), pq.StringArray(c.types), pq.StringArray(c.data), pq.StringArray(c.metadata),
		rows[0].CreatedAt, pq.ByteaArray(c.hashes), d.notifyChannel, notice, last).Scan(&inserted, &ignored)
	if err != nil {
		return fail("insert events", err)
	}
	if inserted != int64(len(rows)) {
		return errRowsSkipped
	}
	return nil
}

// appendAtHead calls auraos_append_at (a migration creates it), outside any
// transaction: the statement is its own transaction, committed before the
// driver returns its result. PostgreSQL reports a taken id or stream version
// as a unique violation, which rolled the statement back.
func (d pgDialect) appendAtHead(ctx context.Context, stmts *statements, expectedHead int64, rows []eventRow, fail failFunc) (int64, error) {
	stmt, err := stmts.get(pgAppendAtHead)
	if err != nil {
		return 0, fail("append", err)
	}
	c := columnsOf(rows)
	var found int64
	err = stmt.QueryRowContext(ctx, d.lockKey, expectedHead, pq.Int64Array(c.positions), pq.StringArray(c.ids),
		pq.StringArray(c.streams), pq.Int64Array(c.versions), pq.StringArray(c.types), pq.StringArray(c.data),
		pq.StringArray(c.metadata), rows[0].CreatedAt, pq.ByteaArray(c.hashes), d.notifyChannel,
		d.notice(rows[len(rows)-1].Position)).Scan(&found)
	var pe *pq.Error
	if errors.As(err, &pe) && pe.Code == pqerror.UniqueViolation {
		return 0, errRowsSkipped
	}
	if err != nil {
		return 0, fail("append", err)
	}
	return found, nil
}

// pgAppendAtHead commits a batch at the head the writer expects.
const pgAppendAtHead = "SELECT auraos_append_at($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"

// columns are a batch's rows as one slice per column.
type columns struct {
	positions, versions                 []int64
	ids, streams, types, data, metadata []string
	hashes                              [][]byte
}

func columnsOf(rows []eventRow) columns {
	n := len(rows)
	c := columns{
		positions: make([]int64, n), versions: make([]int64, n),
		ids: make([]string, n), streams: make([]string, n), types: make([]string, n),
		data: make([]string, n), metadata: make([]string, n), hashes: make([][]byte, n),
	}
	for i, r := range rows {
		c.positions[i], c.ids[i], c.streams[i], c.versions[i], c.types[i] = r.Position, r.EventID, r.Stream, r.Version, r.Type
		c.data[i], c.metadata[i], c.hashes[i] = r.Data, r.Metadata, r.Hash
	}
	return c
}

// pgInsertRows inserts the rows given as column arrays, skipping any whose
// position or id is taken, returns how many it inserted and, when $12 is
// true, sends the notice $11 on channel $10.
const pgInsertRows = `WITH ins AS (
	INSERT INTO events (position, event_id, stream, version, type, data, metadata, created_at, hash)
	SELECT u.position, u.event_id, u.stream, u.version, u.type, u.data, u.metadata, $8::timestamptz, u.hash
	FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $9::bytea[])
		AS u(position, event_id, stream, version, type, data, metadata, hash)
	ON CONFLICT DO NOTHING RETURNING 1)
SELECT (SELECT count(*) FROM ins), CASE WHEN $12::boolean THEN pg_notify($10, $11)::text END`

// notice is the payload announcing a commit through position: it names this
// store, whose own subscribers are woken directly and skip the notice.
func (d pgDialect) notice(position int64) string {
	return d.instance + ":" + strconv.FormatInt(position, 10)
}

// ownNotice reports whether a notice's payload announces this store's own
// commit.
func (d pgDialect) ownNotice(payload string) bool {
	return strings.HasPrefix(payload, d.instance+":")
}

// PostgreSQL binds numbered placeholders; the CTE around the insert numbers
// its own arguments after them.
func (pgDialect) placeholder(q *strings.Builder, n int) {
	q.WriteByte('$')
	q.WriteString(strconv.Itoa(n))
}

// created_at is a timestamptz, which the driver encodes from a time.Time.
func (pgDialect) timeValue(t time.Time) any { return t }

// Commits are serialized in position order, so any snapshot holds a prefix
// of the log; repeatable read keeps the head and the rows in one snapshot.
func (pgDialect) readTxOptions() *sql.TxOptions {
	return &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead}
}

// A server that is out of disk, connections or reach is the store being
// unavailable; a constraint violation is a conflict; any other server error
// is a bug to report as internal, not a reason to retry.
func (pgDialect) classify(what string, err error) error {
	var pe *pq.Error
	if errors.As(err, &pe) {
		switch {
		case pe.Code == pqerror.DiskFull:
			return eventstore.Unavailable(what+": the database server's disk is full", err)
		case pe.Code.Class() == pqerror.ClassIntegrityConstraintViolation:
			return domain.WrapError(domain.ECONFLICT, fmt.Sprintf("%s: constraint violation (%s)", what, pe.Message), err)
		case pe.Code.Class() == pqerror.ClassConnectionException,
			pe.Code.Class() == pqerror.ClassInsufficientResources,
			pe.Code.Class() == pqerror.ClassOperatorIntervention,
			pe.Code.Class() == pqerror.ClassSystemError:
			return eventstore.Unavailable(fmt.Sprintf("%s: %s", what, pe.Message), err)
		}
		return domain.WrapError(domain.EINTERNAL, what+": database error", err)
	}
	var ne net.Error
	var oe *net.OpError
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.As(err, &ne) || errors.As(err, &oe) {
		return eventstore.Unavailable(what+": lost the connection to PostgreSQL", err)
	}
	return eventstore.Unavailable(what, err)
}
