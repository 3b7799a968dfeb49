package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/uptrace/bun"

	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/follow"
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

// Runner keeps one projection's tables up to date. It is the handler of a
// follow.Follower that starts at the projection's stored checkpoint: it
// applies events in batches and moves the checkpoint in the same
// transaction, and after any error the follower resubscribes from the
// stored checkpoint, so nothing is applied twice or skipped.
type Runner struct {
	proj     Projection
	db       *bun.DB
	opts     RunnerOptions
	follower *follow.Follower

	// Owned by the follower's goroutine.
	persisted eventstore.Position // the stored checkpoint
	lastWrite time.Time
}

// NewRunner returns a runner of p over the read database db and the event
// log.
func NewRunner(db *bun.DB, eventLog follow.Log, p Projection, opts RunnerOptions) *Runner {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 500
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	r := &Runner{proj: p, db: db, opts: opts}
	r.follower = follow.New(eventLog, runnerHandler{r}, follow.Options{
		Name:      p.Name() + " read model",
		Filter:    eventstore.Filter{EventTypes: p.EventTypes()},
		BatchSize: opts.BatchSize,
		IdleAfter: checkpointInterval,
		Logger:    opts.Logger.With("projection", p.Name()),
	})
	return r
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
	return r.follower.Run(ctx)
}

// checkpointInterval bounds how long a checkpoint that moved only past
// events the projection does not read stays unwritten.
const checkpointInterval = time.Second

// runnerHandler is the Runner as the follower's handler; it keeps those
// methods out of the Runner's API.
type runnerHandler struct{ r *Runner }

// Resume starts each subscription at the stored checkpoint, which a rebuild
// may have moved.
func (h runnerHandler) Resume(ctx context.Context) (eventstore.Position, error) {
	r := h.r
	if err := Prepare(ctx, r.db, r.proj); err != nil {
		if errors.Is(err, ErrNeedsRebuild) {
			return eventstore.Start, follow.Permanent(err)
		}
		return eventstore.Start, err
	}
	row, _, err := loadCheckpoint(ctx, r.db, r.proj.Name())
	if err != nil {
		return eventstore.Start, err
	}
	r.persisted, r.lastWrite = row.position(), time.Now()
	return r.persisted, nil
}

// Handle applies a batch and moves the checkpoint in one transaction. A
// batch without events only moves the position in memory, unless the last
// write is older than checkpointInterval.
func (h runnerHandler) Handle(ctx context.Context, b follow.Batch) error {
	r := h.r
	if len(b.Events) == 0 && time.Since(r.lastWrite) < checkpointInterval {
		return nil
	}
	started := time.Now()
	err := r.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if len(b.Events) > 0 {
			if err := r.proj.Apply(ctx, tx, Live, b.Events); err != nil {
				return fmt.Errorf("apply %d events to %s: %w", len(b.Events), r.proj.Name(), err)
			}
		}
		return advanceCheckpoint(ctx, tx, r.proj.Name(), r.persisted, b.Through)
	})
	if err != nil {
		return reloadIfMoved(err)
	}
	r.persisted, r.lastWrite = b.Through, time.Now()
	if r.opts.OnBatch != nil {
		r.opts.OnBatch(len(b.Events), b.Through, time.Since(started))
	}
	return nil
}

// Idle writes down a checkpoint that moved only past events this
// projection does not read.
func (h runnerHandler) Idle(ctx context.Context) error {
	return reloadIfMoved(h.r.writePosition(ctx))
}

// Suspend keeps a checkpoint that moved past unread events, so a restart
// does not scan them again.
func (h runnerHandler) Suspend(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_ = h.r.writePosition(ctx)
}

// writePosition stores the follower's position as the checkpoint when it
// is ahead of the stored one.
func (r *Runner) writePosition(ctx context.Context) error {
	pos := r.follower.Position()
	if !r.persisted.Less(pos) {
		return nil
	}
	err := r.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		return advanceCheckpoint(ctx, tx, r.proj.Name(), r.persisted, pos)
	})
	if err != nil {
		return err
	}
	r.persisted, r.lastWrite = pos, time.Now()
	return nil
}

// reloadIfMoved asks the follower to resubscribe at once from the stored
// checkpoint when a rebuild moved it.
func reloadIfMoved(err error) error {
	if errors.Is(err, errCheckpointMoved) {
		return follow.Restart(err)
	}
	return err
}

// Position returns the position the projection has processed through.
func (r *Runner) Position() eventstore.Position { return r.follower.Position() }

// CaughtUp reports whether the runner has reached the head of the log once.
func (r *Runner) CaughtUp() bool { return r.follower.CaughtUp() }

// WaitFor blocks until the projection has processed the log through p, so a
// caller can read its own writes. It returns an EUNAVAILABLE error when ctx
// ends first.
func (r *Runner) WaitFor(ctx context.Context, p eventstore.Position) error {
	return r.follower.WaitFor(ctx, p)
}

// WaitCaughtUp blocks until the runner has reached the head of the log once.
// It returns an EUNAVAILABLE error when ctx ends first.
func (r *Runner) WaitCaughtUp(ctx context.Context) error { return r.follower.WaitCaughtUp(ctx) }
