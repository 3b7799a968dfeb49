package shred

import (
	"encoding/json"
	"sync"

	"github.com/auraos/realtime/eventstore"
)

// recentSize is how many recently read events the Store remembers the
// decrypted form of. Every follower of the log (the live feed, each
// projection runner, the AI assistant) reads the same recent events within
// a batch or two of each other; 4,096 covers a few of their 500-event
// batches.
const recentSize = 4096

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
	ring    []eventstore.Position // insertion order, for eviction
	next    int
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
		r.ring = make([]eventstore.Position, recentSize)
	}
	if _, found := r.entries[e.Position]; !found {
		if len(r.entries) >= recentSize {
			delete(r.entries, r.ring[r.next])
		}
		r.ring[r.next] = e.Position
		r.next = (r.next + 1) % recentSize
	}
	r.entries[e.Position] = recentRead{id: e.ID, raw: e.Data, data: data}
}

// forget drops every entry and makes readings begun before it unrememberable.
func (r *recentReads) forget() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gen++
	r.entries, r.ring, r.next = nil, nil, 0
}
