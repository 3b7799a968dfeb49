package eventstore

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/auraos/realtime/domain"
)

type expectation uint8

const (
	expectAny expectation = iota
	expectNoStream
	expectStreamExists
	expectExact
)

// ExpectedVersion is the optimistic-concurrency condition of an Append: Any,
// NoStream (the stream has no events), StreamExists (it has at least one) or
// Exact(v) (its last event has version v).
type ExpectedVersion struct {
	kind    expectation
	version uint64
}

var (
	// Any accepts the stream in any state.
	Any = ExpectedVersion{kind: expectAny}
	// NoStream requires that the stream has no events.
	NoStream = ExpectedVersion{kind: expectNoStream}
	// StreamExists requires that the stream has at least one event.
	StreamExists = ExpectedVersion{kind: expectStreamExists}
)

// Exact requires that the stream's last event has version v (0-based).
func Exact(v uint64) ExpectedVersion { return ExpectedVersion{kind: expectExact, version: v} }

// IsAny, IsNoStream, IsStreamExists report the kind of e; Version returns the
// version of an Exact expectation and whether e is one. Adapters to other
// stores use them to translate.
func (e ExpectedVersion) IsAny() bool { return e.kind == expectAny }

// IsNoStream reports whether e is NoStream.
func (e ExpectedVersion) IsNoStream() bool { return e.kind == expectNoStream }

// IsStreamExists reports whether e is StreamExists.
func (e ExpectedVersion) IsStreamExists() bool { return e.kind == expectStreamExists }

// Version returns the version of an Exact expectation and true, or 0 and
// false for the other kinds.
func (e ExpectedVersion) Version() (uint64, bool) { return e.version, e.kind == expectExact }

// Allows reports whether a stream whose last version is current (-1 when it
// has no events) satisfies e.
func (e ExpectedVersion) Allows(current int64) bool {
	switch e.kind {
	case expectNoStream:
		return current < 0
	case expectStreamExists:
		return current >= 0
	case expectExact:
		return current >= 0 && uint64(current) == e.version
	default:
		return true
	}
}

// String names e: "any", "no stream", "stream exists" or the version.
func (e ExpectedVersion) String() string {
	switch e.kind {
	case expectNoStream:
		return "no stream"
	case expectStreamExists:
		return "stream exists"
	case expectExact:
		return strconv.FormatUint(e.version, 10)
	default:
		return "any"
	}
}

// ErrWrongExpectedVersion matches, through errors.Is, every
// *WrongExpectedVersionError.
var ErrWrongExpectedVersion = errors.New("wrong expected version")

// ErrDuplicateEventID is returned when an append reuses event ids that are
// stored in another stream, or when only some of its ids are stored already.
// The SQL stores always detect an id stored in another stream; EventStoreDB,
// which has no index of event ids, detects it only for ids the same process
// appended. Callers derive ids from their stream's identity, so this is a
// safety net, not a guarantee they rely on.
var ErrDuplicateEventID = &domain.Error{Code: domain.ECONFLICT, Message: "event id already stored elsewhere"}

// WrongExpectedVersionError reports a failed concurrency check: the stream,
// what the append expected, and the stream's actual last version (-1 when it
// has no events). Its code is ECONFLICT.
type WrongExpectedVersionError struct {
	Stream   string
	Expected ExpectedVersion
	Actual   int64
}

// Error describes the conflict.
func (e *WrongExpectedVersionError) Error() string {
	actual := "no stream"
	if e.Actual >= 0 {
		actual = strconv.FormatInt(e.Actual, 10)
	}
	return fmt.Sprintf("wrong expected version on stream %q: expected %s, actual %s", e.Stream, e.Expected, actual)
}

// Is makes errors.Is(err, ErrWrongExpectedVersion) true.
func (e *WrongExpectedVersionError) Is(target error) bool { return target == ErrWrongExpectedVersion }

// Unwrap exposes an ECONFLICT *domain.Error so domain.ErrorCode reports
// ECONFLICT.
func (e *WrongExpectedVersionError) Unwrap() error {
	return &domain.Error{Code: domain.ECONFLICT, Message: e.Error()}
}
