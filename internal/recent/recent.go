// Package recent remembers what was made of the log's recent events (a
// decryption, a decoding), by position, so that the several followers of
// a process that read the same events within a batch or two of each other
// do that work once. A reading is handed out only for the very event it
// was made from (same id, same bytes), the cache is bounded in entries and
// in bytes, and Forget drops everything and keeps readings begun before it
// out.
package recent

import (
	"sync"

	"github.com/auraos/realtime/eventstore"
)

// Cache is the recent readings of events, of type V. Its zero value is not
// usable: make one with New. It is safe for concurrent use.
type Cache[V any] struct {
	maxEntries, maxBytes int

	mu      sync.Mutex
	gen     uint64 // bumped by every Forget
	entries map[eventstore.Position]entry[V]
	order   []eventstore.Position // insertion order, for eviction, from head
	head    int
	bytes   int // of the entries' events and their extra bytes
}

// entry is one reading and the event it was made from.
type entry[V any] struct {
	id    string
	raw   []byte
	v     V
	bytes int
}

// New returns a cache of at most maxEntries readings and maxBytes bytes.
func New[V any](maxEntries, maxBytes int) *Cache[V] {
	return &Cache[V]{maxEntries: maxEntries, maxBytes: maxBytes}
}

// Lookup returns the reading of e, if remembered, and the generation to
// pass to Remember when it is not.
func (c *Cache[V]) Lookup(e eventstore.RecordedEvent) (v V, ok bool, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, found := c.entries[e.Position]; found && r.id == e.ID && string(r.raw) == string(e.Data) {
		return r.v, true, c.gen
	}
	return v, false, c.gen
}

// Generation returns the generation to pass to Remember for a reading made
// now, without a Lookup: one remembered with it is dropped if a Forget
// comes first.
func (c *Cache[V]) Generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// Remember records v as the reading of e, which counts as e's bytes and
// extra more, unless a Forget happened since gen was looked up. The oldest
// readings go when the cache is over its bounds.
func (c *Cache[V]) Remember(e eventstore.RecordedEvent, v V, extra int, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if c.entries == nil {
		c.entries = make(map[eventstore.Position]entry[V], c.maxEntries)
	}
	if old, found := c.entries[e.Position]; found {
		c.bytes -= old.bytes
	} else {
		c.order = append(c.order, e.Position)
	}
	r := entry[V]{id: e.ID, raw: e.Data, v: v, bytes: len(e.Data) + extra}
	c.entries[e.Position] = r
	c.bytes += r.bytes
	for (len(c.entries) > c.maxEntries || c.bytes > c.maxBytes) && c.head < len(c.order) {
		if old, found := c.entries[c.order[c.head]]; found {
			c.bytes -= old.bytes
			delete(c.entries, c.order[c.head])
		}
		c.head++
	}
	if c.head > len(c.order)/2 {
		c.order = append(c.order[:0], c.order[c.head:]...)
		c.head = 0
	}
}

// Forget drops every reading and makes those begun before it
// unrememberable.
func (c *Cache[V]) Forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.entries, c.order, c.head, c.bytes = nil, nil, 0, 0
}

// Len returns how many readings are remembered, and their bytes.
func (c *Cache[V]) Len() (entries, bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries), c.bytes
}
