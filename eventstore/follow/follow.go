// Package follow is the one loop that follows the event log. A Follower
// subscribes to the log from a position, decodes each batch on a reader
// goroutine while the previous one is handled (reading the log and writing
// a read model use both cores), hands the batches to its Handler on one
// goroutine, and after an error resubscribes from the last handled position
// with a capped, growing pause. It knows the position it has handled
// through, so callers can wait for it (read their own writes) and ask
// whether it has caught up with the head once.
//
// Projection runners, the adapter's live feed and reactors such as the AI
// assistant are handlers of a Follower; none of them keeps a loop of its
// own.
package follow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
)

// Log is what a Follower needs of the event store.
type Log interface {
	Subscribe(ctx context.Context, opts eventstore.SubscribeOptions) (eventstore.Subscription, error)
}

// Envelope is a stored event with its decoded domain event.
type Envelope struct {
	eventstore.RecordedEvent
	Event domain.Event
}

// Batch is what a Handler receives: events in strictly increasing position
// order, the position the log has been read through (it may lie past the
// last event when the filter skipped events), and whether this batch
// brought the follower to the head of the log.
type Batch struct {
	Events   []Envelope
	Through  eventstore.Position
	CaughtUp bool
}

// Handler handles the batches of a Follower, one at a time, on the
// follower's goroutine. An error ends the subscription: the follower
// resubscribes after the last batch Handle accepted (or where a Resumer
// says) after a pause, unless the error is ErrDone, Permanent or Restart.
type Handler interface {
	Handle(ctx context.Context, b Batch) error
}

// HandlerFunc adapts a function to a Handler.
type HandlerFunc func(ctx context.Context, b Batch) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, b Batch) error { return f(ctx, b) }

// Resumer is implemented by handlers that keep their own checkpoint: before
// each subscription the follower asks Resume where to start (after the
// returned position) instead of resuming after the last batch it handled.
// An error from Resume counts as a failed subscription.
type Resumer interface {
	Resume(ctx context.Context) (eventstore.Position, error)
}

// Idler is implemented by handlers that want to hear when the log is quiet:
// while subscribed, Idle is called each time Options.IdleAfter passes
// without a batch (for example to write down a checkpoint that moved only
// past events the handler does not read). Its error ends the subscription
// like Handle's.
type Idler interface {
	Idle(ctx context.Context) error
}

// Suspender is implemented by handlers that hold state per subscription:
// Suspend is called once after each subscription ends, for whatever reason,
// with a context that is not cancelled, before the follower waits or
// returns.
type Suspender interface {
	Suspend(ctx context.Context)
}

// ErrDone, returned by a Handler, ends Run without an error: the handler
// has read all it wanted (a rebuild that reached the head).
var ErrDone = errors.New("follow: done")

// Permanent marks a handler error that no resubscription can cure: Run
// returns it (errors.Is and errors.As see the cause).
func Permanent(err error) error { return &markedError{err: err, permanent: true} }

// Restart marks a handler error after which the follower should resubscribe
// at once, without a pause (the handler's checkpoint moved under it and it
// wants to reload it).
func Restart(err error) error { return &markedError{err: err} }

type markedError struct {
	err       error
	permanent bool
}

func (e *markedError) Error() string { return e.err.Error() }
func (e *markedError) Unwrap() error { return e.err }

func marked(err error) (*markedError, bool) {
	var m *markedError
	ok := errors.As(err, &m)
	return m, ok
}

