package esdb

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"sync"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/chain"
)

// Each stream carries its own hash chain: the log as a whole has no lock
// auraos holds (several processes append, and KurrentDB orders them), but
// appends to one stream are serialized by their expected revision. The link
// of the event at version v of stream S is package chain's function over
// the link of version v-1 (32 zero bytes for version 0), with position and
// created_at set to 0 (the server assigns both after the link is computed):
//
//	link = chain.Next(prev, {Position: 0, ID, Stream: S, Version: v, Type, Data, Metadata, Time: 0})
//
// It is stored by wrapping the event's metadata, byte for byte:
//
//	{"auraosChain":"<64 hex digits>","metadata":<the metadata as appended>}
//
// and reads unwrap it, so the port sees the metadata exactly as appended.
// Appends with Any or StreamExists are sent with the exact revision their
// links follow; within a process, appends to one stream wait for each
// other, so they do not race for the revision.

const (
	chainPrefix = `{"auraosChain":"`
	chainMiddle = `","metadata":`
	chainHeader = len(chainPrefix) + 2*chain.Size + len(chainMiddle)
)

// wrapMetadata returns the stored form of metadata with its link.
func wrapMetadata(metadata []byte, link chain.Hash) []byte {
	out := make([]byte, 0, chainHeader+len(metadata)+1)
	out = append(out, chainPrefix...)
	out = hex.AppendEncode(out, link[:])
	out = append(out, chainMiddle...)
	out = append(out, metadata...)
	return append(out, '}')
}

// unwrapMetadata returns the metadata as appended and the link of a stored
// event; ok is false for metadata without a link (an event appended by
// another program, or before the chain existed), which is returned as is.
func unwrapMetadata(stored []byte) (metadata []byte, link chain.Hash, ok bool) {
	if len(stored) < chainHeader+2 || !bytes.HasPrefix(stored, []byte(chainPrefix)) ||
		string(stored[chainHeader-len(chainMiddle):chainHeader]) != chainMiddle || stored[len(stored)-1] != '}' {
		return stored, link, false
	}
	if _, err := hex.Decode(link[:], stored[len(chainPrefix):len(chainPrefix)+2*chain.Size]); err != nil {
		return stored, chain.Hash{}, false
	}
	return stored[chainHeader : len(stored)-1], link, true
}

// streamLink computes the link of e at version in stream after prev.
func streamLink(h *chain.Hasher, prev chain.Hash, stream string, version uint64, e *eventstore.EventData) chain.Hash {
	return h.Next(prev, &chain.Event{ID: e.ID, Stream: stream, Version: version, Type: e.Type, Data: e.Data, Metadata: e.Metadata})
}

// streamTip is the last event of a stream as the chain needs it.
type streamTip struct {
	exists   bool
	revision uint64
	link     chain.Hash
}

// streamChains serializes this process's appends per stream and remembers
// each stream's tip after this process's last append to it (another
// process's append makes the next exact revision fail, and the tip is read
// again).
type streamChains struct {
	mu    sync.Mutex
	locks map[string]*streamLock
	tips  map[string]streamTip
}

type streamLock struct {
	mu    sync.Mutex
	users int
}

// maxTips bounds the remembered tips; past it, they are forgotten.
const maxTips = 100000

func newStreamChains() *streamChains {
	return &streamChains{locks: map[string]*streamLock{}, tips: map[string]streamTip{}}
}

// lock waits for the other appends of this process to stream name and
// returns the function that lets the next one go.
func (c *streamChains) lock(name string) func() {
	c.mu.Lock()
	l := c.locks[name]
	if l == nil {
		l = &streamLock{}
		c.locks[name] = l
	}
	l.users++
	c.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		c.mu.Lock()
		if l.users--; l.users == 0 {
			delete(c.locks, name)
		}
		c.mu.Unlock()
	}
}

func (c *streamChains) tip(name string) (streamTip, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.tips[name]
	return t, ok
}

func (c *streamChains) setTip(name string, t streamTip) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.tips) >= maxTips {
		c.tips = map[string]streamTip{}
	}
	c.tips[name] = t
}

func (c *streamChains) forget(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.tips, name)
}

// chainTip returns the tip of the stream name: remembered, or read from the
// server (a last event without a link continues the chain from zero).
func (s *Store) chainTip(ctx context.Context, name string) (streamTip, error) {
	if t, ok := s.chains.tip(name); ok {
		return t, nil
	}
	tail, err := s.readStreamRaw(ctx, name, esdbclient.Backwards, esdbclient.End{}, 1)
	if err != nil {
		return streamTip{}, s.translate("read "+name, ctxErr(ctx, err))
	}
	if len(tail) == 0 {
		return streamTip{}, nil
	}
	e := tail[0].OriginalEvent()
	_, link, _ := unwrapMetadata(e.UserMetadata)
	return streamTip{exists: true, revision: e.EventNumber, link: link}, nil
}

