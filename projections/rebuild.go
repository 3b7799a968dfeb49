package projections

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/follow"
	"github.com/auraos/realtime/schema"
)

// RebuildOptions tunes Rebuild. The zero value is usable.
type RebuildOptions struct {
	// BatchSize caps the events applied in one transaction (default 5000).
	BatchSize int
	// Progress, when set, is called after each batch with the checkpoint
	// reached and the head of the log when the rebuild started.
	Progress func(through, head eventstore.Position)
}

// RebuildResult says what a rebuild did for one projection.
type RebuildResult struct {
	Projection string
	// Events is the number of events applied to the projection.
	Events  int
	Through eventstore.Position
	// Took is the time from the start of the rebuild to this projection's
	// swap; projections rebuilt together share the read of the log, so
	// their times overlap.
	Took time.Duration
}

// EventsPerSecond is the rebuild's throughput, swap included.
func (r RebuildResult) EventsPerSecond() float64 {
	if r.Took <= 0 {
		return 0
	}
	return float64(r.Events) / r.Took.Seconds()
}

// Rebuild builds a projection's tables again from the whole log, beside the
// live tables, and swaps them in when caught up: a running server keeps
// answering from the live tables meanwhile, and its runner picks up from the
// swapped-in checkpoint. A rebuild that fails or is interrupted leaves the
// live tables untouched; the next rebuild starts over.
func Rebuild(ctx context.Context, db *bun.DB, eventLog EventLog, p Projection, opts RebuildOptions) (RebuildResult, error) {
	sum, err := RebuildAll(ctx, db, eventLog, []Projection{p}, opts)
	if len(sum.Projections) == 0 {
		return RebuildResult{Projection: p.Name()}, err
	}
	return sum.Projections[0], err
}

// RebuildSummary says what a rebuild of several projections did.
type RebuildSummary struct {
	// Read is the number of events read from the log: every event of a
	// type some projection reads, each once however many read it.
	Read int
	// Took is the whole rebuild, the last swap included.
	Took time.Duration
	// Projections has one result per projection swapped in, in order.
	Projections []RebuildResult
}

// EventsPerSecond is the events read per second of the whole rebuild.
func (s RebuildSummary) EventsPerSecond() float64 {
	if s.Took <= 0 {
		return 0
	}
	return float64(s.Read) / s.Took.Seconds()
}

