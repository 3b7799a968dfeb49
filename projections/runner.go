package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/uptrace/bun"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
)

// RunnerOptions tunes a Runner. The zero value is usable.
type RunnerOptions struct {
	// BatchSize caps the events applied in one transaction (default 500).
	BatchSize int
	// Logger receives errors the runner recovers from (default
	// slog.Default()).
	Logger *slog.Logger
	// OnBatch, when set, is called after each applied batch with the number
	// of events, the checkpoint reached and how long the transaction took.
	// It must not block.
	OnBatch func(events int, through eventstore.Position, took time.Duration)
}

// Runner keeps one projection's tables up to date: it subscribes to the log
// from the projection's checkpoint, applies events in batches and moves the
// checkpoint in the same transaction, and resubscribes from the stored
// checkpoint after any error, so nothing is applied twice or skipped.
type Runner struct {
	proj Projection
	db   *bun.DB
	log  EventLog
	opts RunnerOptions

	mu       sync.Mutex
	position eventstore.Position // processed through, in memory
	caughtUp bool
	changed  chan struct{} // closed and replaced when position or caughtUp change
}

// NewRunner returns a runner of p over the read database db and the log.
func NewRunner(db *bun.DB, log EventLog, p Projection, opts RunnerOptions) *Runner {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 500
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Runner{proj: p, db: db, log: log, opts: opts, changed: make(chan struct{})}
}

// Projection returns the projection the runner keeps.
func (r *Runner) Projection() Projection { return r.proj }

// ErrNeedsRebuild is returned by Run when the stored tables were written by
// another version of the projection.
var ErrNeedsRebuild = errors.New("projection needs a rebuild: its stored version differs from the code's")

// Prepare makes sure the projection has a checkpoint written by this
// version of its code. A projection never run gets one at the start of the
// log; one whose stored version differs returns ErrNeedsRebuild.
func Prepare(ctx context.Context, db bun.IDB, p Projection) error {
	row, ok, err := loadCheckpoint(ctx, db, p.Name())
	if err != nil {
		return err
	}
	if !ok {
		return saveCheckpoint(ctx, db, p.Name(), p.Version(), eventstore.Start)
	}
	if row.Version != p.Version() {
		return fmt.Errorf("%s: stored version %d, code version %d: %w", p.Name(), row.Version, p.Version(), ErrNeedsRebuild)
	}
	return nil
}

// Run applies the log to the projection until ctx ends. It retries after
// errors with a growing pause, resuming from the stored checkpoint. It
// returns ErrNeedsRebuild at once if the stored tables belong to another
// version, and nil when ctx ends.
func (r *Runner) Run(ctx context.Context) error {
	if err := Prepare(ctx, r.db, r.proj); errors.Is(err, ErrNeedsRebuild) {
		return err
	}
	pause := 50 * time.Millisecond
	for {
		err := r.runOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrNeedsRebuild) {
			return err
		}
		if errors.Is(err, errCheckpointMoved) {
			r.opts.Logger.Info("projection reloads its checkpoint", "projection", r.proj.Name(), "reason", err)
			pause = 50 * time.Millisecond
			continue
		}
		r.opts.Logger.Warn("projection runner failed; resuming from its checkpoint", "projection", r.proj.Name(), "err", err, "retry_in", pause)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(pause):
		}
		pause = min(pause*2, 5*time.Second)
	}
}

// checkpointInterval bounds how long a checkpoint that moved only past
// events the projection does not read stays unwritten.
const checkpointInterval = time.Second

