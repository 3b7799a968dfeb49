package eventstore_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auraos/realtime/eventstore"
)

// Whoever waits for an append sees what its OnDone callbacks recorded.
func TestPendingWaitReturnsAfterTheCallbacks(t *testing.T) {
	t.Parallel()
	for range 50 {
		p := eventstore.NewPending()
		var recorded atomic.Bool
		p.OnDone(func(eventstore.AppendResult, error) {
			time.Sleep(100 * time.Microsecond) // a callback that takes a moment
			recorded.Store(true)
		})
		go p.Resolve(eventstore.AppendResult{}, nil)
		if _, err := p.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !recorded.Load() {
			t.Fatal("Wait returned before the OnDone callback ran")
		}
	}
}
