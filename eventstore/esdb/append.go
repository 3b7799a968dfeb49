package esdb

import (
	"container/list"
	"context"
	"fmt"
	"strings"
	"sync"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
)

// Append implements eventstore.Store. It returns EINVALID errors for
// arguments the port rejects and for stream names starting with "$" (system
// streams), a *eventstore.WrongExpectedVersionError (ECONFLICT) when the
// stream is not in the expected state, eventstore.ErrDuplicateEventID
// (ECONFLICT) for ids stored in another stream or only partly stored, the
// original result for a repeated append, ctx's error when ctx has ended, and
// EUNAVAILABLE when the server cannot be reached (the append may then have been
// stored: retry it with the same ids). See the package documentation for how
// repeats are recognised.
func (s *Store) Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	if err := ctx.Err(); err != nil {
		return eventstore.AppendResult{}, err
	}
	evs := append([]eventstore.EventData(nil), events...) // validation fills ids and metadata
	if err := eventstore.ValidateAppend(stream, evs, s.opts.NewID); err != nil {
		return eventstore.AppendResult{}, err
	}
	if err := checkStream(stream); err != nil {
		return eventstore.AppendResult{}, err
	}
	release, err := s.enter()
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	defer release()

	name := s.opts.Namespace + stream
	ids := make([]uuid.UUID, len(evs))
	for i, e := range evs {
		ids[i] = uuid.MustParse(e.ID) // ValidateAppend checked the form
	}

	// 1. Ids this store appended itself.
	if res, ok, err := s.ids.repeat(name, ids); ok || err != nil {
		return res, err
	}
	// 3. Append; a wrong expected version may be a repeat the server did not
	// recognise as one.
	if v, exact := expected.Version(); exact && v >= 1<<62 {
		// The server reads revisions as signed numbers; such a revision
		// cannot be the stream's.
		return eventstore.AppendResult{}, s.wrongVersion(ctx, name, stream, expected, nil)
	}
	// The stream's chain continues from its last event (see chain.go):
	// this process's appends to the stream take turns.
	unlock := s.chains.lock(name)
	defer unlock()
	var last uint64
	for attempt := 0; ; attempt++ {
		send, linked, tip, err := s.linkAppend(ctx, name, stream, expected, evs)
		if err != nil {
			return eventstore.AppendResult{}, err
		}
		// 2. With Any and StreamExists the server recognises a repeat only
		// while the ids are in its cache, and not at all once the append
		// is sent with an exact revision: look through the stream's latest
		// events, read after the tip was known (a repeat stored since is
		// seen here, or moves the revision and fails the append).
		if expected.IsAny() || expected.IsStreamExists() {
			if res, ok, err := s.repeatInTail(ctx, name, ids); ok || err != nil {
				s.chains.forget(name)
				return res, err
			}
		}
		last, err = s.appendRaw(ctx, name, send, linked, ids)
		if isCode(err, esdbclient.ErrorCodeWrongExpectedVersion) {
			s.chains.forget(name) // another process appended: read the tip again
			if res, ok, rerr := s.repeatInTail(ctx, name, ids); ok || rerr != nil {
				return res, rerr
			}
			if send != expected {
				if attempt < chainRetries {
					continue
				}
				return eventstore.AppendResult{}, errChainRace
			}
			return eventstore.AppendResult{}, s.wrongVersion(ctx, name, stream, expected, err)
		}
		if err != nil {
			s.chains.forget(name)
			return eventstore.AppendResult{}, s.translate("append to "+stream, ctxErr(ctx, err))
		}
		if last == tip.revision {
			s.chains.setTip(name, tip)
		} else {
			s.chains.forget(name) // the server answered a repeat of events stored earlier
		}
		break
	}
	// 4. The result: the appended events' positions, read back, since the
	// server answers with one position for the whole append.
	res, err := s.readBack(ctx, name, last, ids)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	s.ids.add(name, ids, res)
	return res, nil
}

// checkStream rejects stream names that EventStoreDB reserves for system
// streams: they would be hidden from subscriptions and $all reads.
func checkStream(stream string) error {
	if strings.HasPrefix(stream, "$") {
		return domain.Errorf(domain.EINVALID, "stream name %q starts with $, which EventStoreDB reserves for system streams", stream)
	}
	return nil
}

