package esdb

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"strings"
	"time"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/auraos/realtime/eventstore"
)

// ReadStream implements eventstore.Store. A stream that does not exist reads
// as empty. It returns EINVALID for an invalid stream name (or one starting
// with "$"), ctx's error when ctx has ended, ErrClosed on a closed store and
// EUNAVAILABLE when the server cannot be reached.
func (s *Store) ReadStream(ctx context.Context, stream string, opts eventstore.ReadStreamOptions) ([]eventstore.RecordedEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := eventstore.ValidateStream(stream); err != nil {
		return nil, err
	}
	if err := checkStream(stream); err != nil {
		return nil, err
	}
	release, err := s.enter()
	if err != nil {
		return nil, err
	}
	defer release()
	rctx, cancel := s.readContext(ctx)
	defer cancel()

	count := uint64(math.MaxInt64)
	if opts.Limit > 0 {
		count = uint64(opts.Limit)
	}
	dir, from := esdbclient.Forwards, esdbclient.StreamPosition(esdbclient.Revision(opts.From))
	if opts.Direction == eventstore.Backwards {
		dir = esdbclient.Backwards
		if opts.From >= math.MaxInt64 {
			from = esdbclient.End{}
		}
	} else if opts.From >= math.MaxInt64 {
		return []eventstore.RecordedEvent{}, nil
	}
	raw, err := s.readStreamRaw(rctx, s.opts.Namespace+stream, dir, from, count)
	if err != nil {
		return nil, s.translate("read "+stream, ctxErr(ctx, err))
	}
	out := make([]eventstore.RecordedEvent, len(raw))
	for i, re := range raw {
		out[i] = convert(re.OriginalEvent(), stream)
	}
	return out, nil
}

// readStreamRaw reads up to count events of the stream name (a full name,
// namespace included). A stream that does not exist reads as empty.
func (s *Store) readStreamRaw(ctx context.Context, name string, dir esdbclient.Direction, from esdbclient.StreamPosition, count uint64) ([]*esdbclient.ResolvedEvent, error) {
	return s.readStreamWith(ctx, s.do, name, dir, from, count)
}