// linkAppend returns what to send for an append to stream (name on the
// server): the expected revision (Any and StreamExists made exact, so the
// links follow the stream's last event), the events with their links
// wrapped into their metadata, and the tip the append will leave.
func (s *Store) linkAppend(ctx context.Context, name, stream string, expected eventstore.ExpectedVersion, evs []eventstore.EventData) (eventstore.ExpectedVersion, []eventstore.EventData, streamTip, error) {
	t, err := s.chainTip(ctx, name)
	if err != nil {
		return expected, nil, streamTip{}, err
	}
	send, next := expected, uint64(0)
	if t.exists {
		next = t.revision + 1
		if expected.IsAny() || expected.IsStreamExists() {
			send = eventstore.Exact(t.revision)
		}
	} else if expected.IsAny() {
		send = eventstore.NoStream
	}
	h := chain.NewHasher()
	prev := t.link
	linked := make([]eventstore.EventData, len(evs))
	for i := range evs {
		prev = streamLink(h, prev, stream, next+uint64(i), &evs[i])
		linked[i] = evs[i]
		linked[i].Metadata = wrapMetadata(evs[i].Metadata, prev)
	}
	return send, linked, streamTip{exists: true, revision: next + uint64(len(evs)) - 1, link: prev}, nil
}

// chainRetries bounds how often an append with Any or StreamExists is linked
// again after another process's append took the stream's revision.
const chainRetries = 20

// errChainRace is why an append that made Any or StreamExists exact lost the
// revision to other processes' appends chainRetries times.
var errChainRace = domain.Errorf(domain.EUNAVAILABLE, "the stream kept moving while its chain was extended; retry the append")

// VerifyChains checks every stream's chain: it reads the log once for the
// streams' names, then each stream from its first event, recomputing the
// links. It returns the number of events and streams checked, a
// *chain.BreakError (whose Position is the event's commit position) naming
// the first broken event of the first broken stream, or EUNAVAILABLE when
// the server cannot be read.
func (s *Store) VerifyChains(ctx context.Context) (events uint64, streams int, err error) {
	var names []string
	seen := map[string]bool{}
	from := eventstore.Start
	const page = 5000
	for {
		evs, err := s.ReadAll(ctx, eventstore.ReadAllOptions{From: from, Limit: page})
		if err != nil {
			return 0, 0, err
		}
		for _, e := range evs {
			if !seen[e.Stream] {
				seen[e.Stream] = true
				names = append(names, e.Stream)
			}
		}
		if len(evs) < page {
			break
		}
		last := evs[len(evs)-1].Position
		from = eventstore.Position{Commit: last.Commit, Prepare: last.Prepare + 1}
	}
	h := chain.NewHasher()
	for _, stream := range names {
		var prev chain.Hash
		next := uint64(0)
		for {
			raw, err := s.readStreamRaw(ctx, s.opts.Namespace+stream, esdbclient.Forwards, esdbclient.Revision(next), page)
			if err != nil {
				return events, streams, s.translate("read "+stream, ctxErr(ctx, err))
			}
			for _, re := range raw {
				e := re.OriginalEvent()
				meta, stored, ok := unwrapMetadata(e.UserMetadata)
				d := eventstore.EventData{ID: e.EventID.String(), Type: e.EventType, Data: e.Data, Metadata: meta}
				got := streamLink(h, prev, stream, e.EventNumber, &d)
				switch {
				case !ok:
					return events, streams, &chain.BreakError{Position: e.Position.Commit, Reason: fmt.Sprintf("stream %q, version %d: the event has no link in its metadata", stream, e.EventNumber)}
				case e.EventNumber != next:
					return events, streams, &chain.BreakError{Position: e.Position.Commit, Reason: fmt.Sprintf("stream %q: version %d follows %d (events removed)", stream, e.EventNumber, next-1)}
				case got != stored:
					return events, streams, &chain.BreakError{Position: e.Position.Commit, Reason: fmt.Sprintf("stream %q, version %d: the event does not match its link (edited, or an event before it in the stream removed)", stream, e.EventNumber)}
				}
				prev = got
				next++
				events++
			}
			if uint64(len(raw)) < page {
				break
			}
		}
		streams++
	}
	return events, streams, nil
}
