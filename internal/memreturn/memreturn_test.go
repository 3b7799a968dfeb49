package memreturn

import (
	"context"
	"sync"
	"testing"
	"time"
)

const mib = 1 << 20

var sink []byte

// A burst leaves the heap far above the live data: the memory is returned
// once the process has been quiet for the intervals asked, once per burst,
// and never while it allocates.
func TestWatcherReturnsAfterABurstOnceQuiet(t *testing.T) {
	w := NewWatcher(Config{Interval: time.Second, QuietRate: 8 * mib, QuietIntervals: 2, MinExcess: 32 * mib})
	alloc := uint64(0)
	step := func(rate, heap, live uint64) bool {
		alloc += rate
		return w.Step(Sample{Allocated: alloc, Heap: heap, Live: live})
	}
	if step(0, 50*mib, 10*mib) {
		t.Fatal("returned on the first sample")
	}
	// A burst: 200 MiB/s, the heap grows to 400 MiB around 100 MiB live.
	for i := range 5 {
		if step(200*mib, uint64(100+60*i)*mib, 100*mib) {
			t.Fatalf("returned while allocating, interval %d", i)
		}
	}
	// Quiet (heartbeats): one quiet interval is not enough, the second is.
	if step(1*mib, 400*mib, 100*mib) {
		t.Fatal("returned after one quiet interval")
	}
	if !step(1*mib, 400*mib, 100*mib) {
		t.Fatal("kept 300 MiB above the live heap after two quiet intervals")
	}
	// After the return the heap holds the live data and 20 MiB of
	// fragmentation, which does not trigger another return, nor does
	// slow growth under the minimum.
	w.Returned(Sample{Allocated: alloc, Heap: 120 * mib, Live: 100 * mib})
	for i := range 10 {
		if step(1*mib, uint64(120+i)*mib, 100*mib) {
			t.Fatalf("returned again %d intervals after, with no new excess", i)
		}
	}
	// Slow growth past the minimum returns again.
	if !step(1*mib, 200*mib, 100*mib) {
		t.Fatal("kept 80 MiB of new excess in a quiet process")
	}
	if w.Events != 1 {
		t.Fatalf("%d returns recorded, want 1", w.Events)
	}
}

// A process that keeps allocating never returns, however large its heap.
func TestWatcherNeverReturnsWhileBusy(t *testing.T) {
	w := NewWatcher(Config{Interval: time.Second})
	alloc := uint64(0)
	for i := range 100 {
		alloc += 100 * mib
		if w.Step(Sample{Allocated: alloc, Heap: 1000 * mib, Live: 10 * mib}) {
			t.Fatalf("returned while allocating 100 MiB/s, interval %d", i)
		}
	}
}

// Run samples the real runtime until its context ends; its goroutine ends
// with it.
func TestRunStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	frees := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, Config{Interval: time.Millisecond, MinExcess: 1, QuietRate: 1 << 40, Free: func() {
			mu.Lock()
			frees++
			mu.Unlock()
		}})
	}()
	// With any excess counting and every interval quiet, returns happen.
	for {
		mu.Lock()
		n := frees
		mu.Unlock()
		if n > 0 {
			break
		}
		sink = make([]byte, 4<<20) // some excess over the live heap
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
}