// Options tune a Follower. Zero values take the defaults.
type Options struct {
	// Name says what follows the log in logs and errors ("live feed",
	// "online-users read model").
	Name string
	// From is where the first subscription starts (after it), unless the
	// handler is a Resumer. The default is the start of the log.
	From eventstore.Position
	// Filter and BatchSize are passed to the subscription.
	Filter    eventstore.Filter
	BatchSize int
	// SkipUndecodable leaves out, with a warning, events this code cannot
	// decode; otherwise such an event fails its batch (and the follower
	// retries it).
	SkipUndecodable bool
	// Depth is how many decoded batches may wait ahead of the handler
	// (default 2).
	Depth int
	// IdleAfter is the quiet period after which an Idler's Idle is called
	// (default 1s).
	IdleAfter time.Duration
	// MinPause and MaxPause bound the pause before a resubscription; it
	// doubles after each failure in a row (defaults 50ms and 5s).
	MinPause, MaxPause time.Duration
	// StopOnError makes Run return the first error instead of
	// resubscribing, for one-shot reads such as a rebuild.
	StopOnError bool
	// Logger receives the errors the follower recovers from (default
	// slog.Default()).
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.Name == "" {
		o.Name = "log follower"
	}
	if o.Depth <= 0 {
		o.Depth = 2
	}
	if o.IdleAfter <= 0 {
		o.IdleAfter = time.Second
	}
	if o.MinPause <= 0 {
		o.MinPause = 50 * time.Millisecond
	}
	if o.MaxPause < o.MinPause {
		o.MaxPause = max(5*time.Second, o.MinPause)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// controlDepth is how many functions Do may queue before it blocks.
const controlDepth = 256

// Follower follows the log for one Handler. Create it with New and call Run
// once; Position, CaughtUp, WaitFor and Do may be called from any goroutine.
type Follower struct {
	source  Log
	handler Handler
	opts    Options
	control chan func(context.Context) error

	mu       sync.Mutex
	position eventstore.Position // handled through
	caughtUp bool
	changed  chan struct{} // closed and replaced when position or caughtUp change
	running  bool
}

// New returns a Follower of the event log source for h.
func New(source Log, h Handler, opts Options) *Follower {
	opts.setDefaults()
	return &Follower{
		source: source, handler: h, opts: opts, position: opts.From,
		control: make(chan func(context.Context) error, controlDepth), changed: make(chan struct{}),
	}
}

// ErrRunning is returned by a second concurrent Run of one Follower.
var ErrRunning = errors.New("follow: the follower is already running")

// Run follows the log until ctx ends, the handler returns ErrDone (both
// return nil) or a Permanent error (returned). Every other error is logged
// and followed by a resubscription after a pause that doubles up to
// MaxPause and starts again at MinPause once a batch has been handled. Run
// returns only after its reader goroutine has stopped and the handler's
// Suspend has run.
func (f *Follower) Run(ctx context.Context) error {
	f.mu.Lock()
	if f.running {
		f.mu.Unlock()
		return ErrRunning
	}
	f.running = true
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.running = false
		f.mu.Unlock()
	}()

	pause := f.opts.MinPause
	for {
		progressed, err := f.follow(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrDone) {
			return nil
		}
		m, isMarked := marked(err)
		switch {
		case isMarked && m.permanent:
			return err
		case f.opts.StopOnError:
			return err
		case isMarked:
			f.opts.Logger.Info(f.opts.Name+" resubscribes", "reason", err)
			pause = f.opts.MinPause
			continue
		}
		if progressed {
			pause = f.opts.MinPause
		}
		f.opts.Logger.Warn(f.opts.Name+" failed; resubscribing", "err", err, "from", f.Position().String(), "retry_in", pause)
		if !f.pause(ctx, pause) {
			return nil
		}
		pause = min(pause*2, f.opts.MaxPause)
	}
}

// pause waits d, running what Do queues meanwhile. It reports false when
// ctx ended first.
func (f *Follower) pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return true
		case fn := <-f.control:
			if err := fn(ctx); err != nil {
				f.opts.Logger.Warn(f.opts.Name+": queued work failed between subscriptions", "err", err)
			}
		case <-ctx.Done():
			return false
		}
	}
}

type item struct {
	batch Batch
	err   error
}

