// Package gcgoal bounds how far the Go heap may grow past its live data.
//
// The server runs its collector with a high target (serve --gc-percent,
// 400 by default): the heap may grow to five times the live data before a
// collection, which costs memory in proportion to what is live. Under a
// fan-out the live heap is small and the headroom buys fewer collections
// per delivered message. Thousands of idle websockets make the live heap
// large instead, and five times it is memory no throughput needs: worse,
// the connections' long-lived objects end up spread thinly over the spans
// the handshakes' garbage filled, and a span with one live object in it is
// memory the process keeps. Run lowers the target as the live heap grows,
// so that the heap's growth past it stays near a fixed headroom, never
// below a floor that keeps collections cheap.
package gcgoal

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Policy says what target the collector gets for a live heap.
type Policy struct {
	// MaxPercent is the target while the live heap is small (the GOGC
	// value, as serve --gc-percent).
	MaxPercent int
	// MinPercent is the lowest target Run sets, however large the live
	// heap grows (default 50).
	MinPercent int
	// Headroom is how many bytes past the live heap the heap may grow
	// before a collection, while MaxPercent and MinPercent allow it.
	Headroom uint64
}

// Percent returns the target for a live heap of live bytes: the percent
// of live that Headroom is, kept between MinPercent and MaxPercent.
func (p Policy) Percent(live uint64) int {
	floor := p.MinPercent
	if floor <= 0 {
		floor = 50
	}
	if p.MaxPercent < floor {
		floor = p.MaxPercent
	}
	if live == 0 {
		return p.MaxPercent
	}
	pct := p.Headroom * 100 / live
	if pct >= uint64(p.MaxPercent) {
		return p.MaxPercent
	}
	return max(int(pct), floor)
}

// worthSetting reports whether moving the target from cur to next is worth
// a call into the runtime: a change of a tenth or more, or to a bound.
func worthSetting(cur, next int, p Policy) bool {
	if next == cur {
		return false
	}
	if next == p.MaxPercent {
		return true
	}
	d := next - cur
	if d < 0 {
		d = -d
	}
	return d*10 >= cur
}

// Run sets the collector's target from the live heap every interval until
// ctx ends. It starts at p.MaxPercent.
func Run(ctx context.Context, p Policy, interval time.Duration) {
	if p.MaxPercent <= 0 || p.Headroom == 0 {
		return
	}
	cur := p.MaxPercent
	debug.SetGCPercent(cur)
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			continue
		}
		if next := p.Percent(sample[0].Value.Uint64()); worthSetting(cur, next, p) {
			debug.SetGCPercent(next)
			cur = next
		}
	}
}
