package shred

import (
	"encoding/json"
	"sync"

	"github.com/auraos/realtime/eventstore"
)

// recentSize and recentBytes bound what the Store remembers of the events
// read last: every follower of the log (the live feed, each projection
// runner, the AI assistant) reads the same recent events within a batch or
// two of each other, so a couple of their 500-event batches, and at most
// 1 MiB of bytes (a slow consumer's heap test counts them), are enough.
const (
	recentSize  = 1024
	recentBytes = 1 << 20
)

// recentReads remembers what decrypt made of the events read last, by
// position, so that an event read by several subscribers is decrypted once.
// It is emptied whenever a user is forgotten (forgets are rare), and an
// entry decrypted before a forget is never added after it (gen), so it
// never holds what a forgotten user's key opened once the Store knows of
// the forget.
type recentReads struct {
	mu      sync.Mutex
	gen     uint64 // bumped by every forget this Store observes
	entries map[eventstore.Position]recentRead
	order   []eventstore.Position // insertion order, for eviction, from head
	head    int
	bytes   int // of the entries' raw and data
}

// recentRead is one remembered event: its id and raw bytes (an entry
// stands only for the very event it was made from), and its data as read
// (nil: the raw bytes read as they are).
type recentRead struct {
	id   string
	raw  []byte
	data json.RawMessage
}

// lookup returns the remembered reading of e, and the generation to pass to
// remember when there is none.
func (r *recentReads) lookup(e eventstore.RecordedEvent) (data json.RawMessage, ok bool, gen uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, found := r.entries[e.Position]; found && c.id == e.ID && string(c.raw) == string(e.Data) {
		return c.data, true, r.gen
	}
	return nil, false, r.gen
}

// remember records data as the reading of e, unless a forget happened since
// gen was looked up.
func (r *recentReads) remember(e eventstore.RecordedEvent, data json.RawMessage, gen uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if gen != r.gen {
		return
	}
	if r.entries == nil {
		r.entries = make(map[eventstore.Position]recentRead, recentSize)
	}
	if old, found := r.entries[e.Position]; found {
		r.bytes -= len(old.raw) + len(old.data)
	} else {
		r.order = append(r.order, e.Position)
	}
	r.entries[e.Position] = recentRead{id: e.ID, raw: e.Data, data: data}
	r.bytes += len(e.Data) + len(data)
	for (len(r.entries) > recentSize || r.bytes > recentBytes) && r.head < len(r.order) {
		if old, found := r.entries[r.order[r.head]]; found {
			r.bytes -= len(old.raw) + len(old.data)
			delete(r.entries, r.order[r.head])
		}
		r.head++
	}
	if r.head > len(r.order)/2 {
		r.order = append(r.order[:0], r.order[r.head:]...)
		r.head = 0
	}
}

// forget drops every entry and makes readings begun before it unrememberable.
func (r *recentReads) forget() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gen++
	r.entries, r.order, r.head, r.bytes = nil, nil, 0, 0
}
