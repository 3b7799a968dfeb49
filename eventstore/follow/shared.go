package follow

import (
	"sync"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
)

// Every follower of a server decodes the chat messages it reads: the live
// feed, the chat-history and online-users read models and the AI assistant
// all read each MessagePosted, within a batch or two of each other. The
// followers of a process share one decoding of each: decodeShared keeps the
// recent decoded messages by position, and hands one out only for the very
// bytes it was decoded from (so a reading that changed meanwhile, a
// forgotten user's now erased fields say, is decoded afresh). A
// UserForgotten decoded by any follower empties it, so that it does not
// hold a forgotten user's clear fields once the process knows of the
// forget. Only MessagePosted is shared: it is a value every handler only
// reads.

// sharedSize and sharedBytes bound the decoded messages kept (a couple of
// 500-event batches, and at most 1 MiB of the bytes they were decoded from).
const (
	sharedSize  = 1024
	sharedBytes = 1 << 20
)

var shared sharedDecodings

// sharedDecodings is the process's recent decoded messages.
type sharedDecodings struct {
	mu      sync.Mutex
	gen     uint64 // bumped by every UserForgotten decoded
	entries map[eventstore.Position]sharedDecoding
	order   []eventstore.Position // insertion order, for eviction, from head
	head    int
	bytes   int // of the entries' data (their decoded fields are about as many)
}

// sharedDecoding is one decoded message and the bytes it was decoded from.
type sharedDecoding struct {
	id   string
	data []byte
	ev   domain.Event
}

// decodeShared decodes rec as domain.Decode does, sharing the decoding of a
// MessagePosted with the other followers of this process.
func decodeShared(rec eventstore.RecordedEvent) (domain.Event, error) {
	switch rec.Type {
	case domain.TypeMessagePosted:
	case domain.TypeUserForgotten:
		shared.forget()
		return domain.Decode(rec.Type, rec.Data)
	default:
		return domain.Decode(rec.Type, rec.Data)
	}
	ev, gen, ok := shared.lookup(rec)
	if ok {
		return ev, nil
	}
	ev, err := domain.Decode(rec.Type, rec.Data)
	if err == nil {
		shared.remember(rec, ev, gen)
	}
	return ev, err
}

func (s *sharedDecodings) lookup(rec eventstore.RecordedEvent) (domain.Event, uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.entries[rec.Position]; ok && d.id == rec.ID && string(d.data) == string(rec.Data) {
		return d.ev, s.gen, true
	}
	return nil, s.gen, false
}

func (s *sharedDecodings) remember(rec eventstore.RecordedEvent, ev domain.Event, gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if gen != s.gen {
		return // a UserForgotten was decoded meanwhile
	}
	if s.entries == nil {
		s.entries = make(map[eventstore.Position]sharedDecoding, sharedSize)
	}
	if old, found := s.entries[rec.Position]; found {
		s.bytes -= len(old.data)
	} else {
		s.order = append(s.order, rec.Position)
	}
	s.entries[rec.Position] = sharedDecoding{id: rec.ID, data: rec.Data, ev: ev}
	s.bytes += len(rec.Data)
	for (len(s.entries) > sharedSize || s.bytes > sharedBytes) && s.head < len(s.order) {
		if old, found := s.entries[s.order[s.head]]; found {
			s.bytes -= len(old.data)
			delete(s.entries, s.order[s.head])
		}
		s.head++
	}
	if s.head > len(s.order)/2 {
		s.order = append(s.order[:0], s.order[s.head:]...)
		s.head = 0
	}
}

func (s *sharedDecodings) forget() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	s.entries, s.order, s.head, s.bytes = nil, nil, 0, 0
}
