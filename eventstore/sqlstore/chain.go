package sqlstore

import (
	"context"
	"database/sql"
	"time"

	"github.com/uptrace/bun"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/chain"
)

// The hash chain (see package eventstore/chain) is computed by the writer
// under the log's write lock, as each group transaction inserts its rows:
// the writer remembers the hash of the last row it committed, and reads the
// head's hash again only when the head is not where it left it (another
// process appended, or a transaction's outcome is unknown). Rows stored
// before the chain existed, or by a release without it, have no hash; they
// are filled in position order when a store opens, and by the writer before
// it appends after them.

// chainColumns are the columns ScanLog reads, in scanChainRow's order.
const chainColumns = "position, event_id, stream, version, type, data, metadata, created_at, hash"

// backfillBatch is how many rows one backfill transaction hashes.
const backfillBatch = 5000

// chainState is the writer's knowledge of the chain: the hash of the last
// stored row, valid while the log's head is at.
type chainState struct {
	hasher *chain.Hasher
	at     int64 // the head the hash belongs to; -1: unknown
	prev   chain.Hash
}

// chainRow scans rows of chainColumns without allocating per row beyond
// what the driver does: data, metadata and hash are copied into reused
// buffers, valid until the next scan.
type chainRow struct {
	e                    chain.Event
	position, version    int64
	data, metadata, hash sql.RawBytes
	created              commitTime
	dest                 []any
}

func newChainRow() *chainRow {
	r := &chainRow{}
	r.dest = []any{&r.position, &r.e.ID, &r.e.Stream, &r.version, &r.e.Type, &r.data, &r.metadata, &r.created, &r.hash}
	return r
}

func (r *chainRow) scan(rows *sql.Rows) error {
	if err := rows.Scan(r.dest...); err != nil {
		return err
	}
	r.e.Position, r.e.Version = uint64(r.position), uint64(r.version)
	r.e.Data, r.e.Metadata = r.data, r.metadata
	r.e.Time = time.Time(r.created).UnixMicro()
	return nil
}

// chainHeadLocked reads the position and hash of the last stored row inside tx, which
// holds the write lock; a missing hash is filled first (with every other
// missing one before it).
func (s *Store) chainHeadLocked(ctx context.Context, tx bun.Tx, fail failFunc) (int64, chain.Hash, error) {
	for {
		var pos int64
		var stored []byte
		err := tx.QueryRowContext(ctx, "SELECT position, hash FROM events ORDER BY position DESC LIMIT 1").Scan(&pos, &stored)
		if err == sql.ErrNoRows {
			return 0, chain.Hash{}, nil
		}
		if err != nil {
			return 0, chain.Hash{}, fail("read the chain's head", err)
		}
		if h, ok := chain.FromBytes(stored); ok {
			return pos, h, nil
		}
		if _, err := s.backfillOnce(ctx, tx, backfillBatch, fail); err != nil {
			return 0, chain.Hash{}, err
		}
	}
}

// prevHash returns the hash the batch's first row follows, headBefore being
// the log's head under the lock.
func (s *Store) prevHash(ctx context.Context, tx bun.Tx, headBefore int64, fail failFunc) (chain.Hash, error) {
	if s.chain.at >= 0 && s.chain.at == headBefore {
		return s.chain.prev, nil
	}
	_, h, err := s.chainHeadLocked(ctx, tx, fail)
	return h, err
}

// backfillOnce hashes up to limit rows without a hash, the earliest first,
// inside tx (which holds the write lock), and reports how many it hashed.
// Rows that have a hash are never changed: the chain continues from them.
func (s *Store) backfillOnce(ctx context.Context, tx bun.Tx, limit int, fail failFunc) (int, error) {
	var first int64
	err := tx.QueryRowContext(ctx, "SELECT position FROM events WHERE hash IS NULL ORDER BY position LIMIT 1").Scan(&first)
	if err == sql.ErrNoRows {
		return 0, nil
	}
	if err != nil {
		return 0, fail("find events without a hash", err)
	}
	var prev chain.Hash
	var stored []byte
	err = tx.QueryRowContext(ctx, "SELECT hash FROM events WHERE position < ? ORDER BY position DESC LIMIT 1", first).Scan(&stored)
	switch {
	case err == sql.ErrNoRows:
	case err != nil:
		return 0, fail("read the hash before the unhashed events", err)
	default:
		h, ok := chain.FromBytes(stored)
		if !ok {
			return 0, domain.Errorf(domain.EINTERNAL, "event log: the event before position %d has a damaged hash", first)
		}
		prev = h
	}
	rows, err := tx.QueryContext(ctx, "SELECT "+chainColumns+" FROM events WHERE position >= ? ORDER BY position LIMIT ?", first, limit)
	if err != nil {
		return 0, fail("read events to hash", err)
	}
	var positions []int64
	var hashes [][]byte
	hasher := chain.NewHasher()
	r := newChainRow()
	for rows.Next() {
		if err := r.scan(rows); err != nil {
			rows.Close()
			return 0, fail("read events to hash", err)
		}
		if h, ok := chain.FromBytes(r.hash); ok {
			prev = h
			continue
		}
		prev = hasher.Next(prev, &r.e)
		positions = append(positions, r.position)
		hashes = append(hashes, append([]byte(nil), prev[:]...))
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return 0, fail("read events to hash", err)
	}
	rows.Close()
	if err := s.dialect.setHashes(ctx, tx.Tx, positions, hashes, fail); err != nil {
		return 0, err
	}
	return len(positions), nil
}