// toRevision maps the port's expected version to the client's.
func toRevision(e eventstore.ExpectedVersion) esdbclient.ExpectedRevision {
	switch {
	case e.IsNoStream():
		return esdbclient.NoStream{}
	case e.IsStreamExists():
		return esdbclient.StreamExists{}
	}
	if v, ok := e.Version(); ok {
		return esdbclient.Revision(v)
	}
	return esdbclient.Any{}
}

// appendRaw sends the append and returns the stream revision of its last
// event (of the original events when the server answered a repeat).
func (s *Store) appendRaw(ctx context.Context, name string, expected eventstore.ExpectedVersion, evs []eventstore.EventData, ids []uuid.UUID) (uint64, error) {
	data := make([]esdbclient.EventData, len(evs))
	for i, e := range evs {
		data[i] = esdbclient.EventData{
			EventID:     ids[i], // never nil: the client would pick a random id
			EventType:   e.Type,
			ContentType: esdbclient.ContentTypeJson,
			Data:        e.Data,
			Metadata:    e.Metadata,
		}
	}
	var last uint64
	err := s.do(ctx, func(c *esdbclient.Client) error {
		r, err := c.AppendToStream(ctx, name, esdbclient.AppendToStreamOptions{ExpectedRevision: toRevision(expected)}, data...)
		if err != nil {
			return err
		}
		last = r.NextExpectedVersion
		return nil
	})
	if err != nil {
		return 0, err
	}
	return last, nil
}

// wrongVersion builds the error of a failed concurrency check. With Any, and
// with StreamExists on an existing stream, the server fails an append only
// when part of its ids are stored (its "corrupted idempotency"): that is
// ErrDuplicateEventID.
func (s *Store) wrongVersion(ctx context.Context, name, stream string, expected eventstore.ExpectedVersion, cause error) error {
	actual, ok := int64(0), false
	if cause != nil {
		actual, ok = actualFrom(cause)
	}
	if !ok {
		tail, err := s.readStreamRaw(ctx, name, esdbclient.Backwards, esdbclient.End{}, 1)
		if err != nil {
			return s.translate("read "+stream, ctxErr(ctx, err))
		}
		actual = -1
		if len(tail) > 0 {
			actual = int64(tail[0].OriginalEvent().EventNumber)
		}
	}
	if expected.IsAny() || (expected.IsStreamExists() && actual >= 0) {
		return fmt.Errorf("the server found part of the append's event ids in %q: %w", stream, eventstore.ErrDuplicateEventID)
	}
	return &eventstore.WrongExpectedVersionError{Stream: stream, Expected: expected, Actual: actual}
}

