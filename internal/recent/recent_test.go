package recent

import (
	"bytes"
	"testing"

	"github.com/auraos/realtime/eventstore"
)

// What is remembered stays bounded in entries and in bytes, and the
// eviction order keeps up with the entries.
func TestCacheIsBounded(t *testing.T) {
	const maxEntries, maxBytes = 1024, 1 << 20
	c := New[[]byte](maxEntries, maxBytes)
	for i := range 3 * maxEntries {
		raw := bytes.Repeat([]byte("x"), 100+i%3*2000)
		e := eventstore.RecordedEvent{ID: "e", Position: eventstore.Pos(uint64(i + 1)), Data: raw}
		_, _, gen := c.Lookup(e)
		c.Remember(e, raw, len(raw), gen)
		if _, ok, _ := c.Lookup(e); !ok {
			t.Fatalf("the reading just remembered of event %d is not found", i)
		}
	}
	if n := len(c.entries); n > maxEntries || c.bytes > maxBytes || len(c.order)-c.head != n {
		t.Errorf("%d entries of %d bytes remembered (order %d from %d); want at most %d and %d", n, c.bytes, len(c.order), c.head, maxEntries, maxBytes)
	}
}

// A reading is handed out only for the very event it was made from, and
// none begun before a Forget is remembered after it.
func TestCacheMatchesBytesAndForgets(t *testing.T) {
	c := New[string](16, 1<<10)
	e := eventstore.RecordedEvent{ID: "e1", Position: eventstore.Pos(7), Data: []byte(`{"a":1}`)}
	_, _, gen := c.Lookup(e)
	c.Remember(e, "reading", 0, gen)
	if v, ok, _ := c.Lookup(e); !ok || v != "reading" {
		t.Fatalf("lookup: %q, %v", v, ok)
	}
	other := e
	other.Data = []byte(`{"a":2}`)
	if _, ok, _ := c.Lookup(other); ok {
		t.Error("a reading was handed out for other bytes at its position")
	}
	_, _, gen = c.Lookup(e)
	c.Forget()
	if n, _ := c.Len(); n != 0 {
		t.Errorf("%d readings after Forget", n)
	}
	c.Remember(e, "stale", 0, gen)
	if _, ok, _ := c.Lookup(e); ok {
		t.Error("a reading begun before Forget was remembered after it")
	}
}
