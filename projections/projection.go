// Package projections folds the event log into read models — online users,
// chat history, app status — and answers the queries the Socket.IO adapter
// needs. Each projection has a name and a version; a runner applies events to
// its tables in batches and writes its checkpoint in the same transaction,
// so replays are exactly-once in effect. Projections take time from events,
// never from the clock, so a rebuild produces exactly the rows that live
// processing produced. Rebuilds build beside the live tables and swap when
// caught up.
package projections

import (
	"context"

	"github.com/uptrace/bun"

	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/follow"
)

// Projection folds events into its read-model tables.
type Projection interface {
	// Name identifies the projection and its checkpoint.
	Name() string
	// Version changes whenever the projection's rows would come out
	// differently; a changed version means rebuild.
	Version() int
	// Tables are the read-model tables it owns (see schema.ReadModelTables).
	Tables() []string
	// EventTypes are the event types it reads.
	EventTypes() []string
	// Apply folds events, in log order, into the tables named by t, inside
	// tx. It must be deterministic: the same events give the same rows.
	Apply(ctx context.Context, tx bun.Tx, t Tables, events []Envelope) error
}

// Deferring is implemented by a projection that can keep some effects of
// the events it applied in memory, to write them later in one go. A rebuild
// applies every batch of its catch-up with one Applier and flushes it once,
// when caught up, before the swap: effects that later batches supersede
// (online-users moving lastSeen with each message) are written once, not
// once a batch. Apply must give exactly the rows of an Applier's Apply
// and Flush of the same events.
type Deferring interface {
	// Deferred returns an Applier to the tables named by t.
	Deferred(t Tables) Applier
}

// Applier applies events to the tables of one projection, possibly keeping
// some effects pending until Flush. The pending effects must commute with
// the events that can follow them: an Applier writes them itself before an
// event that needs them.
type Applier interface {
	// Apply folds events, in log order, inside tx.
	Apply(ctx context.Context, tx bun.Tx, events []Envelope) error
	// Flush writes the pending effects inside tx.
	Flush(ctx context.Context, tx bun.Tx) error
}

// Tables maps a projection's table names to the physical tables it writes:
// the live tables, or the copies a rebuild fills.
type Tables struct {
	suffix string
}

// Live names the live tables.
var Live = Tables{}

// rebuildSuffix marks the tables and checkpoint of a rebuild in progress.
const rebuildSuffix = "__rebuild"

// Rebuilding names the tables a rebuild fills.
var Rebuilding = Tables{suffix: rebuildSuffix}

// Name returns the physical name of table.
func (t Tables) Name(table string) string { return table + t.suffix }

// Ident returns the physical name of table as a bun identifier for queries.
func (t Tables) Ident(table string) bun.Ident { return bun.Ident(t.Name(table)) }

// Envelope is a stored event with its decoded domain event, as the log
// follower hands it to projections.
type Envelope = follow.Envelope

// EventLog is what projections need of the event store: to follow it, to
// read it and to know its head.
type EventLog interface {
	follow.Log
	ReadAll(ctx context.Context, opts eventstore.ReadAllOptions) ([]eventstore.RecordedEvent, error)
	Head(ctx context.Context) (eventstore.Position, error)
}

// All returns the application's projections, in the order they are run.
func All() []Projection {
	return []Projection{OnlineUsers{}, ChatHistory{}, AppStatus{}}
}

// ByName returns the projections named, or all of them for no names. It
// returns an error naming an unknown projection.
func ByName(names ...string) ([]Projection, error) {
	if len(names) == 0 {
		return All(), nil
	}
	var out []Projection
	for _, n := range names {
		found := false
		for _, p := range All() {
			if p.Name() == n {
				out = append(out, p)
				found = true
			}
		}
		if !found {
			return nil, unknownProjection(n)
		}
	}
	return out, nil
}
