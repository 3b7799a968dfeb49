package follow

import (
	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/internal/recent"
)

// Every follower of a server decodes the chat messages it reads: the live
// feed, the chat-history and online-users read models and the AI assistant
// all read each MessagePosted, within a batch or two of each other. The
// followers of a process share one decoding of each: decodeShared keeps the
// recent decoded messages by position (internal/recent), and hands one out only for the very
// bytes it was decoded from (so a reading that changed meanwhile, a
// forgotten user's now erased fields say, is decoded afresh). A
// UserForgotten decoded by any follower empties it, so that it does not
// hold a forgotten user's clear fields once the process knows of the
// forget. Only MessagePosted is shared: it is a value every handler only
// reads.

// sharedSize and sharedBytes bound the decoded messages kept (a couple of
// 500-event batches, and at most 1 MiB of the bytes they were decoded from).
const (
	sharedSize  = 1024
	sharedBytes = 1 << 20
)

// shared is the process's recent decoded messages.
var shared = recent.New[domain.Event](sharedSize, sharedBytes)

// decodeShared decodes rec as domain.Decode does, sharing the decoding of a
// MessagePosted with the other followers of this process.
func decodeShared(rec eventstore.RecordedEvent) (domain.Event, error) {
	switch rec.Type {
	case domain.TypeMessagePosted:
	case domain.TypeUserForgotten:
		shared.Forget()
		return domain.Decode(rec.Type, rec.Data)
	default:
		return domain.Decode(rec.Type, rec.Data)
	}
	ev, ok, gen := shared.Lookup(rec)
	if ok {
		return ev, nil
	}
	ev, err := domain.Decode(rec.Type, rec.Data)
	if err == nil {
		shared.Remember(rec, ev, 0, gen)
	}
	return ev, err
}
