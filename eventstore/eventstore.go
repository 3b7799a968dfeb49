// Package eventstore is the port every event store implements: append to a
// stream under an expected version, read a stream or the whole log, and
// subscribe to the log from a checkpoint. The contract is exercised for every
// implementation by the suite in eventstore/storetest.
package eventstore

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/auraos/realtime/domain"
)

// Limits every store enforces identically, so that an event accepted by one
// store is accepted by all.
const (
	// MaxStreamLength is the longest stream name, in bytes.
	MaxStreamLength = 1024
	// MaxTypeLength is the longest event type, in bytes.
	MaxTypeLength = 256
	// MaxEventsPerAppend is the most events one Append may carry.
	MaxEventsPerAppend = 10000
)

// Position is a place in the global log. Positions of stored events grow
// strictly in commit order. SQL stores use one counter and set Commit and
// Prepare to the same value; EventStoreDB keeps both parts of its log
// position. The zero Position lies before every event.
type Position struct {
	Commit  uint64
	Prepare uint64
}

// Start is the position before the first event of the log.
var Start = Position{}

// Pos returns the Position whose parts are both n, as SQL stores use.
func Pos(n uint64) Position { return Position{Commit: n, Prepare: n} }

// Less reports whether p comes before q in the log.
func (p Position) Less(q Position) bool {
	if p.Commit != q.Commit {
		return p.Commit < q.Commit
	}
	return p.Prepare < q.Prepare
}

// IsZero reports whether p is Start.
func (p Position) IsZero() bool { return p == Start }

// String formats p as "N" when both parts agree and "C/P" otherwise;
// ParsePosition reads both forms.
func (p Position) String() string {
	if p.Commit == p.Prepare {
		return strconv.FormatUint(p.Commit, 10)
	}
	return strconv.FormatUint(p.Commit, 10) + "/" + strconv.FormatUint(p.Prepare, 10)
}

// ParsePosition parses the output of Position.String. It returns an EINVALID
// error for anything else.
func ParsePosition(s string) (Position, error) {
	commit, prepare, two := strings.Cut(strings.TrimSpace(s), "/")
	c, err := strconv.ParseUint(commit, 10, 64)
	if err != nil {
		return Start, domain.Errorf(domain.EINVALID, "position %q is not a number or commit/prepare pair", s)
	}
	if !two {
		return Pos(c), nil
	}
	p, err := strconv.ParseUint(prepare, 10, 64)
	if err != nil {
		return Start, domain.Errorf(domain.EINVALID, "position %q is not a number or commit/prepare pair", s)
	}
	return Position{Commit: c, Prepare: p}, nil
}

// EventData is an event to append. ID must be a UUID in its canonical
// lower-case form; callers derive it deterministically (see NameID) when a
// retried command must not store twice, and may leave it empty to have the
// store generate a random one. Data and Metadata must be JSON; empty Metadata
// is stored as {}.
type EventData struct {
	ID       string
	Type     string
	Data     json.RawMessage
	Metadata json.RawMessage
}

// RecordedEvent is a stored event. Version is its 0-based revision within its
// stream; Position is its place in the global log; Time is when the store
// committed it (UTC, microsecond precision).
type RecordedEvent struct {
	ID       string
	Stream   string
	Version  uint64
	Type     string
	Position Position
	Time     time.Time
	Data     json.RawMessage
	Metadata json.RawMessage
}

// AppendResult says what an Append stored: the stream's version after it and
// the global position of each appended event, in order. An idempotent repeat
// returns the result of the original append.
type AppendResult struct {
	StreamVersion uint64
	Positions     []Position
}

// LastPosition returns the position of the last appended event, or Start when
// nothing was appended.
func (r AppendResult) LastPosition() Position {
	if len(r.Positions) == 0 {
		return Start
	}
	return r.Positions[len(r.Positions)-1]
}

// Direction is the order of a stream read.
type Direction int

// The two read directions.
const (
	Forwards Direction = iota
	Backwards
)

// End, as the From of a backwards stream read, starts at the stream's last
// event.
const End = ^uint64(0)

// ReadStreamOptions selects events of one stream: starting at version From
// (inclusive) and going in Direction, at most Limit events (0 means no
// limit).
type ReadStreamOptions struct {
	Direction Direction
	From      uint64
	Limit     int
}

// Filter selects events of the global log. An event passes when its stream
// starts with one of StreamPrefixes (or the list is empty) and its type is one
// of EventTypes (or the list is empty).
type Filter struct {
	StreamPrefixes []string
	EventTypes     []string
}

// IsEmpty reports whether f lets every event through.
func (f Filter) IsEmpty() bool { return len(f.StreamPrefixes) == 0 && len(f.EventTypes) == 0 }

