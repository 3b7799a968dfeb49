package gcgoal

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	t.Parallel()
	const mib = 1 << 20
	p := Policy{MaxPercent: 400, Headroom: 128 * mib}
	tests := []struct {
		name string
		p    Policy
		live uint64
		want int
	}{
		{"nothing live yet", p, 0, 400},
		{"small live heap keeps the maximum", p, 20 * mib, 400},
		{"exactly at the maximum", p, 32 * mib, 400},
		{"headroom caps the growth", p, 64 * mib, 200},
		{"between the bounds", p, 100 * mib, 128},
		{"the floor holds for a large heap", p, 1024 * mib, 50},
		{"a floor of its own", Policy{MaxPercent: 400, MinPercent: 25, Headroom: 128 * mib}, 1024 * mib, 25},
		{"a maximum below the floor wins", Policy{MaxPercent: 30, Headroom: 128 * mib}, 1024 * mib, 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.p.Percent(tt.live); got != tt.want {
				t.Errorf("Percent(%d MiB) = %d, want %d", tt.live/mib, got, tt.want)
			}
		})
	}
}

func TestWorthSetting(t *testing.T) {
	t.Parallel()
	p := Policy{MaxPercent: 400, Headroom: 1}
	tests := []struct {
		cur, next int
		want      bool
	}{
		{400, 400, false},
		{400, 380, false}, // a twentieth
		{400, 360, true},  // a tenth
		{100, 95, false},
		{100, 110, true},
		{380, 400, true}, // back to the maximum, however close
	}
	for _, tt := range tests {
		if got := worthSetting(tt.cur, tt.next, p); got != tt.want {
			t.Errorf("worthSetting(%d, %d) = %v, want %v", tt.cur, tt.next, got, tt.want)
		}
	}
}

// TestRunLowersTheTargetForALargeLiveHeap runs the loop against the real
// runtime: with a live heap far past the headroom the target falls to the
// floor, and once the heap is dead again it goes back to the maximum.
// (Not parallel: the collector's target is the process's.)
func TestRunLowersTheTargetForALargeLiveHeap(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)

	live := make([][]byte, 64)
	for i := range live {
		live[i] = make([]byte, 1<<20)
	}
	runtime.GC()

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { Run(ctx, Policy{MaxPercent: 400, Headroom: 1 << 20}, 5*time.Millisecond) })
	defer func() { cancel(); wg.Wait() }()

	waitFor(t, 50)
	runtime.KeepAlive(live)
	live = nil
	runtime.GC()
	waitFor(t, 400)
}

// waitFor polls the collector's target until it is want.
func waitFor(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
		metrics.Read(s)
		cur := int(s[0].Value.Uint64())
		if cur == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the GC target is %d, want %d", cur, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
