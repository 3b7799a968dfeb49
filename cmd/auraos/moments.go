package main

import (
	"strings"
	"time"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
)

// Moments the auditor's flags name: RFC 3339 times and log positions.

// parseTime reads the RFC 3339 time given to flag (fractional seconds and
// any offset allowed: 2026-11-27T10:00:00Z, 2026-11-27T11:00:00.5+01:00). It
// returns an EINVALID error naming the flag for anything else.
func parseTime(flag, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(s))
	if err != nil {
		return time.Time{}, domain.Errorf(domain.EINVALID, "%s %q: want an RFC 3339 time such as 2026-11-27T10:00:00Z", flag, s)
	}
	return t, nil
}

// parsePosition reads the log position given to flag (N, or C/P for
// EventStoreDB). It returns an EINVALID error naming the flag.
func parsePosition(flag, s string) (eventstore.Position, error) {
	p, err := eventstore.ParsePosition(s)
	if err != nil {
		return eventstore.Start, domain.Errorf(domain.EINVALID, "%s %q: want a log position (a number, or commit/prepare)", flag, s)
	}
	return p, nil
}

// bound is an inclusive upper bound on the log: a position or a commit
// time; the zero bound bounds nothing.
type bound struct {
	position eventstore.Position
	time     time.Time
	set      bool
	byTime   bool
}

// parseBound reads the TIME or POSITION given to flag: a position when it
// reads as one, else an RFC 3339 time. It returns an EINVALID error naming
// the flag for neither.
func parseBound(flag, s string) (bound, error) {
	if p, err := eventstore.ParsePosition(s); err == nil {
		return bound{position: p, set: true}, nil
	}
	t, err := parseTime(flag, s)
	if err != nil {
		return bound{}, domain.Errorf(domain.EINVALID, "%s %q: want a log position (a number) or an RFC 3339 time such as 2026-11-27T11:00:00Z", flag, s)
	}
	return bound{time: t, set: true, byTime: true}, nil
}
