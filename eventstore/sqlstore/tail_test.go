package sqlstore

import (
	"testing"
	"time"

	"github.com/auraos/realtime/eventstore"
)

func rowsAt(from, n int64) []eventRow {
	out := make([]eventRow, n)
	for i := range out {
		out[i] = eventRow{Position: from + int64(i), EventID: eventstore.NewID(), Stream: "s", Type: "E", Data: "{}", Metadata: "{}"}
	}
	return out
}

func TestTailHoldsACompleteRange(t *testing.T) {
	t.Parallel()
	var tl tail
	now := time.Now()
	tl.add(0, 1+10-1, rowsAt(1, 10), now) // positions 1..10
	if evs, through, ok := tl.read(4, eventstore.Filter{}, 100); !ok || len(evs) != 6 || through != 10 || evs[0].Position.Commit != 5 {
		t.Fatalf("read after 4: %d events through %d (%v)", len(evs), through, ok)
	}
	if _, _, ok := tl.read(10, eventstore.Filter{}, 100); ok {
		t.Fatal("the tail claims to know what follows its end")
	}
	if evs, through, _ := tl.read(0, eventstore.Filter{}, 3); len(evs) != 3 || through != 3 {
		t.Fatalf("limited read: %d through %d", len(evs), through)
	}
	// Another process appended 11..12: the tail starts over at 13.
	tl.add(12, 13+2-1, rowsAt(13, 2), now)
	if _, _, ok := tl.read(10, eventstore.Filter{}, 100); ok {
		t.Fatal("the tail served across a gap")
	}
	if evs, _, ok := tl.read(12, eventstore.Filter{}, 100); !ok || len(evs) != 2 {
		t.Fatalf("read after the gap: %v %v", evs, ok)
	}
	// Filtered-out events move the checkpoint too.
	if evs, through, ok := tl.read(12, eventstore.Filter{EventTypes: []string{"Other"}}, 100); !ok || len(evs) != 0 || through != 14 {
		t.Fatalf("filtered read: %d events through %d", len(evs), through)
	}
	// Past twice its size it keeps the newest part, still complete.
	next := int64(15)
	for range 3 * tailSize / 100 {
		tl.add(next-1, next+100-1, rowsAt(next, 100), now)
		next += 100
	}
	if len(tl.events) > 2*tailSize || tl.through != next-1 || int64(len(tl.events)) != tl.through-tl.from {
		t.Fatalf("after trimming: %d events, (%d, %d]", len(tl.events), tl.from, tl.through)
	}
	evs, _, ok := tl.read(tl.from, eventstore.Filter{}, 1)
	if !ok || evs[0].Position.Commit != uint64(tl.from+1) {
		t.Fatalf("first event after trimming: %v %v", evs, ok)
	}
}

// Large events bound the tail by bytes, not only by count: it keeps the
// newest events of about tailBytes, still a complete range.
func TestTailIsBoundedInBytes(t *testing.T) {
	t.Parallel()
	var tl tail
	big := string(make([]byte, 64<<10)) // 64 KiB of data an event
	next := int64(1)
	for range 400 {
		rows := rowsAt(next, 2)
		for i := range rows {
			rows[i].Data = big
		}
		tl.add(next-1, next+1, rows, time.Now())
		next += 2
	}
	if tl.bytes > 2*tailBytes+2*len(big) {
		t.Fatalf("the tail holds %d KiB, want at most about %d KiB", tl.bytes>>10, 2*tailBytes>>10)
	}
	sum := 0
	for _, e := range tl.events {
		sum += eventBytes(e)
	}
	if sum != tl.bytes || tl.through != next-1 || int64(len(tl.events)) != tl.through-tl.from || len(tl.events) == 0 {
		t.Fatalf("after trimming: %d events, %d bytes counted, %d held, (%d, %d]", len(tl.events), tl.bytes, sum, tl.from, tl.through)
	}
	if _, _, ok := tl.read(tl.from, eventstore.Filter{}, 1); !ok {
		t.Fatal("the trimmed tail cannot serve its own start")
	}
}
