// PATCH(auraos): this package is not upstream's; see PATCHED.md, "A small
// event emitter for the objects of a connection".

// Package emitter is a types.EventEmitter for the objects every connection
// has (Engine.IO sockets, transports and websocket connections, Socket.IO
// sockets), which register a handful of events each.
//
// Upstream's emitter keeps a concurrent map of events, each event a
// concurrent slice, and allocates an entry per listener: about a kilobyte
// for every object of every connection before any listener runs. This one
// keeps every listener of every event in one slice behind a mutex: a few
// hundred bytes for the handful of listeners such an object has, in one
// allocation. The slice is appended to in place and copied only to remove
// from it, so Emit runs the listeners it saw without a lock and without
// copying them: an emit never sees the listeners added after it started,
// and still runs those removed while it runs. It behaves as upstream's:
// listeners run in the order they were added, each behind a recover; a
// listener is removed by its function's code pointer (the first one with
// that pointer); Once removes its listener before running it; an event
// whose listeners were all removed is still named by EventNames.
package emitter

import (
	"reflect"
	"runtime/debug"
	"slices"
	"sync"

	"github.com/zishang520/socket.io/v3/pkg/log"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

var eventsLog = log.NewLog("engine:events")

// entry is one listener of one event; an entry without fn only keeps its
// event's name once every listener of it is removed (EventNames lists it).
type entry struct {
	name types.EventName
	fn   types.EventListener
	ptr  uintptr // the code pointer RemoveListener compares
	once uint64  // not 0: a Once listener, this number names it
}

// Emitter is a types.EventEmitter; New returns one.
type Emitter struct {
	mu      sync.Mutex
	entries []entry // appended to in place; copied to remove from it
	onces   uint64  // the last number given to a Once listener
}

var _ types.EventEmitter = (*Emitter)(nil)

// New returns an empty emitter.
func New() types.EventEmitter { return &Emitter{} }

// snapshot returns the entries as they are now; later appends are beyond
// its length and removals make a new slice, so it never changes.
func (e *Emitter) snapshot() []entry {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.entries
}

// removeAt replaces the entries by a copy without entry i; when i was its
// event's last listener, a name-only entry takes its place. Call with mu
// held.
func (e *Emitter) removeAt(i int) {
	old := e.entries
	name := old[i].name
	last := true
	for j := range old {
		if j != i && old[j].name == name {
			last = false
			break
		}
	}
	next := make([]entry, 0, len(old))
	next = append(next, old[:i]...)
	if last {
		next = append(next, entry{name: name})
	}
	e.entries = append(next, old[i+1:]...)
}

func (e *Emitter) add(evt types.EventName, listeners []types.EventListener, once bool) {
	if !slices.ContainsFunc(listeners, func(fn types.EventListener) bool { return fn != nil }) {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if i := slices.IndexFunc(e.entries, func(l entry) bool { return l.name == evt && l.fn == nil }); i >= 0 {
		// The name-only entry goes; a copy, since an emit may be reading
		// the slice.
		e.entries = slices.Delete(slices.Clone(e.entries), i, i+1)
	}
	for _, fn := range listeners {
		if fn == nil {
			continue
		}
		n := entry{name: evt, fn: fn, ptr: reflect.ValueOf(fn).Pointer()}
		if once {
			e.onces++
			n.once = e.onces
		}
		e.entries = append(e.entries, n)
	}
}

// AddListener adds listeners to evt; nil ones are skipped.
func (e *Emitter) AddListener(evt types.EventName, listeners ...types.EventListener) error {
	e.add(evt, listeners, false)
	return nil
}

// On is AddListener.
func (e *Emitter) On(evt types.EventName, listeners ...types.EventListener) error {
	return e.AddListener(evt, listeners...)
}

// Once adds listeners that are removed before their first run.
func (e *Emitter) Once(evt types.EventName, listeners ...types.EventListener) error {
	e.add(evt, listeners, true)
	return nil
}

// takeOnce removes the Once listener numbered once and reports whether it
// was still there: whoever removes it runs it.
func (e *Emitter) takeOnce(once uint64) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range e.entries {
		if e.entries[i].once == once {
			e.removeAt(i)
			return true
		}
	}
	return false
}

// Emit runs evt's listeners with args, in order; a panicking listener is
// logged and the next one runs.
func (e *Emitter) Emit(evt types.EventName, args ...any) {
	for _, l := range e.snapshot() {
		if l.name != evt || l.fn == nil {
			continue
		}
		if l.once != 0 && !e.takeOnce(l.once) {
			continue
		}
		call(l.fn, args)
	}
}

func call(fn types.EventListener, args []any) {
	defer func() {
		if r := recover(); r != nil {
			eventsLog.Errorf("event listener panic recovered: %v\n%s", r, debug.Stack())
		}
	}()
	fn(args...)
}

// EventNames lists the events that have had listeners.
func (e *Emitter) EventNames() []types.EventName {
	var names []types.EventName
	for _, l := range e.snapshot() {
		if !slices.Contains(names, l.name) {
			names = append(names, l.name)
		}
	}
	return names
}

// ListenerCount is the number of evt's listeners.
func (e *Emitter) ListenerCount(evt types.EventName) int {
	n := 0
	for _, l := range e.snapshot() {
		if l.name == evt && l.fn != nil {
			n++
		}
	}
	return n
}

// Listeners returns a copy of evt's listeners.
func (e *Emitter) Listeners(evt types.EventName) []types.EventListener {
	var fns []types.EventListener
	found := false
	for _, l := range e.snapshot() {
		if l.name == evt {
			found = true
			if l.fn != nil {
				fns = append(fns, l.fn)
			}
		}
	}
	if found && fns == nil {
		fns = []types.EventListener{}
	}
	return fns
}

// RemoveAllListeners forgets evt and reports whether it had been added.
func (e *Emitter) RemoveAllListeners(evt types.EventName) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !slices.ContainsFunc(e.entries, func(l entry) bool { return l.name == evt }) {
		return false
	}
	e.entries = slices.DeleteFunc(slices.Clone(e.entries), func(l entry) bool { return l.name == evt })
	return true
}

// RemoveListener removes the first of evt's listeners whose function has
// the code pointer of listener's, and reports whether it found one.
func (e *Emitter) RemoveListener(evt types.EventName, listener types.EventListener) bool {
	if listener == nil {
		return false
	}
	ptr := reflect.ValueOf(listener).Pointer()
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range e.entries {
		if l := e.entries[i]; l.name == evt && l.fn != nil && l.ptr == ptr {
			e.removeAt(i)
			return true
		}
	}
	return false
}

// Clear forgets every event.
func (e *Emitter) Clear() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.entries = nil
}

// Len is the number of events EventNames lists.
func (e *Emitter) Len() int {
	return len(e.EventNames())
}
