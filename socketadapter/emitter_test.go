package socketadapter_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/zishang520/socket.io/servers/engine/v3/emitter"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// The connection objects' emitter (PATCH(auraos), the emitter package of
// socketadapter/patched/engineio-server) behaves as upstream's
// types.NewEventEmitter: the same script of registrations, emits and
// removals gives the same calls and answers on both.
func TestEmitterBehavesAsUpstreams(t *testing.T) {
	script := func(e types.EventEmitter) []string {
		var log []string
		note := func(format string, args ...any) { log = append(log, fmt.Sprintf(format, args...)) }
		listener := func(name string) types.EventListener {
			return func(args ...any) { note("%s%v", name, args) }
		}
		a, b, c := listener("a"), listener("b"), listener("c")
		_ = e.On("x", a, nil, b)
		_ = e.Once("x", c)
		e.Emit("x", 1)
		e.Emit("x", 2) // the once listener is gone
		note("count %d", e.ListenerCount("x"))

		// A listener added during an emit runs from the next emit on; one
		// removed during an emit still runs in it.
		var late types.EventListener = func(...any) { note("late") }
		_ = e.On("y", func(...any) { note("adds"); _ = e.On("y", late) })
		_ = e.On("y", func(...any) { note("removes b"); e.RemoveListener("x", b) })
		e.Emit("y")
		e.Emit("y")
		note("remove b again %v", e.RemoveListener("x", b))
		e.Emit("x", 3)

		// A panicking listener does not stop the next one.
		_ = e.On("p", func(...any) { panic("boom") }, listener("after panic"))
		e.Emit("p")

		// Removing by function: the first listener with that code
		// pointer, a once listener before it ran too.
		_ = e.Once("o", c)
		note("remove once %v", e.RemoveListener("o", c))
		e.Emit("o", 4)
		note("remove unknown %v %v", e.RemoveListener("o", c), e.RemoveListener("none", c))
		note("remove nil %v", e.RemoveListener("x", nil))

		// A once listener that emits its own event runs once.
		_ = e.Once("r", func(...any) { note("reentrant"); e.Emit("r") })
		e.Emit("r")

		note("listeners %d %d", len(e.Listeners("x")), len(e.Listeners("none")))
		names := e.EventNames()
		slices.Sort(names)
		note("names %v len %d", names, e.Len())
		note("remove all %v %v", e.RemoveAllListeners("y"), e.RemoveAllListeners("y"))
		e.Emit("y")
		e.Clear()
		note("cleared %d %d", e.Len(), e.ListenerCount("x"))
		e.Emit("x", 5)
		_ = e.On("x")        // no listeners: no event
		_ = e.Once("z", nil) // nor here
		note("after empty adds %d", e.Len())
		return log
	}
	upstream, ours := script(types.NewEventEmitter()), script(emitter.New())
	if !slices.Equal(upstream, ours) {
		t.Fatalf("upstream's emitter:\n  %s\nours:\n  %s", strings.Join(upstream, "\n  "), strings.Join(ours, "\n  "))
	}
}

// Emits from many goroutines while listeners are added and removed: a
// Once listener runs exactly once, an On listener added before the emits
// runs on every one, and the race detector sees no unguarded access.
func TestEmitterUnderConcurrentEmits(t *testing.T) {
	t.Parallel()
	e := emitter.New()
	var onces, always atomic.Int64
	_ = e.Once("x", func(...any) { onces.Add(1) })
	_ = e.On("x", func(...any) { always.Add(1) })
	const goroutines, emits = 8, 200
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			extra := func(...any) {}
			for i := range emits {
				e.Emit("x", g, i)
				if i%10 == 0 {
					_ = e.On("y", extra)
					e.RemoveListener("y", extra)
				}
			}
		})
	}
	wg.Wait()
	if n := onces.Load(); n != 1 {
		t.Errorf("the Once listener ran %d times, want 1", n)
	}
	if n := always.Load(); n != goroutines*emits {
		t.Errorf("the On listener ran %d times, want %d", n, goroutines*emits)
	}
	if n := e.ListenerCount("x"); n != 1 {
		t.Errorf("x has %d listeners after the emits, want 1", n)
	}
}
