package chain

import (
	"fmt"

	"github.com/auraos/realtime/domain"
)

// Verifier checks a log's chain event by event, in position order, and
// remembers where it first broke. The zero Verifier is not ready: use
// NewVerifier.
type Verifier struct {
	hasher  *Hasher
	prev    Hash   // the recomputed hash of the last event checked
	last    uint64 // the position of the last event checked
	count   uint64
	expect  *Anchor
	matched bool
	broken  *BreakError
}

// Anchor is a head recorded earlier: the log must still hold an event at
// Position whose hash is Hash.
type Anchor struct {
	Position uint64
	Hash     Hash
}

// String formats a as POSITION:HASH, the form ParseAnchor reads.
func (a Anchor) String() string { return fmt.Sprintf("%d:%s", a.Position, a.Hash) }

// ParseAnchor reads POSITION:HASH (a decimal position, 64 hexadecimal
// digits). It returns an EINVALID *domain.Error for anything else.
func ParseAnchor(s string) (Anchor, error) {
	var a Anchor
	var pos, hexHash string
	for i := 0; i < len(s); i++ {
		if s[i] == ':' {
			pos, hexHash = s[:i], s[i+1:]
			break
		}
	}
	if pos == "" || hexHash == "" {
		return a, domain.Errorf(domain.EINVALID, "%q is not POSITION:HASH (a position, a colon and 64 hexadecimal digits)", s)
	}
	for _, c := range pos {
		if c < '0' || c > '9' {
			return a, domain.Errorf(domain.EINVALID, "%q is not POSITION:HASH: the position %q is not a number", s, pos)
		}
		a.Position = a.Position*10 + uint64(c-'0')
		if a.Position > 1<<62 {
			return a, domain.Errorf(domain.EINVALID, "%q is not POSITION:HASH: the position %q is too large", s, pos)
		}
	}
	if a.Position == 0 {
		return a, domain.Errorf(domain.EINVALID, "%q is not POSITION:HASH: positions start at 1", s)
	}
	h, err := ParseHash(hexHash)
	if err != nil {
		return a, domain.Errorf(domain.EINVALID, "%q is not POSITION:HASH: %s", s, domain.ErrorMessage(err))
	}
	a.Hash = h
	return a, nil
}

// NewVerifier returns a Verifier at the start of a log. With expect set, Err
// also fails unless the log holds an event at expect.Position with that hash.
func NewVerifier(expect *Anchor) *Verifier {
	return &Verifier{hasher: NewHasher(), expect: expect}
}

// BreakError says where and how a chain breaks. Its code is ECONFLICT: the
// log is not what was appended.
type BreakError struct {
	// Position is the first position at which the log differs from what was
	// appended: the edited, inserted or moved event, or the first of the
	// deleted ones.
	Position uint64
	// Reason says what was found there, for people.
	Reason string
}

func (e *BreakError) Error() string {
	return fmt.Sprintf("the chain breaks at position %d: %s", e.Position, e.Reason)
}

// Coded returns e as the application's coded error (ECONFLICT), keeping e
// as its cause.
func (e *BreakError) Coded() *domain.Error {
	return domain.WrapError(domain.ECONFLICT, "event log tampered with", e)
}

// Add checks the next event of the log, whose stored hash is stored (nil or
// of the wrong length when the row has none). It returns false once the
// chain is broken (at this event or before); Err then says where.
func (v *Verifier) Add(e *Event, stored []byte) bool {
	if v.broken != nil {
		return false
	}
	if e.Position <= v.last {
		v.broken = &BreakError{Position: e.Position, Reason: fmt.Sprintf("it comes after position %d (events out of order)", v.last)}
		return false
	}
	v.checkExpectGap(e.Position)
	got := v.hasher.Next(v.prev, e)
	want, ok := FromBytes(stored)
	switch {
	case !ok:
		v.broken = &BreakError{Position: e.Position, Reason: "the event has no hash (inserted behind the store's back, or written by a release without the chain)"}
	case got != want && e.Position > v.last+1:
		v.broken = &BreakError{Position: v.last + 1, Reason: fmt.Sprintf("positions %d to %d are missing and the event at %d does not follow %d (events deleted, or the event at %d edited)",
			v.last+1, e.Position-1, e.Position, v.last, e.Position)}
	case got != want:
		v.broken = &BreakError{Position: e.Position, Reason: "the event does not match its hash (edited, inserted, moved, or an event before it deleted)"}
	}
	if v.broken != nil {
		return false
	}
	if v.expect != nil && e.Position == v.expect.Position {
		if got != v.expect.Hash {
			v.broken = &BreakError{Position: e.Position, Reason: fmt.Sprintf("its hash is %s, not the expected %s (the log was rewritten up to here)", got, v.expect.Hash)}
			return false
		}
		v.matched = true
	}
	v.prev, v.last = got, e.Position
	v.count++
	return true
}

// checkExpectGap breaks the chain when the log skipped the expected
// position.
func (v *Verifier) checkExpectGap(next uint64) {
	if v.expect != nil && !v.matched && v.expect.Position > v.last && v.expect.Position < next {
		v.broken = &BreakError{Position: v.expect.Position, Reason: "the expected position is not in the log (deleted)"}
	}
}

// Count returns how many events passed.
func (v *Verifier) Count() uint64 { return v.count }

// Head returns the position and hash of the last event that passed (zero
// for an empty log).
func (v *Verifier) Head() Anchor { return Anchor{Position: v.last, Hash: v.prev} }

// Err returns nil when every event added so far chains and the expected
// anchor, if any, was found; a *BreakError otherwise. Call it after the last
// event.
func (v *Verifier) Err() error {
	if v.broken != nil {
		return v.broken
	}
	if v.expect != nil && !v.matched {
		return &BreakError{Position: v.expect.Position, Reason: fmt.Sprintf("the expected position is not in the log, which ends at %d (deleted or truncated)", v.last)}
	}
	return nil
}
