// Package commands turns client intents into stored domain events: one
// handler per command validates through the domain's decision functions,
// loads what it needs, and appends with the right expected version and
// deterministic event ids, so a retried command stores nothing twice.
//
// Every event carries metadata naming who caused it (user, socket, node),
// the command and a correlation id.
package commands

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
)

// EventStore is what the handlers need of the event store.
type EventStore interface {
	Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events ...eventstore.EventData) (eventstore.AppendResult, error)
	ReadStream(ctx context.Context, stream string, opts eventstore.ReadStreamOptions) ([]eventstore.RecordedEvent, error)
}

// Clock returns the current time; handlers stamp events with it.
type Clock func() time.Time

// IDGenerator returns a new unique event id (a canonical UUID).
type IDGenerator func() string

// Deps are the dependencies every handler takes.
type Deps struct {
	Store EventStore
	Now   Clock
	NewID IDGenerator
}

// Cause says who and what caused a command: the actor, the client event's
// name, and a correlation id unique to that client event (the adapter makes
// one per inbound event). Event ids derive from the correlation id, so
// running the same command twice stores its events once.
type Cause struct {
	Actor         domain.Actor
	Command       string
	CorrelationID string
	CausationID   string
}

func (c Cause) metadata(actor domain.Actor) json.RawMessage {
	m, _ := json.Marshal(domain.Metadata{
		UserID: actor.UserID, SocketID: actor.SessionID, NodeID: actor.NodeID,
		Command: c.Command, CorrelationID: c.CorrelationID, CausationID: c.CausationID,
	})
	return m
}

// eventID derives the id of the n-th event of a given type that this cause
// stores. It sorts by the time of the correlation id.
func (c Cause) eventID(eventType string, n int) string {
	return eventstore.OrderedNameID(c.CorrelationID, eventType, strconv.Itoa(n))
}

// encode turns a domain event into event data with the given id and the
// cause's metadata.
func encode(e domain.Event, id string, c Cause, actor domain.Actor) (eventstore.EventData, error) {
	data, err := json.Marshal(e)
	if err != nil {
		return eventstore.EventData{}, domain.WrapError(domain.EINTERNAL, "encode event", err)
	}
	return eventstore.EventData{ID: id, Type: e.EventType(), Data: data, Metadata: c.metadata(actor)}, nil
}

// Stored is where a command's last event landed in the log; callers wait for
// projections to reach it before reading their own writes.
type Stored struct {
	Position eventstore.Position
}

// appendOne encodes and appends one event to its stream.
func appendOne(ctx context.Context, store EventStore, e domain.Event, id string, expected eventstore.ExpectedVersion, c Cause, actor domain.Actor) (eventstore.Position, error) {
	data, err := encode(e, id, c, actor)
	if err != nil {
		return eventstore.Start, err
	}
	res, err := store.Append(ctx, e.Stream(), expected, data)
	if err != nil {
		return eventstore.Start, err
	}
	return res.LastPosition(), nil
}
