package shred

import (
	"bytes"
	"testing"

	"github.com/auraos/realtime/eventstore"
)

// What a Store remembers of its recent reads stays bounded in entries and
// in bytes.
func TestRecentReadsAreBounded(t *testing.T) {
	var r recentReads
	for i := range 3 * recentSize {
		raw := bytes.Repeat([]byte("x"), 100+i%3*2000)
		e := eventstore.RecordedEvent{ID: "e", Position: eventstore.Pos(uint64(i + 1)), Data: raw}
		_, _, gen := r.lookup(e)
		r.remember(e, raw, gen)
		if _, ok, _ := r.lookup(e); !ok {
			t.Fatalf("the reading just remembered of event %d is not found", i)
		}
	}
	if n := len(r.entries); n > recentSize || r.bytes > recentBytes || len(r.order)-r.head != n {
		t.Errorf("%d entries of %d bytes remembered (order %d from %d); want at most %d and %d", n, r.bytes, len(r.order), r.head, recentSize, recentBytes)
	}
}
