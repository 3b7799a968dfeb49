// PATCH(auraos): this package is not upstream's; see PATCHED.md, "A small
// event emitter for the objects of a connection".

// Package emitter is a types.EventEmitter for the objects every connection
// has (Engine.IO sockets, transports and websocket connections, Socket.IO
// sockets), which register a handful of events each.
//
// Upstream's emitter keeps a concurrent map of events, each event a
// concurrent slice, and allocates an entry per listener: about a kilobyte
// for every object of every connection before any listener runs. This one
// keeps one small slice of events behind a mutex, and each event's
// listeners in a slice that is replaced, never changed, so Emit runs them
// without a lock and without copying them. It behaves as upstream's:
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
	"sync/atomic"

	"github.com/zishang520/socket.io/v3/pkg/log"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

var eventsLog = log.NewLog("engine:events")

type entry struct {
	fn  types.EventListener
	ptr uintptr // the code pointer RemoveListener compares
}

type event struct {
	name      types.EventName
	listeners []entry // replaced, never changed in place
}

// Emitter is a types.EventEmitter; New returns one.
type Emitter struct {
	mu     sync.Mutex
	events []event
}

var _ types.EventEmitter = (*Emitter)(nil)

// New returns an empty emitter.
func New() types.EventEmitter { return &Emitter{} }

func (e *Emitter) find(evt types.EventName) int {
	for i := range e.events {
		if e.events[i].name == evt {
			return i
		}
	}
	return -1
}

func (e *Emitter) add(evt types.EventName, entries []entry) {
	if len(entries) == 0 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	i := e.find(evt)
	if i < 0 {
		e.events = append(e.events, event{name: evt})
		i = len(e.events) - 1
	}
	old := e.events[i].listeners
	next := make([]entry, len(old), len(old)+len(entries))
	copy(next, old)
	e.events[i].listeners = append(next, entries...)
}

// AddListener adds listeners to evt; nil ones are skipped.
func (e *Emitter) AddListener(evt types.EventName, listeners ...types.EventListener) error {
	var entries []entry
	for _, fn := range listeners {
		if fn != nil {
			entries = append(entries, entry{fn: fn, ptr: reflect.ValueOf(fn).Pointer()})
		}
	}
	e.add(evt, entries)
	return nil
}

// On is AddListener.
func (e *Emitter) On(evt types.EventName, listeners ...types.EventListener) error {
	return e.AddListener(evt, listeners...)
}

// once is a listener that removes itself before it runs, and runs once.
type once struct {
	fired atomic.Bool
	evt   types.EventName
	e     *Emitter
	fn    types.EventListener
}

func (o *once) run(args ...any) {
	if !o.fired.CompareAndSwap(false, true) {
		return
	}
	o.e.RemoveListener(o.evt, o.fn)
	o.fn(args...)
}

// Once adds listeners that are removed before their first run.
func (e *Emitter) Once(evt types.EventName, listeners ...types.EventListener) error {
	var entries []entry
	for _, fn := range listeners {
		if fn != nil {
			o := &once{evt: evt, e: e, fn: fn}
			entries = append(entries, entry{fn: o.run, ptr: reflect.ValueOf(fn).Pointer()})
		}
	}
	e.add(evt, entries)
	return nil
}

func (e *Emitter) listeners(evt types.EventName) []entry {
	e.mu.Lock()
	defer e.mu.Unlock()
	if i := e.find(evt); i >= 0 {
		return e.events[i].listeners
	}
	return nil
}

// Emit runs evt's listeners with args, in order; a panicking listener is
// logged and the next one runs.
func (e *Emitter) Emit(evt types.EventName, args ...any) {
	for _, l := range e.listeners(evt) {
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
	e.mu.Lock()
	defer e.mu.Unlock()
	names := make([]types.EventName, len(e.events))
	for i := range e.events {
		names[i] = e.events[i].name
	}
	return names
}

// ListenerCount is the number of evt's listeners.
func (e *Emitter) ListenerCount(evt types.EventName) int {
	return len(e.listeners(evt))
}

// Listeners returns a copy of evt's listeners.
func (e *Emitter) Listeners(evt types.EventName) []types.EventListener {
	l := e.listeners(evt)
	if l == nil {
		return nil
	}
	fns := make([]types.EventListener, len(l))
	for i := range l {
		fns[i] = l[i].fn
	}
	return fns
}

// RemoveAllListeners forgets evt and reports whether it had been added.
func (e *Emitter) RemoveAllListeners(evt types.EventName) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	i := e.find(evt)
	if i < 0 {
		return false
	}
	e.events = slices.Delete(e.events, i, i+1)
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
	i := e.find(evt)
	if i < 0 {
		return false
	}
	old := e.events[i].listeners
	for j := range old {
		if old[j].ptr == ptr {
			next := make([]entry, 0, len(old)-1)
			next = append(next, old[:j]...)
			e.events[i].listeners = append(next, old[j+1:]...)
			return true
		}
	}
	return false
}

// Clear forgets every event.
func (e *Emitter) Clear() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.events = nil
}

// Len is the number of events EventNames lists.
func (e *Emitter) Len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.events)
}
