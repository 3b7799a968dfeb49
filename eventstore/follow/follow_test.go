package follow_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/follow"
	"github.com/auraos/realtime/eventstore/sqlstore"
	"github.com/auraos/realtime/eventstore/sqlstore/sqlstoretest"
)

func openStore(t *testing.T) *sqlstore.Store {
	t.Helper()
	s := sqlstoretest.OpenSQLite(t, sqlstore.Options{})
	return s
}

// appendAlerts appends n system alerts and returns the last position.
func appendAlerts(t *testing.T, s eventstore.Store, n int) eventstore.Position {
	t.Helper()
	var last eventstore.Position
	for i := range n {
		data := fmt.Sprintf(`{"schemaVersion":1,"title":"t%d","message":"m","severity":"info","at":"2026-12-01T10:00:00Z"}`, i)
		res, err := s.Append(context.Background(), domain.SystemStream(), eventstore.Any,
			eventstore.EventData{Type: domain.TypeSystemAlertBroadcast, Data: []byte(data)})
		if err != nil {
			t.Fatal(err)
		}
		last = res.LastPosition()
	}
	return last
}

// recorder is a Handler that keeps what it was given and can fail on
// demand.
type recorder struct {
	mu        sync.Mutex
	positions []eventstore.Position
	handling  atomic.Bool
	failAt    map[uint64]error // fail the batch holding this position, once
}

func (r *recorder) Handle(_ context.Context, b follow.Batch) error {
	if !r.handling.CompareAndSwap(false, true) {
		panic("Handle called concurrently")
	}
	defer r.handling.Store(false)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range b.Events {
		if err, ok := r.failAt[e.Position.Commit]; ok {
			delete(r.failAt, e.Position.Commit)
			return err
		}
	}
	for _, e := range b.Events {
		r.positions = append(r.positions, e.Position)
	}
	return nil
}

func (r *recorder) got() []eventstore.Position {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]eventstore.Position(nil), r.positions...)
}

// flakyLog fails the subscriptions it hands out after `after` batches each
// (0: never), and records where each subscription started.
type flakyLog struct {
	follow.Log
	after int

	mu     sync.Mutex
	starts []eventstore.Position
	failed int
}

func (l *flakyLog) Subscribe(ctx context.Context, opts eventstore.SubscribeOptions) (eventstore.Subscription, error) {
	l.mu.Lock()
	l.starts = append(l.starts, opts.After)
	l.mu.Unlock()
	sub, err := l.Log.Subscribe(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &flakySub{Subscription: sub, source: l}, nil
}

func (l *flakyLog) subscriptions() []eventstore.Position {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]eventstore.Position(nil), l.starts...)
}

type flakySub struct {
	eventstore.Subscription
	source *flakyLog
	n      int
}

func (s *flakySub) Next(ctx context.Context) (eventstore.Batch, error) {
	if s.source.after > 0 && s.n == s.source.after {
		s.source.mu.Lock()
		s.source.failed++
		s.source.mu.Unlock()
		return eventstore.Batch{}, domain.Errorf(domain.EUNAVAILABLE, "subscription dropped")
	}
	s.n++
	return s.Subscription.Next(ctx)
}

// run starts f and returns a function that stops it and returns Run's
// error.
func run(t *testing.T, f *follow.Follower) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func waitCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// quietLogger discards records but keeps the retry_in pauses of failures.
type pauseLog struct {
	mu     sync.Mutex
	pauses []time.Duration
}

func (p *pauseLog) Enabled(context.Context, slog.Level) bool { return true }
func (p *pauseLog) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "retry_in" {
			p.mu.Lock()
			p.pauses = append(p.pauses, a.Value.Duration())
			p.mu.Unlock()
		}
		return true
	})
	return nil
}
func (p *pauseLog) WithAttrs([]slog.Attr) slog.Handler { return p }
func (p *pauseLog) WithGroup(string) slog.Handler      { return p }
func (p *pauseLog) got() []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Duration(nil), p.pauses...)
}

func quiet() *slog.Logger { return slog.New(&pauseLog{}) }

