package esdb

import (
	"context"
	"fmt"
	"sync"
	"time"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/auraos/realtime/eventstore"
)

// Subscribe implements eventstore.Store: a catch-up subscription to $all
// after opts.After, with the server-side filter described in the package
// documentation. ctx bounds only the start; the subscription lives until it
// or the store is closed. Subscribe returns ctx's error when ctx has ended,
// ErrClosed on a closed store and EUNAVAILABLE when the server cannot be
// reached.
func (s *Store) Subscribe(ctx context.Context, opts eventstore.SubscribeOptions) (eventstore.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, eventstore.ErrClosed
	}
	s.pumps.Add(1)
	s.mu.Unlock()
	if opts.BatchSize <= 0 {
		opts.BatchSize = s.opts.SubscriptionBatch
	}

	life, cancel := context.WithCancel(s.life)
	stop := context.AfterFunc(ctx, cancel) // ctx bounds the start
	first, err := s.subscribeRaw(life, opts.After, opts.Filter, catchUpWindow)
	canceledByCtx := !stop()
	if err != nil || canceledByCtx {
		if first != nil {
			first.Close()
		}
		cancel()
		s.pumps.Done()
		if err == nil || ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, s.translate("subscribe", err)
	}
	sub := &subscription{
		store:   s,
		filter:  opts.Filter,
		prompt:  !opts.Filter.IsEmpty(),
		limit:   opts.BatchSize,
		items:   make(chan item, subscriptionBuffer),
		cancel:  cancel,
		done:    make(chan struct{}),
		through: opts.After,
	}
	go func() {
		defer s.pumps.Done()
		sub.pump(life, first, opts.After)
	}()
	return sub, nil
}

// subscriptionBuffer is how many events, checkpoints and signals a
// subscription's pump reads ahead of Next.
const subscriptionBuffer = 256

// subscribeRaw opens a catch-up subscription to $all after after, whose
// server-side filter has the given max search window.
func (s *Store) subscribeRaw(ctx context.Context, after eventstore.Position, f eventstore.Filter, window int) (*esdbclient.Subscription, error) {
	var sub *esdbclient.Subscription
	err := s.do(ctx, func(c *esdbclient.Client) error {
		var err error
		sub, err = c.SubscribeToAll(ctx, s.allOptions(after, f, window))
		return err
	})
	if err != nil {
		return nil, err
	}
	return sub, nil
}

// The max search windows of server-side filters. The server reads the log in
// pages of up to the window and sends a checkpoint every window events it
// considers (the checkpoint multiplier is 1). Catching up, a wide window keeps
// the reads efficient; live, a window of one makes the server send a
// checkpoint for each event the filter leaves out, so Through keeps up with
// the log.
const (
	catchUpWindow = 32
	liveWindow    = 1
)

// item is what the pump hands to Next: an event (nil when the filter dropped
// it, so that only its position counts), a checkpoint position, the caught-up
// signal or a final error.
type item struct {
	event    *eventstore.RecordedEvent
	pos      eventstore.Position
	hasPos   bool
	caughtUp bool
	err      error
}

// subscription is a port subscription. Its pump goroutine reads the server
// subscription ahead of Next into items, and resubscribes after a drop from
// the last position it read; Next groups items into batches.
type subscription struct {
	store     *Store
	filter    eventstore.Filter
	prompt    bool // the filter leaves out events: resubscribe for live checkpoints
	limit     int
	items     chan item // closed by the pump when it exits
	cancel    context.CancelFunc
	done      chan struct{} // closed when the pump has exited
	closeOnce sync.Once

	mu           sync.Mutex // one Next at a time; guards the fields below
	through      eventstore.Position
	caughtUpSent bool
	live         bool
	failed       error
}

// Next implements eventstore.Subscription. While the subscription catches
// up, a batch holds BatchSize events unless it reaches the head first (or ctx
// ends); live, it holds the events that have arrived. When the subscription
// has a filter and has caught up, a checkpoint that moves past events the
// filter left out is delivered as an empty batch. Other checkpoints (while catching up, or past
// system events and other namespaces' events, which are not part of the
// store's log) only move the Through of the next batch, at the latest the
// caught-up one. Next returns ctx's error
// when ctx ends (the subscription stays usable), and an EUNAVAILABLE error when
// the store or the subscription is closed or when resubscribing after a drop
// failed for longer than Options.ResubscribeTimeout; resume then with a new
// Subscribe from the last Through.
func (sub *subscription) Next(ctx context.Context) (eventstore.Batch, error) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.failed != nil {
		return eventstore.Batch{}, sub.failed
	}
	b := eventstore.Batch{Through: sub.through}
	moved := false
	for {
		// Catching up, batches are full (or end at the head); live, a batch
		// holds what has arrived.
		ready := sub.live && (len(b.Events) > 0 || (moved && sub.prompt))
		it, ok, err := sub.take(ctx, !ready)
		if err != nil {
			if len(b.Events) > 0 || ready {
				return b, nil // the error again on the next call
			}
			return eventstore.Batch{}, err
		}
		if !ok { // nothing more at hand: deliver what we have
			b.CaughtUp = sub.live
			return b, nil
		}
		switch {
		case it.err != nil:
			sub.failed = it.err
			if len(b.Events) > 0 {
				return b, nil
			}
			return eventstore.Batch{}, it.err
		case it.caughtUp:
			sub.live = true
			if !sub.caughtUpSent {
				sub.caughtUpSent = true
				b.CaughtUp = true
				return b, nil
			}
		default:
			if sub.through.Less(it.pos) {
				sub.through = it.pos
				b.Through = it.pos
				moved = true
			}
			if it.event != nil {
				b.Events = append(b.Events, *it.event)
				if len(b.Events) >= sub.limit {
					b.CaughtUp = sub.live && len(sub.items) == 0
					return b, nil
				}
			}
		}
	}
}

