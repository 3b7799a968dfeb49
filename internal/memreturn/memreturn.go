// Package memreturn gives the operating system back the memory a burst of
// allocation left behind, once the process has gone quiet.
//
// The server runs its collector with a high target (serve --gc-percent,
// 400 by default: fewer collections per delivered message). A burst, ten
// thousand websockets connecting say, then leaves the heap several times
// the size of what stays live, and the runtime keeps that memory: it
// collects only when the heap grows again and returns only what lies above
// its next goal. A quiet server would hold it for good. Run watches the
// allocation rate and, when it has been low for a while and the heap holds
// much more than the live data, collects once and returns the free memory
// (runtime/debug.FreeOSMemory). A busy process never pays for it; a quiet
// one pays one collection per burst.
package memreturn

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Config tunes Run; the zero value takes the defaults.
type Config struct {
	// Interval between two looks at the allocation rate (default 500 ms).
	Interval time.Duration
	// QuietRate is the allocation rate, in bytes per second, under which
	// an interval counts as quiet (default 8 MiB/s: a fan-out allocates
	// well over a hundred).
	QuietRate uint64
	// QuietIntervals is how many quiet intervals in a row make the process
	// quiet (default 2).
	QuietIntervals int
	// MinExcess is how much more than the live heap the heap must hold,
	// past what was left after the last return, for a return to be worth a
	// collection (default 32 MiB).
	MinExcess uint64
	// Free collects and returns free memory (default debug.FreeOSMemory).
	Free func()
}

func (c *Config) setDefaults() {
	if c.Interval <= 0 {
		c.Interval = 500 * time.Millisecond
	}
	if c.QuietRate == 0 {
		c.QuietRate = 8 << 20
	}
	if c.QuietIntervals <= 0 {
		c.QuietIntervals = 2
	}
	if c.MinExcess == 0 {
		c.MinExcess = 32 << 20
	}
	if c.Free == nil {
		c.Free = debug.FreeOSMemory
	}
}

// Sample is what one look at the runtime sees.
type Sample struct {
	Allocated uint64 // bytes allocated since the process started
	Heap      uint64 // heap memory held and not returned: objects, unused and free
	Live      uint64 // the live heap as of the last collection
}

// Watcher decides, one sample at a time, when to return memory.
type Watcher struct {
	cfg    Config
	last   Sample
	seen   bool
	quiet  int
	floor  uint64 // the heap's excess over the live heap after the last return
	Events int    // returns so far
}

// NewWatcher returns a watcher with cfg's defaults filled in.
func NewWatcher(cfg Config) *Watcher {
	cfg.setDefaults()
	return &Watcher{cfg: cfg}
}

func excess(s Sample) uint64 {
	if s.Heap < s.Live {
		return 0
	}
	return s.Heap - s.Live
}

// Step takes the sample of one interval's end and reports whether to return
// memory now. After a return, call Returned with a fresh sample.
func (w *Watcher) Step(s Sample) bool {
	defer func() { w.last, w.seen = s, true }()
	if !w.seen {
		return false
	}
	rate := float64(s.Allocated-w.last.Allocated) / w.cfg.Interval.Seconds()
	if rate >= float64(w.cfg.QuietRate) {
		w.quiet = 0
		return false
	}
	w.quiet++
	return w.quiet >= w.cfg.QuietIntervals && excess(s) > w.floor+w.cfg.MinExcess
}

// Returned records the heap right after a return: what is left above the
// live heap then (fragmentation: spans with a live object in them) does not
// count towards the next return.
func (w *Watcher) Returned(s Sample) {
	w.floor = excess(s)
	w.quiet = 0
	w.last = s
	w.Events++
}

var names = []string{
	"/gc/heap/allocs:bytes",
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/heap/free:bytes",
	"/gc/heap/live:bytes",
}

// Read samples the runtime.
func Read() Sample {
	ms := make([]metrics.Sample, len(names))
	for i, n := range names {
		ms[i].Name = n
	}
	metrics.Read(ms)
	v := func(i int) uint64 {
		if ms[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return ms[i].Value.Uint64()
	}
	return Sample{Allocated: v(0), Heap: v(1) + v(2) + v(3), Live: v(4)}
}

// Run watches the process until ctx ends.
func Run(ctx context.Context, cfg Config) {
	w := NewWatcher(cfg)
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if w.Step(Read()) {
			w.cfg.Free()
			w.Returned(Read())
		}
	}
}