// follow runs one subscription until an error and reports whether it
// handled a batch.
func (f *Follower) follow(ctx context.Context) (progressed bool, err error) {
	if s, ok := f.handler.(Suspender); ok {
		defer s.Suspend(context.WithoutCancel(ctx))
	}
	from := f.Position()
	if r, ok := f.handler.(Resumer); ok {
		if from, err = r.Resume(ctx); err != nil {
			return false, err
		}
		f.advance(from, false)
	}
	sub, err := f.source.Subscribe(ctx, eventstore.SubscribeOptions{After: from, Filter: f.opts.Filter, BatchSize: f.opts.BatchSize})
	if err != nil {
		return false, err
	}
	defer sub.Close()

	readCtx, stopReading := context.WithCancel(ctx)
	items := make(chan item, f.opts.Depth)
	var reader sync.WaitGroup
	reader.Add(1)
	go func() {
		defer reader.Done()
		f.read(readCtx, sub, items)
	}()
	defer func() { stopReading(); reader.Wait() }()

	idler, _ := f.handler.(Idler)
	var idle <-chan time.Time
	var timer *time.Timer
	if idler != nil {
		timer = time.NewTimer(f.opts.IdleAfter)
		defer timer.Stop()
		idle = timer.C
	}
	var held *item // taken by gather, to be handled next
	for {
		var it item
		if held != nil {
			select {
			case fn := <-f.control:
				if err := fn(ctx); err != nil {
					return progressed, err
				}
				continue
			case <-ctx.Done():
				return progressed, ctx.Err()
			default:
			}
			it, held = *held, nil
		} else {
			select {
			case it = <-items:
			case fn := <-f.control:
				if err := fn(ctx); err != nil {
					return progressed, err
				}
				continue
			case <-idle:
				if err := idler.Idle(ctx); err != nil {
					return progressed, err
				}
				timer.Reset(f.opts.IdleAfter)
				continue
			case <-ctx.Done():
				return progressed, ctx.Err()
			}
		}
		if it.err != nil {
			return progressed, it.err
		}
		it.batch, held = f.gather(it.batch, items)
		if err := f.handler.Handle(ctx, it.batch); err != nil {
			return progressed, err
		}
		progressed = true
		f.advance(it.batch.Through, it.batch.CaughtUp)
		if timer != nil {
			timer.Reset(f.opts.IdleAfter)
		}
	}
}

// gather adds to b the batches decoded and waiting already, as long as
// they fit in BatchSize: a handler that fell behind (a projection under
// load) catches up in fewer, larger batches, for a projection in fewer
// transactions, without waiting for anything. It returns the batch and the
// item it took but could not add (an error, or a batch too large to fit),
// nil if none.
func (f *Follower) gather(b Batch, items <-chan item) (Batch, *item) {
	if f.opts.BatchSize <= 0 {
		return b, nil
	}
	copied := false
	for len(b.Events) < f.opts.BatchSize {
		var it item
		select {
		case it = <-items:
		default:
			return b, nil
		}
		if it.err != nil || len(b.Events)+len(it.batch.Events) > f.opts.BatchSize {
			return b, &it
		}
		if !copied {
			// The decoded events may be shared with other followers: the
			// merged batch gets an array of its own.
			b.Events = append(make([]Envelope, 0, min(f.opts.BatchSize, 2*(len(b.Events)+len(it.batch.Events)))), b.Events...)
			copied = true
		}
		b.Events = append(b.Events, it.batch.Events...)
		b.Through, b.CaughtUp = it.batch.Through, it.batch.CaughtUp
	}
	return b, nil
}