// take returns the next item; when block is false it returns ok=false at once
// if none is at hand.
func (sub *subscription) take(ctx context.Context, block bool) (item, bool, error) {
	if !block {
		select {
		case it, open := <-sub.items:
			if !open {
				return item{}, false, sub.endedErr()
			}
			return it, true, nil
		default:
			return item{}, false, nil
		}
	}
	select {
	case it, open := <-sub.items:
		if !open {
			return item{}, false, sub.endedErr()
		}
		return it, true, nil
	case <-ctx.Done():
		return item{}, false, ctx.Err()
	}
}

// endedErr is the error of a subscription whose pump has exited.
func (sub *subscription) endedErr() error {
	if sub.store.isClosed() {
		return eventstore.ErrClosed
	}
	return fmt.Errorf("subscription closed: %w", eventstore.ErrClosed)
}

// Close implements eventstore.Subscription: it ends the server subscription
// and waits for the pump to stop. It is safe to call more than once.
func (sub *subscription) Close() error {
	sub.closeOnce.Do(sub.cancel)
	<-sub.done
	return nil
}

// pump reads the server subscription into items until ctx ends. When a
// filtered subscription catches up, it resubscribes with the live window;
// after a drop it resubscribes (with the catch-up window) from the last
// position it read.
func (sub *subscription) pump(ctx context.Context, es *esdbclient.Subscription, after eventstore.Position) {
	defer close(sub.done)
	defer close(sub.items)
	seen := !after.IsZero()
	live := false // es has the live window
	for {
		switched, cause := sub.drain(ctx, es, &after, &seen, sub.prompt && !live)
		if ctx.Err() != nil {
			return
		}
		window := catchUpWindow
		if live = switched; live {
			window = liveWindow
		} else {
			sub.store.opts.Logger.Warn("esdb: subscription dropped; resubscribing", "after", after.String(), "err", cause)
		}
		var err error
		es, err = sub.resubscribe(ctx, after, window)
		if err != nil {
			if ctx.Err() == nil {
				sub.send(ctx, item{err: eventstore.Unavailable("resubscribe after a dropped subscription", err)})
			}
			return
		}
	}
}

// drain hands the server subscription's messages to items until it drops
// (it returns the cause) or, when switchLive is set, until it has caught up
// (it returns true). after is the last position handed over.
func (sub *subscription) drain(ctx context.Context, es *esdbclient.Subscription, after *eventstore.Position, seen *bool, switchLive bool) (bool, error) {
	defer es.Close()
	for {
		ev := es.Recv()
		switch {
		case ev.SubscriptionDropped != nil:
			return false, ev.SubscriptionDropped.Error
		case ev.EventAppeared != nil:
			e := ev.EventAppeared.OriginalEvent()
			pos := toPosition(e.Position)
			if *seen && !after.Less(pos) {
				continue // already handed over
			}
			it := item{pos: pos, hasPos: true}
			if r, ok := sub.store.keep(e, sub.filter); ok {
				it.event = &r
			}
			if !sub.send(ctx, it) {
				return false, ctx.Err()
			}
			*after, *seen = pos, true
		case ev.CheckPointReached != nil:
			pos := toPosition(*ev.CheckPointReached)
			if *seen && !after.Less(pos) {
				continue
			}
			if !sub.send(ctx, item{pos: pos, hasPos: true}) {
				return false, ctx.Err()
			}
			*after, *seen = pos, true
		case ev.CaughtUp != nil:
			if !sub.send(ctx, item{caughtUp: true}) {
				return false, ctx.Err()
			}
			if switchLive {
				return true, nil
			}
		}
	}
}

// send hands it to Next, or gives up when ctx ends.
func (sub *subscription) send(ctx context.Context, it item) bool {
	select {
	case sub.items <- it:
		return true
	case <-ctx.Done():
		return false
	}
}

// resubscribe opens a new server subscription after after, retrying with
// backoff for up to Options.ResubscribeTimeout.
func (sub *subscription) resubscribe(ctx context.Context, after eventstore.Position, window int) (*esdbclient.Subscription, error) {
	deadline := time.Now().Add(sub.store.opts.ResubscribeTimeout)
	delay := 50 * time.Millisecond
	for {
		es, err := sub.store.subscribeRaw(ctx, after, sub.filter, window)
		if err == nil {
			return es, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		wait := min(delay, time.Until(deadline))
		if wait <= 0 {
			return nil, err
		}
		sub.store.opts.Logger.Warn("esdb: resubscribe failed; retrying", "in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
		delay = min(2*delay, 2*time.Second)
	}
}
