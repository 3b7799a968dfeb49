package main

import (
	"time"

	"github.com/auraos/realtime/cmd/auraos/eventfilter"
	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
)

// What `events read` selects beyond what the store filters.
//
// The store's read does what its port offers and its indexes serve: the
// position range (--from; the primary key), the stream prefix and the
// types, so pages hold only those rows. --until POSITION ends the read
// there. Everything else is decided here, on each event of the one pass:
// the metadata and data are JSON kept byte for byte without an index, so a
// SQL predicate on them would scan anyway, would need each dialect's JSON
// functions, and could not run on EventStoreDB at all; commit times have no
// index either, and since a clock may step back they do not bound the scan
// (--from does). Checks run cheapest first; the user and correlation checks
// are package eventfilter's, which the /console event log shares.

// eventSelection is the --user, --correlation, --since and --until part of
// `events read`.
type eventSelection struct {
	ids   eventfilter.IDs // --user and --correlation
	since time.Time
	until bound
}

// untilGrace is how long after an --until TIME a --follow keeps waiting:
// an event is stamped with its commit time before the commit completes, so
// one stamped just before TIME can become readable a moment after it.
const untilGrace = 5 * time.Second

// newEventSelection reads the flags. It returns EINVALID errors naming the
// flag for a bad time or position, an empty id, or --since after --until.
func newEventSelection(o eventsReadOptions) (eventSelection, error) {
	var s eventSelection
	var err error
	if o.since != "" {
		if s.since, err = parseTime("--since", o.since); err != nil {
			return s, err
		}
	}
	if o.until != "" {
		if s.until, err = parseBound("--until", o.until); err != nil {
			return s, err
		}
		if s.until.byTime && !s.since.IsZero() && s.until.time.Before(s.since) {
			return s, domain.Errorf(domain.EINVALID, "--since %s is after --until %s", o.since, o.until)
		}
	}
	for _, id := range []struct {
		flag, value string
		set         bool
	}{{"--user", o.user, o.userSet}, {"--correlation", o.correlation, o.correlationSet}} {
		if id.set && id.value == "" {
			return s, domain.Errorf(domain.EINVALID, "%s needs an id", id.flag)
		}
	}
	s.ids = eventfilter.New(o.user, o.correlation)
	return s, nil
}

// beyond reports whether e lies past --until POSITION, where the read ends.
func (s eventSelection) beyond(p eventstore.Position) bool {
	return s.until.set && !s.until.byTime && s.until.position.Less(p)
}

// reached reports whether a --follow that has read the log through p has
// passed --until POSITION.
func (s eventSelection) reached(p eventstore.Position) bool {
	return s.until.set && !s.until.byTime && !p.Less(s.until.position)
}

// lateCommit reports whether e was committed after --until TIME. Live
// commits are stamped as they happen, so once one is, a --follow is done.
func (s eventSelection) lateCommit(e eventstore.RecordedEvent) bool {
	return s.until.byTime && e.Time.After(s.until.time)
}

// followDeadline is when a --follow with --until TIME stops waiting for
// more, and whether there is one.
func (s eventSelection) followDeadline() (time.Time, bool) {
	if !s.until.set || !s.until.byTime {
		return time.Time{}, false
	}
	return s.until.time.Add(untilGrace), true
}

// match reports whether e passes --since, --until, --correlation and --user.
func (s eventSelection) match(e eventstore.RecordedEvent) bool {
	if !s.since.IsZero() && e.Time.Before(s.since) {
		return false
	}
	if s.beyond(e.Position) || s.lateCommit(e) {
		return false
	}
	return s.ids.Match(e)
}