// repeatInTail looks for the append's ids among the stream's latest events
// (IdempotencyWindow of them, plus enough to hold an earlier append of the
// same size that ends inside the window).
func (s *Store) repeatInTail(ctx context.Context, name string, ids []uuid.UUID) (eventstore.AppendResult, bool, error) {
	if s.opts.IdempotencyWindow < 0 {
		return eventstore.AppendResult{}, false, nil
	}
	n := uint64(s.opts.IdempotencyWindow + len(ids) - 1)
	tail, err := s.readStreamRaw(ctx, name, esdbclient.Backwards, esdbclient.End{}, n)
	if err != nil {
		return eventstore.AppendResult{}, false, s.translate("read "+name, ctxErr(ctx, err))
	}
	known := make(map[uuid.UUID]stored, len(ids))
	want := make(map[uuid.UUID]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	for _, re := range tail {
		e := re.OriginalEvent()
		if want[e.EventID] {
			known[e.EventID] = stored{stream: name, version: e.EventNumber, position: toPosition(e.Position)}
		}
	}
	res, ok, err := repeatOf(name, ids, known)
	if ok {
		s.ids.add(name, ids, res)
	}
	return res, ok, err
}

// readBack reads the events an append stored (the len(ids) events ending at
// revision last) and returns the append's result.
func (s *Store) readBack(ctx context.Context, name string, last uint64, ids []uuid.UUID) (eventstore.AppendResult, error) {
	n := uint64(len(ids))
	if last+1 < n {
		return eventstore.AppendResult{}, fmt.Errorf("esdb: the server reported revision %d after appending %d events to %q", last, n, name)
	}
	first := last + 1 - n
	evs, err := s.readStreamWith(ctx, s.finish, name, esdbclient.Forwards, esdbclient.Revision(first), n)
	if err != nil {
		return eventstore.AppendResult{}, s.translate("read back "+name, ctxErr(ctx, err))
	}
	res := eventstore.AppendResult{StreamVersion: last, Positions: make([]eventstore.Position, n)}
	if uint64(len(evs)) != n {
		return eventstore.AppendResult{}, fmt.Errorf("esdb: %q holds %d events from revision %d, want the %d just appended", name, len(evs), first, n)
	}
	for i, re := range evs {
		e := re.OriginalEvent()
		if e.EventID != ids[i] || e.EventNumber != first+uint64(i) {
			return eventstore.AppendResult{}, fmt.Errorf("esdb: event %d of %q is %s, not the appended %s", e.EventNumber, name, e.EventID, ids[i])
		}
		res.Positions[i] = toPosition(e.Position)
	}
	return res, nil
}

// stored is what the store knows about a stored event id.
type stored struct {
	stream   string
	version  uint64
	position eventstore.Position
}

// repeatOf applies the port's rules to the ids found stored (known): none
// found is no repeat; all found in this stream at consecutive versions, in
// order, is a repeat with the original result; anything else (ids in another
// stream, only some found, another order) is ErrDuplicateEventID.
func repeatOf(name string, ids []uuid.UUID, known map[uuid.UUID]stored) (eventstore.AppendResult, bool, error) {
	if len(known) == 0 {
		return eventstore.AppendResult{}, false, nil
	}
	if len(known) < len(ids) {
		return eventstore.AppendResult{}, false, fmt.Errorf("%d of %d event ids of this append are stored already: %w", len(known), len(ids), eventstore.ErrDuplicateEventID)
	}
	res := eventstore.AppendResult{Positions: make([]eventstore.Position, len(ids))}
	first := known[ids[0]]
	for i, id := range ids {
		k := known[id]
		if k.stream != name {
			return eventstore.AppendResult{}, false, fmt.Errorf("event %s is stored in another stream: %w", id, eventstore.ErrDuplicateEventID)
		}
		if k.version != first.version+uint64(i) {
			return eventstore.AppendResult{}, false, fmt.Errorf("event ids stored in another order: %w", eventstore.ErrDuplicateEventID)
		}
		res.Positions[i] = k.position
		res.StreamVersion = k.version
	}
	return res, true, nil
}

// idCache remembers the ids this store appended, least recently used out
// first. A nil *idCache remembers nothing.
type idCache struct {
	mu    sync.Mutex
	size  int
	order *list.List // of idEntry, most recent first
	byID  map[uuid.UUID]*list.Element
}

type idEntry struct {
	id uuid.UUID
	stored
}

func newIDCache(size int) *idCache {
	if size <= 0 {
		return nil
	}
	return &idCache{size: size, order: list.New(), byID: make(map[uuid.UUID]*list.Element)}
}

// repeat applies repeatOf to the ids the cache knows.
func (c *idCache) repeat(name string, ids []uuid.UUID) (eventstore.AppendResult, bool, error) {
	if c == nil {
		return eventstore.AppendResult{}, false, nil
	}
	c.mu.Lock()
	known := make(map[uuid.UUID]stored)
	for _, id := range ids {
		if el, ok := c.byID[id]; ok {
			known[id] = el.Value.(idEntry).stored
			c.order.MoveToFront(el)
		}
	}
	c.mu.Unlock()
	return repeatOf(name, ids, known)
}

// add remembers the result of an append.
func (c *idCache) add(name string, ids []uuid.UUID, res eventstore.AppendResult) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	first := res.StreamVersion + 1 - uint64(len(ids))
	for i, id := range ids {
		e := idEntry{id: id, stored: stored{stream: name, version: first + uint64(i), position: res.Positions[i]}}
		if el, ok := c.byID[id]; ok {
			el.Value = e
			c.order.MoveToFront(el)
			continue
		}
		c.byID[id] = c.order.PushFront(e)
	}
	for c.order.Len() > c.size {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.byID, last.Value.(idEntry).id)
	}
}