// Match reports whether e passes f.
func (f Filter) Match(stream, eventType string) bool {
	if len(f.StreamPrefixes) > 0 {
		ok := false
		for _, p := range f.StreamPrefixes {
			if strings.HasPrefix(stream, p) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if len(f.EventTypes) > 0 {
		for _, t := range f.EventTypes {
			if t == eventType {
				return true
			}
		}
		return false
	}
	return true
}

// ReadAllOptions selects events of the global log at or after From (inclusive),
// passing Filter, at most Limit of them (0 means no limit).
type ReadAllOptions struct {
	From   Position
	Limit  int
	Filter Filter
}

// SubscribeOptions starts a subscription after the checkpoint After
// (exclusive; Start means from the beginning) and delivers only events that
// pass Filter. BatchSize caps the events of one Batch (0: the store's default).
type SubscribeOptions struct {
	After     Position
	Filter    Filter
	BatchSize int
}

// Batch is what Subscription.Next returns: events in strictly increasing
// position order, the position the subscription has read through (a checkpoint
// that may lie past the last event when a filter skipped events), and whether
// this batch brought the subscription to the head of the log. While catching
// up, a store may deliver full batches only and move Through with them.
type Batch struct {
	Events   []RecordedEvent
	Through  Position
	CaughtUp bool
}

// Subscription delivers the log after a checkpoint: first what is stored
// (catch-up), then new events as they commit (live). Every event that passes
// the filter is delivered exactly once, in strictly increasing position order,
// even under concurrent writers.
type Subscription interface {
	// Next blocks until it has events to deliver, until its checkpoint moves
	// past events the filter left out (then it returns an empty batch whose
	// Through moved, so a consumer's checkpoint keeps up with the log), or
	// until the subscription first reaches the head (then it returns a batch
	// with CaughtUp set, which may be empty). It returns ctx's error when ctx
	// ends, and an EUNAVAILABLE error when the store is closed or
	// unreachable; the subscription may then be resumed with a new Subscribe
	// from the last Through. After ctx's error, Next may be called again with
	// another context and carries on where it was.
	Next(ctx context.Context) (Batch, error)
	// Close releases the subscription. It is safe to call more than once.
	Close() error
}

// Store is the event store port.
//
// Errors: validation problems are EINVALID *domain.Error values; a failed
// concurrency check is a *WrongExpectedVersionError (errors.Is
// ErrWrongExpectedVersion, code ECONFLICT); an event id stored in another
// stream, or only some of an append's ids stored, is ErrDuplicateEventID
// (ECONFLICT); a closed store or an unreachable backend is EUNAVAILABLE. A
// failed Append stores nothing.
type Store interface {
	// Append stores events at the end of stream if the stream's state matches
	// expected, atomically, and returns only once they are durable. If every
	// event id is already stored in this stream (a retried append), it stores
	// nothing and returns the original result.
	Append(ctx context.Context, stream string, expected ExpectedVersion, events ...EventData) (AppendResult, error)
	// ReadStream returns events of one stream; a stream that does not exist
	// reads as empty.
	ReadStream(ctx context.Context, stream string, opts ReadStreamOptions) ([]RecordedEvent, error)
	// ReadAll returns events of the global log in position order.
	ReadAll(ctx context.Context, opts ReadAllOptions) ([]RecordedEvent, error)
	// Subscribe starts a catch-up-then-live subscription.
	Subscribe(ctx context.Context, opts SubscribeOptions) (Subscription, error)
	// Head returns the position of the last stored event, or Start.
	Head(ctx context.Context) (Position, error)
	// Close stops the store: appends waiting to commit fail with EUNAVAILABLE,
	// appends in flight finish first, and subscriptions end.
	Close() error
}

// ValidateAppend checks an append's arguments against the port's rules and
// fills in generated ids and default metadata. Stores call it before touching
// storage; it returns EINVALID errors.
func ValidateAppend(stream string, events []EventData, newID func() string) error {
	if err := ValidateStream(stream); err != nil {
		return err
	}
	if len(events) == 0 {
		return domain.Errorf(domain.EINVALID, "append to %q carries no events", stream)
	}
	if len(events) > MaxEventsPerAppend {
		return domain.Errorf(domain.EINVALID, "append carries %d events, more than %d", len(events), MaxEventsPerAppend)
	}
	seen := make(map[string]struct{}, len(events))
	for i := range events {
		e := &events[i]
		if e.ID == "" {
			e.ID = newID()
		} else if !IsUUID(e.ID) {
			return domain.Errorf(domain.EINVALID, "event %d: id %q is not a canonical lower-case UUID", i, e.ID)
		}
		if _, dup := seen[e.ID]; dup {
			return domain.Errorf(domain.EINVALID, "event %d: id %s appears twice in one append", i, e.ID)
		}
		seen[e.ID] = struct{}{}
		if e.Type == "" || len(e.Type) > MaxTypeLength || !utf8.ValidString(e.Type) {
			return domain.Errorf(domain.EINVALID, "event %d: type must be 1-%d bytes of UTF-8", i, MaxTypeLength)
		}
		if len(e.Data) == 0 || !json.Valid(e.Data) || !utf8.Valid(e.Data) {
			return domain.Errorf(domain.EINVALID, "event %d (%s): data is not valid JSON", i, e.Type)
		}
		if len(e.Metadata) == 0 {
			e.Metadata = json.RawMessage(`{}`)
		} else if !json.Valid(e.Metadata) || !utf8.Valid(e.Metadata) {
			return domain.Errorf(domain.EINVALID, "event %d (%s): metadata is not valid JSON", i, e.Type)
		}
	}
	return nil
}

// ValidateStream checks a stream name: 1 to MaxStreamLength bytes of UTF-8
// without control characters, not starting with "$" (EventStoreDB reserves
// those for system streams, and every store accepts the same names). It
// returns an EINVALID error.
func ValidateStream(stream string) error {
	if stream == "" || len(stream) > MaxStreamLength || !utf8.ValidString(stream) {
		return domain.Errorf(domain.EINVALID, "stream name must be 1-%d bytes of UTF-8", MaxStreamLength)
	}
	if stream[0] == '$' {
		return domain.Errorf(domain.EINVALID, "stream name %q starts with $, which marks system streams", stream)
	}
	for _, r := range stream {
		if r < 0x20 || r == 0x7f {
			return domain.Errorf(domain.EINVALID, "stream name %q contains a control character", stream)
		}
	}
	return nil
}

// ErrClosed is returned by every operation on a closed store.
var ErrClosed = domain.Errorf(domain.EUNAVAILABLE, "event store is closed")

// Unavailable wraps a backend failure (lost connection, full disk, I/O error)
// as an EUNAVAILABLE error whose message says what failed, for callers and
// logs, while keeping the cause for errors.Is.
func Unavailable(what string, cause error) error {
	return domain.WrapError(domain.EUNAVAILABLE, "event store unavailable: "+what, cause)
}

// Submitter is implemented by stores that accept an append and report its
// outcome later. Appends that one goroutine submits one after another are
// stored in that order, so a caller can keep several appends in flight
// without reordering them.
type Submitter interface {
	Submit(ctx context.Context, stream string, expected ExpectedVersion, events ...EventData) *Pending
}

// Pending is the outcome of a submitted append.
type Pending struct {
	done      chan struct{}
	res       AppendResult
	err       error
	mu        sync.Mutex
	resolved  bool
	callbacks []func(AppendResult, error)
}

// NewPending returns a Pending that Resolve completes.
func NewPending() *Pending { return &Pending{done: make(chan struct{})} }

// Resolved returns a Pending that is already complete.
func Resolved(res AppendResult, err error) *Pending {
	p := NewPending()
	p.Resolve(res, err)
	return p
}

// Resolve completes p and runs the OnDone callbacks. It must be called once.
// Wait returns after the callbacks have run, so what they record (a
// reading remembered, say) is there for whoever waited.
func (p *Pending) Resolve(res AppendResult, err error) {
	p.mu.Lock()
	p.res, p.err, p.resolved = res, err, true
	callbacks := p.callbacks
	p.callbacks = nil
	p.mu.Unlock()
	for _, f := range callbacks {
		f(res, err)
	}
	close(p.done)
}

// OnDone calls f with the outcome when it is known (at once if it already
// is), on the goroutine that resolves p: f must be quick and must not block.
func (p *Pending) OnDone(f func(AppendResult, error)) {
	p.mu.Lock()
	if !p.resolved {
		p.callbacks = append(p.callbacks, f)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	f(p.res, p.err)
}

// Wait returns the append's outcome, or ctx's error when ctx ends first (the
// append may still be stored; a retry with the same ids is answered
// idempotently).
func (p *Pending) Wait(ctx context.Context) (AppendResult, error) {
	select {
	case <-p.done:
		return p.res, p.err
	case <-ctx.Done():
		return AppendResult{}, ctx.Err()
	}
}

// Appender is the part of a Store that SubmitAppend needs.
type Appender interface {
	Append(ctx context.Context, stream string, expected ExpectedVersion, events ...EventData) (AppendResult, error)
}

// SubmitAppend submits an append through s when s is a Submitter, and
// otherwise appends at once (which keeps the order too, without the
// pipelining).
func SubmitAppend(ctx context.Context, s Appender, stream string, expected ExpectedVersion, events ...EventData) *Pending {
	if sub, ok := s.(Submitter); ok {
		return sub.Submit(ctx, stream, expected, events...)
	}
	return Resolved(s.Append(ctx, stream, expected, events...))
}