// read reads batches on one goroutine and decodes them on another, so that
// reading the next batch, decoding this one and handling the one before
// proceed at once (a catch-up is bound by the slowest of the three, not by
// reading and decoding together). It stops after the first error, which it
// hands on too, or when ctx ends.
func (f *Follower) read(ctx context.Context, sub eventstore.Subscription, items chan<- item) {
	type read struct {
		batch eventstore.Batch
		err   error
	}
	ctx, stop := context.WithCancel(ctx)
	raw := make(chan read, 1)
	go func() {
		defer close(raw)
		for {
			b, err := sub.Next(ctx)
			select {
			case raw <- read{b, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		stop()          // after a decode error too: no more reading
		for range raw { // wait for the reading goroutine to stop
		}
	}()
	for r := range raw {
		it := item{err: r.err}
		if r.err == nil {
			it.batch, it.err = f.decode(r.batch)
		}
		select {
		case items <- it:
		case <-ctx.Done():
			return
		}
		if it.err != nil {
			return
		}
	}
}

func (f *Follower) decode(b eventstore.Batch) (Batch, error) {
	out := Batch{Events: make([]Envelope, 0, len(b.Events)), Through: b.Through, CaughtUp: b.CaughtUp}
	for _, rec := range b.Events {
		ev, err := decodeShared(rec)
		if err != nil {
			if f.opts.SkipUndecodable {
				f.opts.Logger.Warn(f.opts.Name+" skips an event it cannot decode", "position", rec.Position.String(), "type", rec.Type, "err", err)
				continue
			}
			return out, fmt.Errorf("event %s at %v: %w", rec.ID, rec.Position, err)
		}
		out.Events = append(out.Events, Envelope{RecordedEvent: rec, Event: ev})
	}
	return out, nil
}

// Decode decodes stored events, failing on the first one this code cannot
// read, for readers that take events from ReadAll rather than a Follower.
func Decode(events []eventstore.RecordedEvent) ([]Envelope, error) {
	out := make([]Envelope, len(events))
	for i, rec := range events {
		ev, err := domain.Decode(rec.Type, rec.Data)
		if err != nil {
			return nil, fmt.Errorf("event %s at %v: %w", rec.ID, rec.Position, err)
		}
		out[i] = Envelope{RecordedEvent: rec, Event: ev}
	}
	return out, nil
}

// Do runs fn on the follower's goroutine, between batches (or during the
// pause before a resubscription), so a handler's state needs no lock. It
// returns once fn is queued, or false when ctx ends first. fn gets the
// follower's context; its error ends the current subscription like a
// Handle error (between subscriptions it is logged).
func (f *Follower) Do(ctx context.Context, fn func(ctx context.Context) error) bool {
	select {
	case f.control <- fn:
		return true
	case <-ctx.Done():
		return false
	}
}

// advance moves the position forward (never back) and wakes waiters.
func (f *Follower) advance(p eventstore.Position, caughtUp bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	moved := false
	if f.position.Less(p) {
		f.position = p
		moved = true
	}
	if caughtUp && !f.caughtUp {
		f.caughtUp = true
		moved = true
	}
	if moved {
		close(f.changed)
		f.changed = make(chan struct{})
	}
}

// Position returns the position the handler has handled the log through.
func (f *Follower) Position() eventstore.Position {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.position
}

// CaughtUp reports whether the follower has reached the head of the log
// once.
func (f *Follower) CaughtUp() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.caughtUp
}

// WaitFor blocks until the handler has handled the log through p, so a
// caller can read its own writes. It returns an EUNAVAILABLE error naming
// the follower when ctx ends first.
func (f *Follower) WaitFor(ctx context.Context, p eventstore.Position) error {
	return f.wait(ctx, func() bool { return !f.position.Less(p) }, "position "+p.String())
}

// WaitCaughtUp blocks until the follower has reached the head of the log
// once. It returns an EUNAVAILABLE error when ctx ends first.
func (f *Follower) WaitCaughtUp(ctx context.Context) error {
	return f.wait(ctx, func() bool { return f.caughtUp }, "the head of the log")
}

func (f *Follower) wait(ctx context.Context, done func() bool, what string) error {
	for {
		f.mu.Lock()
		ok, ch := done(), f.changed
		f.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return domain.WrapError(domain.EUNAVAILABLE, "the "+f.opts.Name+" did not reach "+what+" in time", ctx.Err())
		}
	}
}
