package socketadapter

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/follow"
)

// replayReader reads what recovering sessions missed. Sessions that
// recover at once (every client of a server that restarts reconnects
// within a second or two) share one read of the log: each read and decode
// of an event serves every session waiting, instead of a thousand sessions
// each reading the same stretch of the log.
type replayReader struct {
	srv *Server

	mu     sync.Mutex
	queued []*replayRequest
	// lead holds a token while nobody reads: whoever takes it reads for
	// every session queued meanwhile.
	lead chan struct{}
}

// replayRequest is one session's share of a read: the deliveries it missed
// after from, through through.
type replayRequest struct {
	sid           string
	rooms         map[socket.Room]bool
	from, through eventstore.Position

	done chan struct{} // closed once out or err is set
	out  []replayed
	err  error
	// finished is set, by the reader, when done is closed.
	finished bool
}

func newReplayReader(srv *Server) *replayReader {
	r := &replayReader{srv: srv, lead: make(chan struct{}, 1)}
	r.lead <- struct{}{}
	return r
}

// missed returns the deliveries a session in rooms missed after from,
// through through, in log order, or errTooFarBehind past
// RecoveryMaxEvents, or the log's error.
func (r *replayReader) missed(ctx context.Context, sid string, rooms map[socket.Room]bool, from, through eventstore.Position) ([]replayed, error) {
	req := &replayRequest{sid: sid, rooms: rooms, from: from, through: through, done: make(chan struct{})}
	r.mu.Lock()
	r.queued = append(r.queued, req)
	r.mu.Unlock()
	for {
		select {
		case <-req.done:
			return req.out, req.err
		case <-r.lead:
			r.readQueued()
			r.lead <- struct{}{}
		case <-ctx.Done():
			// The read it is in goes on for the others; its share is dropped.
			return nil, ctx.Err()
		}
	}
}

// readQueued reads, once, the stretch of the log that every queued session
// missed, and hands each its deliveries; a session is done as soon as the
// read has passed its end (or it missed too many). The caller holds the
// lead token.
func (r *replayReader) readQueued() {
	r.mu.Lock()
	batch := r.queued
	r.queued = nil
	r.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	srv := r.srv
	// The read serves every session in the batch, whichever of them runs
	// it: it is bounded on its own, not by that session's connect.
	ctx, cancel := context.WithTimeout(srv.ctx, srv.cfg.CommandTimeout)
	defer cancel()

	// In order of their ends, so that each is done as soon as the read
	// passes its end.
	slices.SortFunc(batch, func(a, b *replayRequest) int {
		switch {
		case a.through.Less(b.through):
			return -1
		case b.through.Less(a.through):
			return 1
		}
		return 0
	})
	from, through := batch[0].from, batch[len(batch)-1].through
	byRoom := map[socket.Room][]*replayRequest{}
	for _, q := range batch {
		if q.from.Less(from) {
			from = q.from
		}
		for room := range q.rooms {
			byRoom[room] = append(byRoom[room], q)
		}
	}
	open := len(batch)
	ended := 0 // batch[:ended] have had their end read
	finish := func(q *replayRequest, err error) {
		if q.finished {
			return
		}
		if err != nil {
			q.out, q.err = nil, err
		}
		q.finished = true
		close(q.done)
		open--
	}
	// give hands a delivery of the event at pos to the sessions it reaches.
	give := func(q *replayRequest, dl delivery, pos eventstore.Position) {
		if q.finished || !q.from.Less(pos) || q.through.Less(pos) || dl.except == q.sid {
			return
		}
		q.out = append(q.out, replayed{delivery: dl, position: pos})
		if len(q.out) > srv.cfg.RecoveryMaxEvents {
			finish(q, fmt.Errorf("%w: more than %d", errTooFarBehind, srv.cfg.RecoveryMaxEvents))
		}
	}
	filter := eventstore.Filter{EventTypes: deliveredEventTypes}
	err := func() error {
		for cursor := from; cursor.Less(through) && open > 0; {
			recs, err := srv.feed.ReadAll(ctx, eventstore.ReadAllOptions{From: cursor, Limit: replayPage, Filter: filter})
			if err != nil {
				return err
			}
			events, err := follow.Decode(skipThrough(recs, cursor))
			if err != nil {
				return err
			}
			for _, e := range events {
				if through.Less(e.Position) {
					return nil
				}
				for _, dl := range deliveries(e.Event) {
					if dl.to == "" {
						for _, q := range batch {
							give(q, dl, e.Position)
						}
						continue
					}
					for _, q := range byRoom[dl.to] {
						give(q, dl, e.Position)
					}
				}
				for ; ended < len(batch) && !e.Position.Less(batch[ended].through); ended++ {
					finish(batch[ended], nil) // the read has reached its end
				}
			}
			if len(recs) < replayPage {
				return nil
			}
			cursor = recs[len(recs)-1].Position
		}
		return nil
	}()
	for _, q := range batch {
		finish(q, err)
	}
}