// backfill hashes every row without a hash, in position order, one batch
// per transaction, so that a log written before the chain existed verifies.
// It is idempotent and resumes where an interrupted run stopped.
func (s *Store) backfill(ctx context.Context) error {
	for {
		n, err := s.backfillTx(ctx)
		if err != nil || n == 0 {
			return err
		}
	}
}

func (s *Store) backfillTx(ctx context.Context) (int, error) {
	fail := func(what string, err error) error { return s.classify(ctx, what, err) }
	tx, err := s.writeDB.BeginTx(ctx, nil)
	if err != nil {
		return 0, fail("begin the chain backfill", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it does nothing
	if err := s.dialect.lockLog(ctx, tx.Tx, fail); err != nil {
		return 0, err
	}
	n, err := s.backfillOnce(ctx, tx, backfillBatch, fail)
	if err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, fail("commit the chain backfill", err)
	}
	return n, nil
}

// ErrNoChain is the error of ScanLog and ChainHead on a log whose events
// table has no hash column yet: it was written before the chain existed and
// has not been opened for writing since (which adds and fills the column).
var ErrNoChain = domain.Errorf(domain.EUNAVAILABLE, "the event log has no hash chain yet: it was written before the chain existed; open it once for writing (auraos migrate, or a server start) to add it")

// requireChain fails with ErrNoChain when the events table has no hash
// column.
func (s *Store) requireChain(ctx context.Context) error {
	rows, err := s.readDB.QueryContext(ctx, "SELECT hash FROM events LIMIT 0")
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return ErrNoChain
	}
	return rows.Close()
}

// ScanLog calls fn with every stored event in position order, from one
// snapshot of the log, with the event's stored hash (nil when it has none;
// a chain.Verifier says whether it is right). The event and the hash are
// valid only during the call: they are reused for the next event, so the
// scan allocates next to nothing per event. It returns what fn returns, ctx's
// error, ErrNoChain (EUNAVAILABLE) for a log without the hash column,
// eventstore.ErrClosed, or an EUNAVAILABLE error when the database fails.
func (s *Store) ScanLog(ctx context.Context, fn func(e *chain.Event, hash []byte) error) error {
	if s.isClosed() {
		return eventstore.ErrClosed
	}
	if err := s.requireChain(ctx); err != nil {
		return err
	}
	tx, err := s.readDB.BeginTx(ctx, s.dialect.readTxOptions())
	if err != nil {
		return s.classify(ctx, "scan the log", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	rows, err := tx.QueryContext(ctx, "SELECT "+chainColumns+" FROM events ORDER BY position")
	if err != nil {
		return s.classify(ctx, "scan the log", err)
	}
	defer rows.Close()
	r := newChainRow()
	for rows.Next() {
		if err := r.scan(rows); err != nil {
			return s.classify(ctx, "scan the log", err)
		}
		if err := fn(&r.e, r.hash); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return s.classify(ctx, "scan the log", err)
	}
	return nil
}

// ChainHead returns the position and stored hash of the last event (the zero
// Anchor for an empty log). It does not verify the chain: that is ScanLog's
// with a chain.Verifier. It returns ErrNoChain (EUNAVAILABLE) for a log
// without the hash column, a damaged-hash EINTERNAL error when the last event
// has no hash, and EUNAVAILABLE when the database fails.
func (s *Store) ChainHead(ctx context.Context) (chain.Anchor, error) {
	if s.isClosed() {
		return chain.Anchor{}, eventstore.ErrClosed
	}
	if err := s.requireChain(ctx); err != nil {
		return chain.Anchor{}, err
	}
	var pos int64
	var stored []byte
	err := s.readDB.QueryRowContext(ctx, "SELECT position, hash FROM events ORDER BY position DESC LIMIT 1").Scan(&pos, &stored)
	if err == sql.ErrNoRows {
		return chain.Anchor{}, nil
	}
	if err != nil {
		return chain.Anchor{}, s.classify(ctx, "read the chain's head", err)
	}
	h, ok := chain.FromBytes(stored)
	if !ok {
		return chain.Anchor{}, domain.Errorf(domain.EINTERNAL, "the last event (position %d) has no hash: run auraos events verify", pos)
	}
	return chain.Anchor{Position: uint64(pos), Hash: h}, nil
}