// RebuildAll rebuilds the projections ps, whose tables live in db, from one
// read of the log: each batch is decoded once, and every projection's share
// of it is applied in the same transaction, with every rebuild checkpoint.
// Each projection is then swapped in on its own, as Rebuild does, so a
// running server keeps answering from the live tables until then. A
// failure leaves the live tables of the projections not yet swapped in
// untouched, and the summary lists those that were.
func RebuildAll(ctx context.Context, db *bun.DB, eventLog EventLog, ps []Projection, opts RebuildOptions) (RebuildSummary, error) {
	var sum RebuildSummary
	if opts.BatchSize <= 0 {
		opts.BatchSize = 5000
	}
	started := time.Now()
	parts := make([]rebuildPart, len(ps))
	var types []string
	for i, p := range ps {
		parts[i] = newRebuildPart(p)
		types = append(types, p.EventTypes()...)
		if err := parts[i].prepare(ctx, db); err != nil {
			return sum, err
		}
	}
	head, err := eventLog.Head(ctx)
	if err != nil {
		return sum, err
	}

	// Catch up from the start of the log.
	through := eventstore.Start
	catchUp := follow.HandlerFunc(func(ctx context.Context, b follow.Batch) error {
		if len(b.Events) > 0 || through != b.Through {
			err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				for i := range parts {
					if err := parts[i].apply(ctx, tx, b.Events, through, b.Through); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			for i := range parts {
				parts[i].commit()
			}
			sum.Read += len(b.Events)
			through = b.Through
		}
		if opts.Progress != nil {
			opts.Progress(through, head)
		}
		if b.CaughtUp && !through.Less(head) {
			return follow.ErrDone
		}
		return nil
	})
	filter := eventstore.Filter{EventTypes: types}
	err = follow.New(eventLog, catchUp, follow.Options{Name: "rebuild", Filter: filter, BatchSize: opts.BatchSize, StopOnError: true}).Run(ctx)
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return sum, err
	}
	// What the Appliers kept pending goes in before the swaps.
	err = db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		for i := range parts {
			if err := parts[i].flush(ctx, tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return sum, err
	}

	for i := range parts {
		res, err := parts[i].swapIn(ctx, db, eventLog, through, opts.BatchSize)
		if err != nil {
			return sum, err
		}
		res.Took = time.Since(started)
		sum.Projections = append(sum.Projections, res)
	}
	sum.Took = time.Since(started)
	return sum, nil
}

// rebuildPart is one projection's share of a rebuild: its types, its
// shadow checkpoint and the events applied to it. A projection that is a
// Deferring projection applies the whole catch-up with one Applier, flushed
// once caught up:
// the shadow checkpoint then runs ahead of what its tables hold, which
// does no harm, since an unfinished rebuild is started over (prepare).
type rebuildPart struct {
	p          Projection
	deferred   Applier
	shadow     string
	types      map[string]bool
	appendOnly map[string]bool
	scratch    []Envelope
	applied    int
	pending    int
}

func newRebuildPart(p Projection) rebuildPart {
	types := make(map[string]bool, len(p.EventTypes()))
	for _, t := range p.EventTypes() {
		types[t] = true
	}
	appendOnly := map[string]bool{}
	if a, ok := p.(AppendOnly); ok {
		for _, t := range a.AppendOnlyTables() {
			appendOnly[t] = true
		}
	}
	r := rebuildPart{p: p, shadow: p.Name() + rebuildSuffix, types: types, appendOnly: appendOnly}
	if d, ok := p.(Deferring); ok {
		r.deferred = d.Deferred(Rebuilding)
	}
	return r
}

// AppendOnly is implemented by a projection whose Apply inserts into some
// of its tables without looking rows up in them by a secondary index: a
// rebuild fills those without their secondary indexes and builds the
// indexes once, sorted, which is faster than keeping them up to date row by
// row.
type AppendOnly interface {
	AppendOnlyTables() []string
}

// prepare creates empty shadow tables and a shadow checkpoint at the start
// of the log, dropping what an earlier, unfinished rebuild left.
func (r *rebuildPart) prepare(ctx context.Context, db *bun.DB) error {
	if err := dropShadow(ctx, db, r.p); err != nil {
		return err
	}
	for _, table := range r.p.Tables() {
		if err := schema.CreateTable(ctx, db, table, Rebuilding.Name(table)); err != nil {
			return err
		}
		if r.appendOnly[table] {
			continue // indexed once filled, in swapIn
		}
		// The projections look rows up by these indexes as they apply
		// (online-users moves lastSeen by user): without them each lookup
		// scans the table.
		if err := schema.CreateIndexes(ctx, db, table, Rebuilding.Name(table), rebuildSuffix); err != nil {
			return err
		}
	}
	return saveCheckpoint(ctx, db, r.shadow, r.p.Version(), eventstore.Start)
}

// apply folds the events of batch this projection reads into its shadow
// tables and moves its shadow checkpoint from through to to, inside tx.
// The count is kept pending until the transaction commits.
func (r *rebuildPart) apply(ctx context.Context, tx bun.Tx, batch []Envelope, through, to eventstore.Position) error {
	mine := r.scratch[:0]
	for _, e := range batch {
		if r.types[e.Type] {
			mine = append(mine, e)
		}
	}
	r.scratch = mine[:0]
	if len(mine) > 0 {
		var err error
		if r.deferred != nil {
			err = r.deferred.Apply(ctx, tx, mine)
		} else {
			err = r.p.Apply(ctx, tx, Rebuilding, mine)
		}
		if err != nil {
			return fmt.Errorf("rebuild %s: %w", r.p.Name(), err)
		}
	}
	r.pending = len(mine)
	return advanceCheckpoint(ctx, tx, r.shadow, through, to)
}

// flush writes what the part's Applier kept pending, inside tx.
func (r *rebuildPart) flush(ctx context.Context, tx bun.Tx) error {
	if r.deferred == nil {
		return nil
	}
	if err := r.deferred.Flush(ctx, tx); err != nil {
		return fmt.Errorf("rebuild %s: %w", r.p.Name(), err)
	}
	return nil
}

func (r *rebuildPart) commit() {
	r.applied += r.pending
	r.pending = 0
}

// swapIn applies what was committed after through and replaces the live
// tables with the rebuilt ones, with the live checkpoint, in one
// transaction.
func (r *rebuildPart) swapIn(ctx context.Context, db *bun.DB, eventLog EventLog, through eventstore.Position, batch int) (RebuildResult, error) {
	p := r.p
	res := RebuildResult{Projection: p.Name(), Events: r.applied}
	pg := db.Dialect().Name() == dialect.PG
	if pg {
		// PostgreSQL indexes the filled append-only tables now, outside the
		// swap, so queries on the live tables wait only for the swap
		// itself; SQLite builds every live index in the swap (swapTable).
		for _, table := range p.Tables() {
			if !r.appendOnly[table] {
				continue
			}
			if err := schema.CreateIndexes(ctx, db, table, Rebuilding.Name(table), rebuildSuffix); err != nil {
				return res, err
			}
		}
	}
	filter := eventstore.Filter{EventTypes: p.EventTypes()}
	err := retryLockConflicts(ctx, func() error {
		return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			if pg {
				if err := lockLiveTables(ctx, tx, p.Tables()); err != nil {
					return err
				}
			}
			return r.swapInTx(ctx, tx, eventLog, filter, through, batch, pg, &res)
		})
	})
	if err != nil {
		return res, fmt.Errorf("swap rebuilt %s in: %w", p.Name(), err)
	}
	return res, nil
}

