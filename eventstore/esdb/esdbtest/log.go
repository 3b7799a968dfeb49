package esdbtest

import (
	"container/list"
	"sync"

	"github.com/google/uuid"
)

// record is one event of the in-memory transaction log. Records never change
// once appended, so readers may use them without the lock.
type record struct {
	pos         uint64 // log position; commit and prepare position alike
	id          uuid.UUID
	stream      string
	revision    uint64
	eventType   string
	contentType string
	created     int64 // .NET ticks (100 ns) since the Unix epoch
	data        []byte
	meta        []byte
}

// size is the number of log bytes the record takes, so that positions grow
// with the data written, as in a real transaction file.
func (r *record) size() uint64 {
	return uint64(recordOverhead + len(r.stream) + len(r.eventType) + len(r.data) + len(r.meta))
}

// recordOverhead approximates the fixed part of a prepare record.
const recordOverhead = 96

// firstPosition is where the first record of a fresh log starts: a real node
// writes its epoch record first.
const firstPosition = 128

// expectation is the decoded expected revision of an append.
type expectation struct {
	kind     int // expectAny, expectNoStream, expectExists or expectRevision
	revision uint64
}

const (
	expectAny = iota
	expectNoStream
	expectExists
	expectRevision
)

// proposed is an event of an append request.
type proposed struct {
	id          uuid.UUID
	eventType   string
	contentType string
	data        []byte
	meta        []byte
}

// appendOutcome is the answer to an append: either success (with the stream's
// last revision and the records of the append, new or original) or a wrong
// expected version with the stream's current revision (-1: no stream).
type appendOutcome struct {
	ok      bool
	records []*record
	current int64
}

// db is the in-memory database: the log in position order, an index per
// stream, and the committed-event cache that gives appends with expected
// revision Any their idempotency, as in KurrentDB.
type db struct {
	mu      sync.Mutex
	log     []*record
	streams map[string][]*record
	writer  uint64
	cache   *idCache
	changed chan struct{} // closed and replaced on every append
}

func newDB(cacheSize int) *db {
	return &db{
		streams: make(map[string][]*record),
		writer:  firstPosition,
		cache:   newIDCache(cacheSize),
		changed: make(chan struct{}),
	}
}

// wait returns a channel that the next append closes.
func (d *db) wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.changed
}

// head returns the position of the last record, and false for an empty log.
func (d *db) head() (uint64, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.log) == 0 {
		return 0, false
	}
	return d.log[len(d.log)-1].pos, true
}

// append applies KurrentDB's write rules: the expected revision check and,
// when it fails, the idempotency check that answers a repeated write with the
// original events. Exact and no-stream expectations check idempotency against
// the stream itself; Any and stream-exists check the committed-event cache.
func (d *db) append(stream string, exp expectation, events []proposed, now int64) appendOutcome {
	d.mu.Lock()
	defer d.mu.Unlock()
	existing := d.streams[stream]
	current := int64(len(existing)) - 1

	switch exp.kind {
	case expectNoStream, expectRevision:
		want := int64(-1)
		if exp.kind == expectRevision {
			if exp.revision > 1<<62 {
				return appendOutcome{current: current}
			}
			want = int64(exp.revision)
		}
		if want > current {
			return appendOutcome{current: current}
		}
		if want < current {
			// A repeat of the write that followed revision want?
			for i, e := range events {
				rev := want + 1 + int64(i)
				if rev > current || existing[rev].id != e.id {
					return appendOutcome{current: current}
				}
			}
			return appendOutcome{ok: true, records: existing[want+1 : want+1+int64(len(events))], current: current}
		}
	case expectExists, expectAny:
		if exp.kind == expectExists && current < 0 {
			return appendOutcome{current: current}
		}
		if first, ok := d.cache.get(events[0].id); ok && first.stream == stream {
			originals := make([]*record, len(events))
			for i, e := range events {
				r, ok := d.cache.get(e.id)
				if !ok || r.stream != stream || r.revision != first.revision+uint64(i) {
					// Corrupted idempotency: only part of the write is stored.
					return appendOutcome{current: current}
				}
				originals[i] = r
			}
			return appendOutcome{ok: true, records: originals, current: current}
		}
	}

	written := make([]*record, len(events))
	for i, e := range events {
		r := &record{
			pos:         d.writer,
			id:          e.id,
			stream:      stream,
			revision:    uint64(current + 1 + int64(i)),
			eventType:   e.eventType,
			contentType: e.contentType,
			created:     now,
			data:        e.data,
			meta:        e.meta,
		}
		d.writer += r.size()
		written[i] = r
		d.log = append(d.log, r)
		d.cache.put(r)
	}
	d.streams[stream] = append(existing, written...)
	close(d.changed)
	d.changed = make(chan struct{})
	return appendOutcome{ok: true, records: written, current: current + int64(len(events))}
}

// stream returns the records of a stream; nil when it has none.
func (d *db) stream(name string) []*record {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.streams[name]
}

// A record at log position x has the $all position (x, x); positions compare
// commit first, then prepare.

// firstAfter returns the index of the first record whose position is greater
// than (c, p) — or, when inclusive, at least (c, p).
func (d *db) firstAfter(c, p uint64, inclusive bool) int {
	i := d.search(c)
	if i < len(d.log) && d.log[i].pos == c && (p > c || (p == c && !inclusive)) {
		i++
	}
	return i
}

// after returns at most n records whose position is greater than (c, p); all
// records from the first when has is false.
func (d *db) after(c, p uint64, has bool, n int) []*record {
	d.mu.Lock()
	defer d.mu.Unlock()
	i := 0
	if has {
		i = d.firstAfter(c, p, false)
	}
	return append([]*record(nil), d.log[i:min(i+n, len(d.log))]...)
}

// atOrAfter returns at most n records whose position is at least (c, p).
func (d *db) atOrAfter(c, p uint64, n int) []*record {
	d.mu.Lock()
	defer d.mu.Unlock()
	i := d.firstAfter(c, p, true)
	return append([]*record(nil), d.log[i:min(i+n, len(d.log))]...)
}

// before returns at most n records whose position is less than (c, p), or
// from the last record when end is true, last first.
func (d *db) before(c, p uint64, end bool, n int) []*record {
	d.mu.Lock()
	defer d.mu.Unlock()
	i := len(d.log)
	if !end {
		i = d.firstAfter(c, p, true)
	}
	out := make([]*record, 0, min(n, i))
	for j := i - 1; j >= 0 && len(out) < n; j-- {
		out = append(out, d.log[j])
	}
	return out
}

// search returns the index of the first record at or after log position pos.
func (d *db) search(pos uint64) int {
	lo, hi := 0, len(d.log)
	for lo < hi {
		m := (lo + hi) / 2
		if d.log[m].pos < pos {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// idCache is a bounded least-recently-used map from event id to record: the
// committed-event cache of a KurrentDB node. A size below zero disables it.
type idCache struct {
	size  int
	order *list.List // of *record, most recent first
	byID  map[uuid.UUID]*list.Element
}

func newIDCache(size int) *idCache {
	return &idCache{size: size, order: list.New(), byID: make(map[uuid.UUID]*list.Element)}
}

func (c *idCache) get(id uuid.UUID) (*record, bool) {
	el, ok := c.byID[id]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*record), true
}

func (c *idCache) put(r *record) {
	if c.size <= 0 {
		return
	}
	if el, ok := c.byID[r.id]; ok {
		el.Value = r
		c.order.MoveToFront(el)
		return
	}
	c.byID[r.id] = c.order.PushFront(r)
	for c.order.Len() > c.size {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.byID, last.Value.(*record).id)
	}
}