func TestDeliversEveryEventOnceInOrderAndWaits(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	before := appendAlerts(t, s, 30)
	rec := &recorder{}
	f := follow.New(s, rec, follow.Options{BatchSize: 7, Logger: quiet()})
	run(t, f)
	if err := f.WaitCaughtUp(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	if f.Position().Less(before) || !f.CaughtUp() {
		t.Fatalf("caught up at %v (caughtUp %v), want at least %v", f.Position(), f.CaughtUp(), before)
	}
	last := appendAlerts(t, s, 20)
	if err := f.WaitFor(waitCtx(t), last); err != nil {
		t.Fatal(err)
	}
	got := rec.got()
	if len(got) != 50 {
		t.Fatalf("handled %d events, want 50", len(got))
	}
	for i := 1; i < len(got); i++ {
		if !got[i-1].Less(got[i]) {
			t.Fatalf("positions out of order at %d: %v then %v", i, got[i-1], got[i])
		}
	}
}

func TestResumesAfterADroppedSubscriptionFromTheLastHandledBatch(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	last := appendAlerts(t, s, 40)
	source := &flakyLog{Log: s, after: 2}
	rec := &recorder{}
	f := follow.New(source, rec, follow.Options{BatchSize: 5, MinPause: time.Millisecond, MaxPause: 2 * time.Millisecond, Logger: quiet()})
	run(t, f)
	if err := f.WaitFor(waitCtx(t), last); err != nil {
		t.Fatal(err)
	}
	got := rec.got()
	if len(got) != 40 {
		t.Fatalf("handled %d events, want each of 40 once", len(got))
	}
	seen := map[eventstore.Position]bool{}
	for _, p := range got {
		if seen[p] {
			t.Fatalf("position %v handled twice", p)
		}
		seen[p] = true
	}
	starts := source.subscriptions()
	if len(starts) < 4 {
		t.Fatalf("subscribed %d times, want a resubscription after each drop", len(starts))
	}
	for i := 1; i < len(starts); i++ {
		if !starts[i-1].Less(starts[i]) {
			t.Fatalf("resubscription %d started after %v, not past the previous start %v", i, starts[i], starts[i-1])
		}
	}
}

func TestAFailedBatchIsHandledAgain(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	last := appendAlerts(t, s, 10)
	rec := &recorder{failAt: map[uint64]error{6: errors.New("read model down")}}
	f := follow.New(s, rec, follow.Options{BatchSize: 3, MinPause: time.Millisecond, Logger: quiet()})
	run(t, f)
	if err := f.WaitFor(waitCtx(t), last); err != nil {
		t.Fatal(err)
	}
	if got := rec.got(); len(got) != 10 {
		t.Fatalf("handled %v, want each of 10 events once", got)
	}
}

func TestPauseDoublesUpToItsCapAndRestartsAfterProgress(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	appendAlerts(t, s, 3)
	// Every subscription fails before delivering anything.
	source := &flakyLog{Log: &failingSubscribe{}}
	pauses := &pauseLog{}
	f := follow.New(source, &recorder{}, follow.Options{MinPause: time.Millisecond, MaxPause: 8 * time.Millisecond, Logger: slog.New(pauses)})
	stop := run(t, f)
	for len(source.subscriptions()) < 7 {
		time.Sleep(5 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{1, 2, 4, 8, 8, 8}
	got := pauses.got()
	if len(got) < len(want) {
		t.Fatalf("pauses %v, want at least %d", got, len(want))
	}
	for i, w := range want {
		if got[i] != w*time.Millisecond {
			t.Fatalf("pauses %v, want %v ms first", got, want)
		}
	}

	// A subscription that handled a batch before failing starts the pause
	// over.
	pauses2 := &pauseLog{}
	drops := &flakyLog{Log: s, after: 1}
	f2 := follow.New(drops, &recorder{}, follow.Options{BatchSize: 1, MinPause: time.Millisecond, MaxPause: 8 * time.Millisecond, Logger: slog.New(pauses2)})
	stop2 := run(t, f2)
	if err := f2.WaitCaughtUp(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	for _, p := range pauses2.got() {
		if p != time.Millisecond {
			t.Fatalf("pauses %v after subscriptions that made progress, want 1ms each", pauses2.got())
		}
	}
}

type failingSubscribe struct{}

func (failingSubscribe) Subscribe(context.Context, eventstore.SubscribeOptions) (eventstore.Subscription, error) {
	return nil, domain.Errorf(domain.EUNAVAILABLE, "store down")
}

// resumer keeps its own checkpoint.
type resumer struct {
	recorder
	from     eventstore.Position
	resumed  atomic.Int32
	idles    atomic.Int32
	suspends atomic.Int32
}

func (r *resumer) Resume(context.Context) (eventstore.Position, error) {
	r.resumed.Add(1)
	return r.from, nil
}
func (r *resumer) Idle(context.Context) error { r.idles.Add(1); return nil }
func (r *resumer) Suspend(context.Context)    { r.suspends.Add(1) }

func TestResumerIdlerAndSuspender(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	mid := appendAlerts(t, s, 5)
	last := appendAlerts(t, s, 5)
	h := &resumer{from: mid}
	f := follow.New(s, h, follow.Options{IdleAfter: 5 * time.Millisecond, Logger: quiet()})
	stop := run(t, f)
	if err := f.WaitFor(waitCtx(t), last); err != nil {
		t.Fatal(err)
	}
	for h.idles.Load() < 2 {
		time.Sleep(5 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := h.got(); len(got) != 5 || !mid.Less(got[0]) {
		t.Fatalf("handled %v, want the 5 events after %v", got, mid)
	}
	if h.resumed.Load() != 1 || h.suspends.Load() != 1 {
		t.Fatalf("resumed %d and suspended %d times, want once each", h.resumed.Load(), h.suspends.Load())
	}
}

// stopper ends the follow with a marked error at a position.
type stopper struct {
	at  uint64
	err error
}

func (s stopper) Handle(_ context.Context, b follow.Batch) error {
	if !b.Through.Less(eventstore.Pos(s.at)) {
		return s.err
	}
	return nil
}

func TestDonePermanentAndStopOnError(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	appendAlerts(t, s, 10)
	boom := errors.New("tables belong to another version")
	cases := []struct {
		name string
		err  error
		opts follow.Options
		want error
	}{
		{"done", follow.ErrDone, follow.Options{}, nil},
		{"permanent", follow.Permanent(boom), follow.Options{}, boom},
		{"stop on error", boom, follow.Options{StopOnError: true}, boom},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.opts.BatchSize, c.opts.Logger = 2, quiet()
			f := follow.New(s, stopper{at: 4, err: c.err}, c.opts)
			err := f.Run(waitCtx(t))
			if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("Run returned %v, want %v", err, c.want)
			}
		})
	}
}

func TestRestartResubscribesAtOnce(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	last := appendAlerts(t, s, 6)
	restarted := false
	source := &flakyLog{Log: s}
	pauses := &pauseLog{}
	h := follow.HandlerFunc(func(_ context.Context, b follow.Batch) error {
		if !restarted && len(b.Events) > 0 {
			restarted = true
			return follow.Restart(errors.New("checkpoint moved"))
		}
		return nil
	})
	f := follow.New(source, h, follow.Options{MinPause: time.Hour, Logger: slog.New(pauses)})
	run(t, f)
	if err := f.WaitFor(waitCtx(t), last); err != nil {
		t.Fatal(err)
	}
	if n := len(source.subscriptions()); n != 2 {
		t.Fatalf("subscribed %d times, want 2", n)
	}
	if p := pauses.got(); len(p) != 0 {
		t.Fatalf("paused %v before a restart, want no pause", p)
	}
}

func TestSkipUndecodable(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	appendAlerts(t, s, 1)
	if _, err := s.Append(context.Background(), "other-1", eventstore.Any, eventstore.EventData{Type: "FromTheFuture", Data: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	last := appendAlerts(t, s, 1)

	rec := &recorder{}
	f := follow.New(s, rec, follow.Options{SkipUndecodable: true, Logger: quiet()})
	run(t, f)
	if err := f.WaitFor(waitCtx(t), last); err != nil {
		t.Fatal(err)
	}
	if got := rec.got(); len(got) != 2 {
		t.Fatalf("handled %v, want the two alerts", got)
	}

	// Without skipping, the batch fails and is retried, never handled.
	strict := follow.New(s, &recorder{}, follow.Options{StopOnError: true, Logger: quiet()})
	if err := strict.Run(waitCtx(t)); err == nil || !strings.Contains(err.Error(), "FromTheFuture") {
		t.Fatalf("Run returned %v, want the decode error", err)
	}
}

func TestDoRunsBetweenBatchesOnTheFollowersGoroutine(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	rec := &recorder{}
	f := follow.New(s, rec, follow.Options{BatchSize: 1, Logger: quiet()})
	run(t, f)
	var ran, overlapped atomic.Int32
	appended := make(chan error, 1)
	go func() {
		var err error
		for i := 0; i < 50 && err == nil; i++ {
			_, err = s.Append(context.Background(), domain.SystemStream(), eventstore.Any, eventstore.EventData{
				Type: domain.TypeSystemAlertBroadcast, Data: []byte(`{"schemaVersion":1,"title":"t","message":"m","severity":"info","at":"2026-12-01T10:00:00Z"}`)})
		}
		appended <- err
	}()
	defer func() {
		if err := <-appended; err != nil {
			t.Error(err)
		}
	}()
	for range 50 {
		ok := f.Do(waitCtx(t), func(context.Context) error {
			if rec.handling.Load() {
				overlapped.Add(1)
			}
			ran.Add(1)
			return nil
		})
		if !ok {
			t.Fatal("Do did not queue")
		}
	}
	done := make(chan struct{})
	f.Do(waitCtx(t), func(context.Context) error { close(done); return nil })
	<-done
	if ran.Load() != 50 || overlapped.Load() != 0 {
		t.Fatalf("ran %d of 50, %d while a batch was handled", ran.Load(), overlapped.Load())
	}
}

func TestWaitForEndsWithTheContext(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	f := follow.New(s, &recorder{}, follow.Options{Name: "live feed", Logger: quiet()})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	err := f.WaitFor(ctx, eventstore.Pos(99))
	if domain.ErrorCode(err) != domain.EUNAVAILABLE || !strings.Contains(err.Error(), "the live feed did not reach position 99") {
		t.Fatalf("WaitFor returned %v, want UNAVAILABLE naming the live feed and the position", err)
	}
}

func TestASecondRunIsRefused(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	f := follow.New(s, &recorder{}, follow.Options{Logger: quiet()})
	run(t, f)
	if err := f.WaitCaughtUp(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := f.Run(waitCtx(t)); !errors.Is(err, follow.ErrRunning) {
		t.Fatalf("second Run returned %v, want ErrRunning", err)
	}
}

// blocker blocks in Handle until its context ends.
type blocker struct{ entered chan struct{} }

func (b blocker) Handle(ctx context.Context, batch follow.Batch) error {
	if len(batch.Events) == 0 {
		return nil
	}
	close(b.entered)
	<-ctx.Done()
	return ctx.Err()
}

func TestCancellationStopsEveryGoroutine(t *testing.T) {
	// Not parallel: it counts the package's goroutines.
	s := openStore(t)
	appendAlerts(t, s, 20)
	for _, name := range []string{"blocked in Handle", "waiting for events", "pausing after a failure"} {
		t.Run(name, func(t *testing.T) {
			var f *follow.Follower
			entered := make(chan struct{})
			switch name {
			case "blocked in Handle":
				f = follow.New(s, blocker{entered: entered}, follow.Options{BatchSize: 1, Logger: quiet()})
			case "waiting for events":
				f = follow.New(s, &recorder{}, follow.Options{Logger: quiet()})
				close(entered)
			case "pausing after a failure":
				f = follow.New(&failingSubscribe{}, &recorder{}, follow.Options{MinPause: time.Hour, Logger: quiet()})
				close(entered)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- f.Run(ctx) }()
			<-entered
			if name == "waiting for events" {
				if err := f.WaitCaughtUp(waitCtx(t)); err != nil {
					t.Fatal(err)
				}
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Run returned %v after cancellation, want nil", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return after cancellation")
			}
			if leaked := followerGoroutines(); leaked != "" {
				t.Fatalf("goroutines of the follower left after Run returned:\n%s", leaked)
			}
		})
	}
}

// followerGoroutines returns the stacks of goroutines running the follow
// package's code (tests excluded), after giving exiting ones a moment.
func followerGoroutines() string {
	var leaked string
	for range 50 {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		leaked = ""
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "eventstore/follow.(*Follower)") && !strings.Contains(g, "follow_test.") {
				leaked += g + "\n\n"
			}
		}
		if leaked == "" {
			return ""
		}
		time.Sleep(10 * time.Millisecond)
	}
	return leaked
}

// oneAtATime is a Log whose subscription delivers n system alerts one per
// batch, then waits, counting the batches asked for.
type oneAtATime struct {
	n     int
	calls atomic.Int64
}

func (l *oneAtATime) Subscribe(_ context.Context, opts eventstore.SubscribeOptions) (eventstore.Subscription, error) {
	return &oneAtATimeSub{log: l, next: opts.After.Commit + 1}, nil
}

type oneAtATimeSub struct {
	log  *oneAtATime
	next uint64
}

func (s *oneAtATimeSub) Next(ctx context.Context) (eventstore.Batch, error) {
	s.log.calls.Add(1)
	if s.next > uint64(s.log.n) {
		<-ctx.Done()
		return eventstore.Batch{}, ctx.Err()
	}
	p := eventstore.Pos(s.next)
	s.next++
	data := fmt.Sprintf(`{"schemaVersion":1,"title":"t%d","message":"m","severity":"info","at":"2026-12-01T10:00:00Z"}`, p.Commit)
	e := eventstore.RecordedEvent{ID: eventstore.NewID(), Stream: domain.SystemStream(), Version: p.Commit - 1,
		Type: domain.TypeSystemAlertBroadcast, Position: p, Time: time.Now(), Data: []byte(data), Metadata: []byte(`{}`)}
	return eventstore.Batch{Events: []eventstore.RecordedEvent{e}, Through: p, CaughtUp: p.Commit == uint64(s.log.n)}, nil
}

func (s *oneAtATimeSub) Close() error { return nil }

// A handler that fell behind gets the batches waiting for it together, in
// order and each event once, never more than BatchSize at a time.
func TestAHandlerBehindGetsTheWaitingBatchesTogether(t *testing.T) {
	t.Parallel()
	const n, batchSize = 12, 4
	log := &oneAtATime{n: n}
	release := make(chan struct{})
	var mu sync.Mutex
	var sizes []int
	var got []uint64
	h := follow.HandlerFunc(func(ctx context.Context, b follow.Batch) error {
		mu.Lock()
		first := len(sizes) == 0
		mu.Unlock()
		if first {
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		mu.Lock()
		defer mu.Unlock()
		sizes = append(sizes, len(b.Events))
		for _, e := range b.Events {
			got = append(got, e.Position.Commit)
		}
		if len(b.Events) > 0 && b.Through != b.Events[len(b.Events)-1].Position {
			t.Errorf("batch through %v, its last event at %v", b.Through, b.Events[len(b.Events)-1].Position)
		}
		return nil
	})
	f := follow.New(log, h, follow.Options{BatchSize: batchSize, Logger: quiet()})
	run(t, f)
	for deadline := time.Now().Add(30 * time.Second); log.calls.Load() < 5; time.Sleep(time.Millisecond) {
		// The first batch is being handled; the next ones wait, decoded.
		if time.Now().After(deadline) {
			t.Fatalf("the follower asked for %d batches", log.calls.Load())
		}
	}
	close(release)
	if err := f.WaitFor(waitCtx(t), eventstore.Pos(n)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != n {
		t.Fatalf("handled %v, want positions 1 to %d", got, n)
	}
	for i, p := range got {
		if p != uint64(i+1) {
			t.Fatalf("handled %v, want positions 1 to %d in order", got, n)
		}
	}
	merged := false
	for _, size := range sizes {
		if size > batchSize {
			t.Fatalf("batch sizes %v: one is over %d", sizes, batchSize)
		}
		merged = merged || size > 1
	}
	if !merged {
		t.Fatalf("batch sizes %v: the batches that waited were handled one by one", sizes)
	}
}
