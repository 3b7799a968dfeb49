package sqlstore

import (
	"encoding/json"
	"sort"
	"sync"
	"time"

	"github.com/auraos/realtime/eventstore"
)

// tailSize is how many recently committed events the store keeps in memory
// at least (and at most twice as many), unless they pass tailBytes.
const tailSize = 8192

// tailBytes bounds the data and metadata the tail holds: past twice this
// it keeps the newest events of about this size, however few, so that
// large events (long messages, encrypted fields) cannot make the tail hold
// tens of megabytes.
const tailBytes = 4 << 20

// tail keeps the events this process committed most recently, so that live
// subscribers (the projection runners, the adapter's feed) read them from
// memory instead of asking the database once each after every commit.
//
// It holds every event of the log in (from, through], nothing less: the
// writer appends its commits in order, and when the log's head before a
// commit is not where the tail ends (another process appended), it starts
// over with that commit.
type tail struct {
	mu      sync.Mutex
	events  []eventstore.RecordedEvent // positions from+1 … through
	bytes   int                        // data and metadata of events
	from    int64
	through int64
}

func eventBytes(e eventstore.RecordedEvent) int { return len(e.Data) + len(e.Metadata) }

// add records a committed transaction: its rows follow headBefore, and the
// log continues after through (PostgreSQL batches may leave reserved
// positions unused).
func (t *tail) add(headBefore, through int64, rows []eventRow, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if headBefore != t.through || len(t.events) == 0 && t.through == 0 {
		t.events, t.from, t.bytes = t.events[:0], headBefore, 0
	}
	for _, r := range rows {
		t.events = append(t.events, eventstore.RecordedEvent{
			ID: r.EventID, Stream: r.Stream, Version: uint64(r.Version), Type: r.Type,
			Position: eventstore.Pos(uint64(r.Position)), Time: at,
			Data: json.RawMessage(r.Data), Metadata: json.RawMessage(r.Metadata),
		})
		t.bytes += len(r.Data) + len(r.Metadata)
	}
	t.through = through
	// Past twice the size, keep the newest half: moving the events once per
	// tailSize commits keeps adding cheap.
	if len(t.events) > 2*tailSize || t.bytes > 2*tailBytes {
		drop := len(t.events) - tailSize
		kept := 0
		for i := len(t.events) - 1; i >= 0; i-- {
			if kept += eventBytes(t.events[i]); kept > tailBytes {
				drop = max(drop, i+1)
				break
			}
		}
		drop = min(drop, len(t.events)-1) // the newest event always stays
		for _, e := range t.events[:drop] {
			t.bytes -= eventBytes(e)
		}
		t.from = int64(t.events[drop-1].Position.Commit)
		n := copy(t.events, t.events[drop:])
		clear(t.events[n:])
		t.events = t.events[:n]
	}
}

// read returns what the tail holds after position after: the events that
// pass filter (at most limit) and the position they reach through. ok is
// false when the tail cannot tell (after lies outside what it holds, or it
// holds nothing newer); through is then where the tail ends.
func (t *tail) read(after int64, filter eventstore.Filter, limit int) (events []eventstore.RecordedEvent, through int64, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if after < t.from || after >= t.through {
		return nil, t.through, false
	}
	i := sort.Search(len(t.events), func(i int) bool { return int64(t.events[i].Position.Commit) > after })
	for _, e := range t.events[i:] {
		if !filter.Match(e.Stream, e.Type) {
			continue
		}
		if len(events) == limit {
			return events, int64(events[len(events)-1].Position.Commit), true
		}
		events = append(events, e)
	}
	return events, t.through, true
}

// end returns where the tail ends: the head of the log as far as this
// process knows.
func (t *tail) end() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.through
}
