package projections

import (
	"context"
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

// RebuildResult says what a rebuild did.
type RebuildResult struct {
	Projection string
	Events     int
	Through    eventstore.Position
	Took       time.Duration
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
	if opts.BatchSize <= 0 {
		opts.BatchSize = 5000
	}
	started := time.Now()
	res := RebuildResult{Projection: p.Name()}
	shadow := p.Name() + rebuildSuffix
	if err := dropShadow(ctx, db, p); err != nil {
		return res, err
	}
	for _, table := range p.Tables() {
		if err := schema.CreateTable(ctx, db, table, Rebuilding.Name(table)); err != nil {
			return res, err
		}
	}
	if err := saveCheckpoint(ctx, db, shadow, p.Version(), eventstore.Start); err != nil {
		return res, err
	}
	head, err := eventLog.Head(ctx)
	if err != nil {
		return res, err
	}

	// Catch up from the start of the log.
	filter := eventstore.Filter{EventTypes: p.EventTypes()}
	through := eventstore.Start
	catchUp := follow.HandlerFunc(func(ctx context.Context, b follow.Batch) error {
		if len(b.Events) > 0 || through != b.Through {
			err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				if err := p.Apply(ctx, tx, Rebuilding, b.Events); err != nil {
					return err
				}
				return advanceCheckpoint(ctx, tx, shadow, through, b.Through)
			})
			if err != nil {
				return fmt.Errorf("rebuild %s: %w", p.Name(), err)
			}
			res.Events += len(b.Events)
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
	err = follow.New(eventLog, catchUp, follow.Options{Name: p.Name() + " rebuild", Filter: filter, BatchSize: opts.BatchSize, StopOnError: true}).Run(ctx)
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return res, err
	}

	pg := db.Dialect().Name() == dialect.PG
	if pg {
		// PostgreSQL builds the indexes now, outside the swap, so queries
		// on the live tables wait only for the swap itself.
		for _, table := range p.Tables() {
			if err := schema.CreateIndexes(ctx, db, table, Rebuilding.Name(table), rebuildSuffix); err != nil {
				return res, err
			}
		}
	}

	err = db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if pg {
			if _, err := tx.ExecContext(ctx, "LOCK TABLE "+strings.Join(p.Tables(), ", ")+" IN ACCESS EXCLUSIVE MODE"); err != nil {
				return fmt.Errorf("lock live tables: %w", err)
			}
		}
		// Whatever was committed since: the live runner will carry on
		// after the head read here.
		final, err := eventLog.Head(ctx)
		if err != nil {
			return err
		}
		n, err := applyRemaining(ctx, tx, eventLog, p, filter, through, final, opts.BatchSize)
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
		_, err = tx.NewDelete().Model((*checkpointRow)(nil)).Where("name = ?", shadow).Exec(ctx)
		return err
	})
	if err != nil {
		return res, fmt.Errorf("swap rebuilt %s in: %w", p.Name(), err)
	}
	res.Through = through
	res.Took = time.Since(started)
	return res, nil
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
		// SQLite cannot rename indexes; it builds them under the write lock,
		// which readers of the WAL do not wait for.
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
