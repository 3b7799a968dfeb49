package projections

import (
	"context"
	"fmt"
	"sync"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
)

// Envelope is a stored event with its decoded domain event.
type Envelope struct {
	eventstore.RecordedEvent
	Event domain.Event
}

// decodedBatch is a subscription batch with its events decoded.
type decodedBatch struct {
	events   []Envelope
	through  eventstore.Position
	caughtUp bool
}

// feed reads and decodes the next batches of a subscription on its own
// goroutine while the caller applies the previous one, so reading the log
// and writing the read model use both cores.
type feed struct {
	batches chan feedItem
	cancel  context.CancelFunc
	done    sync.WaitGroup
}

type feedItem struct {
	batch decodedBatch
	err   error
}

// feedDepth is how many decoded batches may wait ahead of the consumer.
const feedDepth = 2

// startFeed starts reading sub. The feed owns its goroutine until close; it
// stops at the first error, which next returns.
func startFeed(ctx context.Context, sub eventstore.Subscription) *feed {
	ctx, cancel := context.WithCancel(ctx)
	f := &feed{batches: make(chan feedItem, feedDepth), cancel: cancel}
	f.done.Add(1)
	go func() {
		defer f.done.Done()
		defer close(f.batches)
		for {
			b, err := sub.Next(ctx)
			var item feedItem
			if err == nil {
				item.batch, err = decode(b)
			}
			item.err = err
			select {
			case f.batches <- item:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return f
}

func decode(b eventstore.Batch) (decodedBatch, error) {
	out := decodedBatch{events: make([]Envelope, len(b.Events)), through: b.Through, caughtUp: b.CaughtUp}
	for i, rec := range b.Events {
		ev, err := domain.Decode(rec.Type, rec.Data)
		if err != nil {
			return out, fmt.Errorf("event %s at %v: %w", rec.ID, rec.Position, err)
		}
		out.events[i] = Envelope{RecordedEvent: rec, Event: ev}
	}
	return out, nil
}

// next returns the next decoded batch. wait bounds only this call: when it
// ends first, next returns its error and the batch stays queued.
func (f *feed) next(wait context.Context) (decodedBatch, error) {
	select {
	case item, ok := <-f.batches:
		if !ok {
			return decodedBatch{}, context.Canceled
		}
		return item.batch, item.err
	case <-wait.Done():
		return decodedBatch{}, wait.Err()
	}
}

// close stops the feed's goroutine and waits for it.
func (f *feed) close() {
	f.cancel()
	f.done.Wait()
}