func (r *Runner) runOnce(ctx context.Context) error {
	if err := Prepare(ctx, r.db, r.proj); err != nil {
		return err
	}
	row, _, err := loadCheckpoint(ctx, r.db, r.proj.Name())
	if err != nil {
		return err
	}
	persisted := row.position()
	r.advance(persisted, false)
	sub, err := r.log.Subscribe(ctx, eventstore.SubscribeOptions{
		After: persisted, Filter: eventstore.Filter{EventTypes: r.proj.EventTypes()}, BatchSize: r.opts.BatchSize,
	})
	if err != nil {
		return err
	}
	defer sub.Close()
	f := startFeed(ctx, sub)
	defer f.close()
	lastWrite := time.Now()
	defer func() {
		// Keep a checkpoint that moved past unread events, so a restart
		// does not scan them again.
		r.mu.Lock()
		pos := r.position
		r.mu.Unlock()
		if persisted.Less(pos) {
			_ = r.db.RunInTx(context.WithoutCancel(ctx), nil, func(ctx context.Context, tx bun.Tx) error {
				return advanceCheckpoint(ctx, tx, r.proj.Name(), persisted, pos)
			})
		}
	}()
	for {
		b, err := r.next(ctx, f, persisted)
		if errors.Is(err, errIdle) {
			// Nothing came for a while: write down a checkpoint that moved
			// only past events this projection does not read.
			pos := r.Position()
			err = r.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				return advanceCheckpoint(ctx, tx, r.proj.Name(), persisted, pos)
			})
			if err != nil {
				return err
			}
			persisted, lastWrite = pos, time.Now()
			continue
		}
		if err != nil {
			return err
		}
		through := b.through
		if len(b.events) == 0 && time.Since(lastWrite) < checkpointInterval {
			r.advance(through, b.caughtUp)
			continue
		}
		started := time.Now()
		err = r.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			if len(b.events) > 0 {
				if err := r.proj.Apply(ctx, tx, Live, b.events); err != nil {
					return fmt.Errorf("apply %d events to %s: %w", len(b.events), r.proj.Name(), err)
				}
			}
			return advanceCheckpoint(ctx, tx, r.proj.Name(), persisted, through)
		})
		if err != nil {
			return err
		}
		persisted, lastWrite = through, time.Now()
		r.advance(through, b.caughtUp)
		if r.opts.OnBatch != nil {
			r.opts.OnBatch(len(b.events), through, time.Since(started))
		}
	}
}

// errIdle says that no batch came within checkpointInterval while the
// in-memory position was ahead of the stored checkpoint.
var errIdle = errors.New("idle")

// next waits for the next batch; while the in-memory position is ahead of
// the stored checkpoint it waits at most checkpointInterval and then returns
// errIdle.
func (r *Runner) next(ctx context.Context, f *feed, persisted eventstore.Position) (decodedBatch, error) {
	if !persisted.Less(r.Position()) {
		return f.next(ctx)
	}
	wait, cancel := context.WithTimeout(ctx, checkpointInterval)
	defer cancel()
	b, err := f.next(wait)
	if err != nil && ctx.Err() == nil && wait.Err() != nil {
		return b, errIdle
	}
	return b, err
}

// advance moves the in-memory position forward (never back) and wakes
// waiters.
func (r *Runner) advance(p eventstore.Position, caughtUp bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	moved := false
	if r.position.Less(p) {
		r.position = p
		moved = true
	}
	if caughtUp && !r.caughtUp {
		r.caughtUp = true
		moved = true
	}
	if moved {
		close(r.changed)
		r.changed = make(chan struct{})
	}
}

// Position returns the position the projection has processed through.
func (r *Runner) Position() eventstore.Position {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.position
}

// CaughtUp reports whether the runner has reached the head of the log once.
func (r *Runner) CaughtUp() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.caughtUp
}

// WaitFor blocks until the projection has processed the log through p, so a
// caller can read its own writes. It returns an EUNAVAILABLE error when ctx
// ends first.
func (r *Runner) WaitFor(ctx context.Context, p eventstore.Position) error {
	return r.wait(ctx, func() bool { return !r.position.Less(p) }, "position "+p.String())
}

// WaitCaughtUp blocks until the runner has reached the head of the log once.
// It returns an EUNAVAILABLE error when ctx ends first.
func (r *Runner) WaitCaughtUp(ctx context.Context) error {
	return r.wait(ctx, func() bool { return r.caughtUp }, "the head of the log")
}

func (r *Runner) wait(ctx context.Context, done func() bool, what string) error {
	for {
		r.mu.Lock()
		ok, ch := done(), r.changed
		r.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return domain.WrapError(domain.EUNAVAILABLE, "the "+r.proj.Name()+" read model did not reach "+what+" in time", ctx.Err())
		}
	}
}