// readStreamWith is readStreamRaw through do or finish.
func (s *Store) readStreamWith(ctx context.Context, do func(context.Context, func(*esdbclient.Client) error) error, name string, dir esdbclient.Direction, from esdbclient.StreamPosition, count uint64) ([]*esdbclient.ResolvedEvent, error) {
	var out []*esdbclient.ResolvedEvent
	err := do(ctx, func(c *esdbclient.Client) error {
		out = out[:0]
		rs, err := c.ReadStream(ctx, name, esdbclient.ReadStreamOptions{Direction: dir, From: from}, count)
		if err != nil {
			return err
		}
		out, err = drain(rs, out[:0])
		if isCode(err, esdbclient.ErrorCodeResourceNotFound) {
			out = out[:0]
			return nil
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// readAllRaw reads up to count records of $all, system events included.
func (s *Store) readAllRaw(ctx context.Context, dir esdbclient.Direction, from esdbclient.AllPosition, count uint64) ([]*esdbclient.ResolvedEvent, error) {
	var out []*esdbclient.ResolvedEvent
	err := s.do(ctx, func(c *esdbclient.Client) error {
		out = out[:0]
		rs, err := c.ReadAll(ctx, esdbclient.ReadAllOptions{Direction: dir, From: from}, count)
		if err != nil {
			return err
		}
		out, err = drain(rs, out[:0])
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// drain appends every event of rs to out and closes rs; the end of the
// stream is not an error.
func drain(rs *esdbclient.ReadStream, out []*esdbclient.ResolvedEvent) ([]*esdbclient.ResolvedEvent, error) {
	defer rs.Close()
	for {
		e, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, e)
	}
}

// rawHead returns the position of the last record of $all (a system event,
// possibly), and false when the log is empty.
func (s *Store) rawHead(ctx context.Context) (eventstore.Position, bool, error) {
	last, err := s.readAllRaw(ctx, esdbclient.Backwards, esdbclient.End{}, 1)
	if err != nil || len(last) == 0 {
		return eventstore.Start, false, err
	}
	return toPosition(last[0].OriginalEvent().Position), true, nil
}

// headPage is how many records Head reads at a time.
const headPage = 64

// Head implements eventstore.Store: the position of the last event of the
// store's view of the log (its namespace, system streams left out), or Start.
// It reads $all backwards until it meets such an event. It returns ErrClosed
// on a closed store and EUNAVAILABLE when the server cannot be reached.
func (s *Store) Head(ctx context.Context) (eventstore.Position, error) {
	if err := ctx.Err(); err != nil {
		return eventstore.Start, err
	}
	release, err := s.enter()
	if err != nil {
		return eventstore.Start, err
	}
	defer release()
	rctx, cancel := s.readContext(ctx)
	defer cancel()

	var from esdbclient.AllPosition = esdbclient.End{}
	var bound eventstore.Position
	bounded := false
	for {
		page, err := s.readAllRaw(rctx, esdbclient.Backwards, from, headPage)
		if err != nil {
			return eventstore.Start, s.translate("read the head", ctxErr(ctx, err))
		}
		progressed := false
		for _, re := range page {
			e := re.OriginalEvent()
			pos := toPosition(e.Position)
			if bounded && !pos.Less(bound) {
				continue // a server that reads backwards inclusively
			}
			progressed = true
			bound, bounded = pos, true
			if _, ok := s.keep(e, eventstore.Filter{}); ok {
				return pos, nil
			}
		}
		if len(page) < headPage || !progressed {
			return eventstore.Start, nil
		}
		from = esdbclient.Position{Commit: bound.Commit, Prepare: bound.Prepare}
	}
}

// ReadAll implements eventstore.Store. It reads through a catch-up
// subscription to $all with a server-side filter (the client's $all reads
// cannot filter), from From (inclusive) until the head of the log as it was
// when the read started, or Limit events. It returns ctx's error when ctx has
// ended, ErrClosed on a closed store and EUNAVAILABLE when the server cannot
// be reached.
func (s *Store) ReadAll(ctx context.Context, opts eventstore.ReadAllOptions) ([]eventstore.RecordedEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	release, err := s.enter()
	if err != nil {
		return nil, err
	}
	defer release()
	rctx, cancel := s.readContext(ctx)
	defer cancel()

	out := []eventstore.RecordedEvent{}
	full := func() bool { return opts.Limit > 0 && len(out) >= opts.Limit }
	head, any, err := s.rawHead(rctx)
	if err != nil {
		return nil, s.translate("read the log", ctxErr(ctx, err))
	}
	if !any || head.Less(opts.From) {
		return out, nil
	}
	if !opts.From.IsZero() {
		// Subscriptions start after their position: read the record at From
		// itself first.
		at, err := s.readAllRaw(rctx, esdbclient.Forwards, esdbclient.Position{Commit: opts.From.Commit, Prepare: opts.From.Prepare}, 1)
		if err != nil {
			return nil, s.translate("read the log", ctxErr(ctx, err))
		}
		if len(at) == 1 && toPosition(at[0].OriginalEvent().Position) == opts.From {
			if e, ok := s.keep(at[0].OriginalEvent(), opts.Filter); ok {
				out = append(out, e)
			}
		}
		if full() || !opts.From.Less(head) {
			return out, nil
		}
	}
	kept := len(out)
	err = s.do(rctx, func(c *esdbclient.Client) error {
		out = out[:kept]
		sub, err := c.SubscribeToAll(rctx, s.allOptions(opts.From, opts.Filter, catchUpWindow))
		if err != nil {
			return err
		}
		defer sub.Close()
		for {
			ev := sub.Recv()
			switch {
			case ev.SubscriptionDropped != nil:
				return ev.SubscriptionDropped.Error
			case ev.EventAppeared != nil:
				e := ev.EventAppeared.OriginalEvent()
				pos := toPosition(e.Position)
				if !opts.From.Less(pos) {
					continue
				}
				if r, ok := s.keep(e, opts.Filter); ok {
					out = append(out, r)
					if full() {
						return nil
					}
				}
				if !pos.Less(head) {
					return nil
				}
			case ev.CheckPointReached != nil:
				if !toPosition(*ev.CheckPointReached).Less(head) {
					return nil
				}
			case ev.CaughtUp != nil:
				return nil
			}
		}
	})
	if err != nil {
		return nil, s.translate("read the log", ctxErr(ctx, err))
	}
	return out, nil
}

// allOptions returns the options of a catch-up subscription to $all after
// position after (Start: from the beginning) with the server-side part of f
// and the given max search window.
func (s *Store) allOptions(after eventstore.Position, f eventstore.Filter, window int) esdbclient.SubscribeToAllOptions {
	o := esdbclient.SubscribeToAllOptions{
		From:               esdbclient.Start{},
		Filter:             s.serverFilter(f),
		MaxSearchWindow:    window,
		CheckpointInterval: 1,
	}
	if !after.IsZero() {
		o.From = esdbclient.Position{Commit: after.Commit, Prepare: after.Prepare}
	}
	return o
}

// systemStreams matches the names of streams that are not system streams.
const nonSystemStreams = "^[^$]"

// serverFilter returns the filter the server applies. EventStoreDB filters by
// one kind at a time: stream-name prefixes when the store has a namespace or
// f has stream prefixes (the namespace is prepended to each), otherwise event
// type prefixes when f has event types, otherwise a stream-name regular
// expression that leaves system streams out. The store applies f in full on
// its side (keep), which also turns the type prefixes into exact matches.
func (s *Store) serverFilter(f eventstore.Filter) *esdbclient.SubscriptionFilter {
	ns := s.opts.Namespace
	prefixes := f.StreamPrefixes
	if ns == "" {
		for _, p := range prefixes {
			if p == "" { // matches every stream: no use on the server
				prefixes = nil
				break
			}
		}
	}
	if ns != "" || len(prefixes) > 0 {
		var out []string
		for _, p := range prefixes {
			out = append(out, ns+p)
		}
		if len(out) == 0 {
			out = []string{ns}
		}
		return &esdbclient.SubscriptionFilter{Type: esdbclient.StreamFilterType, Prefixes: out}
	}
	if len(f.EventTypes) > 0 {
		return &esdbclient.SubscriptionFilter{Type: esdbclient.EventFilterType, Prefixes: append([]string(nil), f.EventTypes...)}
	}
	return &esdbclient.SubscriptionFilter{Type: esdbclient.StreamFilterType, Regex: nonSystemStreams}
}

// keep returns the port's view of a recorded event of $all, and false when the
// event lies outside the store's view (a system stream, another namespace) or
// does not pass f.
func (s *Store) keep(e *esdbclient.RecordedEvent, f eventstore.Filter) (eventstore.RecordedEvent, bool) {
	name := e.StreamID
	if strings.HasPrefix(name, "$") || !strings.HasPrefix(name, s.opts.Namespace) {
		return eventstore.RecordedEvent{}, false
	}
	stream := name[len(s.opts.Namespace):]
	if !f.Match(stream, e.EventType) {
		return eventstore.RecordedEvent{}, false
	}
	return convert(e, stream), true
}

// convert maps a recorded event of the client to the port's, keeping both
// parts of its position.
func convert(e *esdbclient.RecordedEvent, stream string) eventstore.RecordedEvent {
	stored, _, _ := unwrapMetadata(e.UserMetadata) // the metadata as appended, without the stream's chain
	meta := json.RawMessage(stored)
	if len(meta) == 0 {
		meta = json.RawMessage(`{}`)
	}
	data := e.Data
	if data == nil {
		data = []byte{}
	}
	return eventstore.RecordedEvent{
		ID:       e.EventID.String(),
		Stream:   stream,
		Version:  e.EventNumber,
		Type:     e.EventType,
		Position: toPosition(e.Position),
		Time:     e.CreatedDate.UTC().Truncate(time.Microsecond),
		Data:     json.RawMessage(data),
		Metadata: meta,
	}
}

func toPosition(p esdbclient.Position) eventstore.Position {
	return eventstore.Position{Commit: p.Commit, Prepare: p.Prepare}
}