// swapLockTimeout bounds how long the swap waits for the live tables. It is
// below PostgreSQL's default deadlock_timeout (1 s): a live runner touches
// a projection's tables in event order, so the swap, holding one table
// while it waits for another, could close a cycle with it. Giving up first
// means the swap, not the runner, backs off, and queries queued behind the
// swap's lock request wait at most this long.
const swapLockTimeout = 200 * time.Millisecond

// lockLiveTables takes the live tables for the swap, waiting at most
// swapLockTimeout.
func lockLiveTables(ctx context.Context, tx bun.Tx, tables []string) error {
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", swapLockTimeout.Milliseconds())); err != nil {
		return fmt.Errorf("set lock timeout: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "LOCK TABLE "+strings.Join(tables, ", ")+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		return fmt.Errorf("lock live tables: %w", err)
	}
	_, err := tx.ExecContext(ctx, "SET LOCAL lock_timeout = 0")
	return err
}

// retryLockConflicts runs swap until it does not fail on a lock conflict
// (PostgreSQL's lock_not_available, deadlock_detected or
// serialization_failure), waiting a little longer each time, or until ctx
// ends. Each attempt is a whole transaction, rolled back when it fails.
func retryLockConflicts(ctx context.Context, swap func() error) error {
	wait := 5 * time.Millisecond
	for {
		err := swap()
		if err == nil || !isLockConflict(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(wait):
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

// isLockConflict reports whether err is PostgreSQL's lock_not_available
// (55P03), deadlock_detected (40P01) or serialization_failure (40001).
func isLockConflict(err error) bool {
	var coded interface{ SQLState() string }
	if !errors.As(err, &coded) {
		return false
	}
	switch coded.SQLState() {
	case "55P03", "40P01", "40001":
		return true
	}
	return false
}

// swapInTx is the swap's transaction once the live tables are held: it
// applies what was committed since through, swaps each table and moves the
// live checkpoint, filling in res.
func (r *rebuildPart) swapInTx(ctx context.Context, tx bun.Tx, eventLog EventLog, filter eventstore.Filter, through eventstore.Position, batch int, pg bool, res *RebuildResult) error {
	p := r.p
	res.Events = r.applied
	// Whatever was committed since: the live runner will carry on
	// after the head read here.
	final, err := eventLog.Head(ctx)
	if err != nil {
		return err
	}
	n, err := applyRemaining(ctx, tx, eventLog, p, filter, through, final, batch)
	if err != nil {
		return err
	}
	res.Events += n
	if through.Less(final) {
		through = final
	}
	for _, table := range p.Tables() {
		if err := swapTable(ctx, tx, table, pg); err != nil {
			return err
		}
	}
	if err := saveCheckpoint(ctx, tx, p.Name(), p.Version(), through); err != nil {
		return err
	}
	res.Through = through
	_, err = tx.NewDelete().Model((*checkpointRow)(nil)).Where("name = ?", r.shadow).Exec(ctx)
	return err
}

// applyRemaining applies the events after through up to final inside the
// swap transaction.
func applyRemaining(ctx context.Context, tx bun.Tx, eventLog EventLog, p Projection, filter eventstore.Filter, through, final eventstore.Position, batch int) (int, error) {
	applied := 0
	for through.Less(final) {
		evs, err := eventLog.ReadAll(ctx, eventstore.ReadAllOptions{From: through, Filter: filter, Limit: batch})
		if err != nil {
			return applied, err
		}
		var todo []eventstore.RecordedEvent
		for _, e := range evs {
			if through.Less(e.Position) && !final.Less(e.Position) {
				todo = append(todo, e)
			}
		}
		if len(todo) == 0 {
			break
		}
		events, err := follow.Decode(todo)
		if err != nil {
			return applied, err
		}
		if err := p.Apply(ctx, tx, Rebuilding, events); err != nil {
			return applied, err
		}
		applied += len(todo)
		through = todo[len(todo)-1].Position
	}
	return applied, nil
}

// swapTable replaces the live table with its rebuilt copy and gives the copy
// the live table's index names.
func swapTable(ctx context.Context, tx bun.Tx, table string, pg bool) error {
	shadow := Rebuilding.Name(table)
	if _, err := tx.ExecContext(ctx, "DROP TABLE IF EXISTS ?", bun.Ident(table)); err != nil {
		return fmt.Errorf("drop %s: %w", table, err)
	}
	if _, err := tx.ExecContext(ctx, "ALTER TABLE ? RENAME TO ?", bun.Ident(shadow), bun.Ident(table)); err != nil {
		return fmt.Errorf("rename %s: %w", shadow, err)
	}
	if !pg {
		// SQLite cannot rename indexes: it drops the rebuild's and builds
		// the live ones under the write lock, which readers of the WAL do
		// not wait for.
		names, err := schema.IndexNames(dialect.SQLite, table, rebuildSuffix)
		if err != nil {
			return err
		}
		for _, name := range names {
			if _, err := tx.ExecContext(ctx, "DROP INDEX IF EXISTS ?", bun.Ident(name)); err != nil {
				return fmt.Errorf("drop index %s: %w", name, err)
			}
		}
		return schema.CreateIndexes(ctx, tx, table, table, "")
	}
	names, err := schema.IndexNames(dialect.PG, table, rebuildSuffix)
	if err != nil {
		return err
	}
	names = append(names, shadow+"_pkey")
	for _, name := range names {
		to := strings.Replace(strings.TrimSuffix(name, rebuildSuffix), shadow, table, 1)
		if _, err := tx.ExecContext(ctx, "ALTER INDEX IF EXISTS ? RENAME TO ?", bun.Ident(name), bun.Ident(to)); err != nil {
			return fmt.Errorf("rename index %s: %w", name, err)
		}
	}
	return nil
}

// dropShadow removes what an earlier, unfinished rebuild of p left.
func dropShadow(ctx context.Context, db bun.IDB, p Projection) error {
	for _, table := range p.Tables() {
		if _, err := db.ExecContext(ctx, "DROP TABLE IF EXISTS ?", Rebuilding.Ident(table)); err != nil {
			return fmt.Errorf("drop %s: %w", Rebuilding.Name(table), err)
		}
	}
	_, err := db.NewDelete().Model((*checkpointRow)(nil)).Where("name = ?", p.Name()+rebuildSuffix).Exec(ctx)
	return err
}
