package socketadapter

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/auraos/realtime/commands"
	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
)

// unrecoverableReasons are the disconnects after which a client does not
// come back for its session: it left on purpose, or the server sent it
// away. Every other reason (a dropped transport, a missed ping, a slow
// consumer, a server shutting down) leaves the session recoverable.
var unrecoverableReasons = map[string]bool{
	"client namespace disconnect": true,
	"server namespace disconnect": true,
}

// endSession handles a socket's disconnect, once: its typing indicators go
// false at once; a recoverable session is suspended (its memberships end
// after the presence grace unless it comes back), any other is ended in the
// log now.
func (srv *Server) endSession(sess *session, reason string) {
	end, first := sess.end()
	if !first {
		return
	}
	srv.sessions.CompareAndDelete(sess.id, sess)
	srv.cfg.Logger.Debug("socket disconnected", "socket", sess.id, "user", end.actor.UserID, "reason", reason)
	for room, stop := range end.typing {
		srv.sendTyping(room, sess.id, stop)
	}
	srv.inflight.enter()
	go func() {
		defer srv.inflight.leave()
		if srv.suspend(sess, end, reason) {
			return
		}
		if end.presence != nil || len(end.chats) > 0 {
			srv.storeEnd(end.actor, end.presence, end.chats, domain.ReasonDisconnect, "disconnect")
		}
		if sess.pidHash != "" {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(srv.ctx), srv.cfg.CommandTimeout)
			defer cancel()
			if err := srv.cfg.Sessions.Delete(ctx, sess.pidHash, end.generation); err != nil {
				srv.cfg.Logger.Warn("could not forget a session that ended", "socket", sess.id, "err", err)
			}
		}
	}()
}

// suspend records a recoverable session as disconnected, and reports
// whether it did (or another server has claimed the session meanwhile):
// then the grace sweep ends its memberships unless it comes back.
func (srv *Server) suspend(sess *session, end sessionEnd, reason string) bool {
	if unrecoverableReasons[reason] || sess.pidHash == "" {
		return false
	}
	endReason := domain.ReasonDisconnect
	if reason == "server shutting down" {
		endReason = domain.ReasonServerRestart
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(srv.ctx), srv.cfg.CommandTimeout)
	defer cancel()
	if _, err := srv.cfg.Sessions.Suspend(ctx, sess.pidHash, end.generation, srv.cfg.Now(), endReason); err != nil {
		srv.cfg.Logger.Warn("could not keep a dropped session for recovery; ending it", "socket", sess.id, "user", end.actor.UserID, "err", err)
		return false
	}
	return true
}

// saveSession writes the session's recoverable row as of now. A failure
// costs only the recovery of this change, so it is logged, not returned.
func (srv *Server) saveSession(ctx context.Context, sess *session) {
	row, ok := sess.recoveryRow(srv.cfg.NodeID)
	if !ok {
		return
	}
	if err := srv.cfg.Sessions.Save(ctx, row); err != nil {
		srv.cfg.Logger.Warn("could not record a session for recovery", "socket", sess.id, "err", err)
	}
}

// endLate ends a presence or membership stored after its socket had already
// disconnected.
func (srv *Server) endLate(sess *session, presence *domain.PresenceJoined, chat *domain.ChatMemberJoined) {
	var chats []domain.ChatMemberJoined
	if chat != nil {
		chats = append(chats, *chat)
	}
	srv.inflight.enter()
	go func() {
		defer srv.inflight.leave()
		srv.storeEnd(sess.currentActor(), presence, chats, domain.ReasonDisconnect, "disconnect")
	}()
}

// pendingEnd is the end of a session that could not be stored yet.
type pendingEnd struct {
	cmd commands.EndSession
}

// endQueue keeps, in order, the ends of sessions that could not be stored
// (a full disk, a lost database), so that they are stored once the store is
// back, and nobody stays online who has gone.
type endQueue struct {
	mu      sync.Mutex
	pending []pendingEnd
	dropped int
}

// maxPendingEnds bounds the queue; past it the oldest end is dropped and
// the next start of the node ends what is left open.
const maxPendingEnds = 100000

// storeEnd appends the end of a session, with its own deadline, not the
// server's: a shutdown waits for it. If it cannot be stored it is queued
// and retried until it is; it reports whether it was stored now.
func (srv *Server) storeEnd(actor domain.Actor, presence *domain.PresenceJoined, chats []domain.ChatMemberJoined, reason, command string) bool {
	cmd := commands.EndSession{
		Cause:    commands.Cause{Actor: actor, Command: command, CorrelationID: srv.cfg.NewID()},
		Presence: presence, Chats: chats, Reason: reason,
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(srv.ctx), srv.cfg.CommandTimeout)
	defer cancel()
	if _, err := srv.handlers.EndSession.Handle(ctx, cmd); err != nil {
		srv.cfg.Logger.Warn("could not store the end of a session; retrying until it is stored", "socket", actor.SessionID, "user", actor.UserID, "err", err)
		srv.ends.push(pendingEnd{cmd: cmd})
		srv.cfg.Observer.SessionEndBacklog(srv.ends.len())
		return false
	}
	return true
}

func (q *endQueue) push(e pendingEnd) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pending) >= maxPendingEnds {
		q.pending = q.pending[1:]
		q.dropped++
	}
	q.pending = append(q.pending, e)
}

func (q *endQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending)
}

// retryEnds stores the queued ends in order, stopping at the first that
// still fails, every second until ctx ends.
func (srv *Server) retryEnds(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		for {
			srv.ends.mu.Lock()
			if len(srv.ends.pending) == 0 {
				srv.ends.mu.Unlock()
				break
			}
			next := srv.ends.pending[0]
			srv.ends.mu.Unlock()
			sctx, cancel := context.WithTimeout(ctx, srv.cfg.CommandTimeout)
			_, err := srv.handlers.EndSession.Handle(sctx, next.cmd)
			cancel()
			if err != nil {
				break // the store is still away
			}
			srv.ends.mu.Lock()
			srv.ends.pending = srv.ends.pending[1:]
			n := len(srv.ends.pending)
			srv.ends.mu.Unlock()
			srv.cfg.Observer.SessionEndBacklog(n)
			if n == 0 {
				srv.cfg.Logger.Info("stored the ends of sessions that had waited for the store")
			}
		}
	}
}

// graceLoop ends the memberships of suspended sessions that did not come
// back within the presence grace, and forgets sessions that can no longer
// be recovered, until ctx ends. Every server sweeps every due session (of
// a dead server too); the ends' event ids derive from the joins they end,
// so a session is ended once whoever sweeps it.
func (srv *Server) graceLoop(ctx context.Context) {
	interval := min(max(srv.cfg.PresenceGrace/2, 100*time.Millisecond), time.Second)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		srv.sweepGrace(ctx)
	}
}

// sweepBatch is how many due sessions one sweep ends at most.
const sweepBatch = 256

func (srv *Server) sweepGrace(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, srv.cfg.CommandTimeout)
	defer cancel()
	now := srv.cfg.Now()
	due, err := srv.cfg.Sessions.Due(ctx, now.Add(-max(srv.cfg.PresenceGrace, 0)), sweepBatch)
	if err != nil {
		if ctx.Err() == nil {
			srv.cfg.Logger.Warn("could not look for sessions past the presence grace", "err", err)
		}
		return
	}
	for _, row := range due {
		var st sessionState
		if err := json.Unmarshal([]byte(row.State), &st); err != nil {
			srv.cfg.Logger.Error("a recoverable session's state does not decode; forgetting it", "socket", row.SessionID, "err", err)
			_ = srv.cfg.Sessions.Delete(ctx, row.PIDHash, row.Generation)
			continue
		}
		// A client may have come back since the list was read.
		if still, err := srv.cfg.Sessions.StillDue(ctx, row.PIDHash, row.Generation); err != nil || !still {
			continue
		}
		if st.Presence != nil || len(st.Chats) > 0 {
			actor := st.Actor
			actor.SessionID = row.SessionID
			_, err := srv.handlers.EndSession.Handle(ctx, commands.EndSession{
				Cause:    commands.Cause{Actor: actor, Command: endCommand(row.EndReason), CorrelationID: eventstore.NameID("PresenceGrace", row.PIDHash, row.SessionID)},
				Presence: st.Presence, Chats: st.Chats, Reason: row.EndReason,
			})
			if err != nil {
				srv.cfg.Logger.Warn("could not end a session past the presence grace; retrying", "socket", row.SessionID, "err", err)
				return // the next sweep tries again, in order
			}
		}
		if _, err := srv.cfg.Sessions.MarkEnded(ctx, row.PIDHash, row.Generation); err != nil {
			srv.cfg.Logger.Warn("could not mark a session ended", "socket", row.SessionID, "err", err)
		}
	}
	if _, err := srv.cfg.Sessions.Expire(ctx, now.Add(-srv.cfg.RecoveryWindow)); err != nil && ctx.Err() == nil {
		srv.cfg.Logger.Warn("could not forget sessions past the recovery window", "err", err)
	}
}

// endCommand names, in the log, what ended a session after its grace: the
// same command as when sessions were ended at once.
func endCommand(reason string) string {
	switch reason {
	case domain.ReasonNodeDown:
		return "node_down"
	case domain.ReasonServerRestart:
		return "server_start"
	}
	return "disconnect"
}

// rejoin joins again, for a session recovered after the presence grace,
// the presence and chat memberships its grace ended (the others see it
// join again).
func (srv *Server) rejoin(c *conn, st sessionState) {
	ctx, cancel := context.WithTimeout(srv.ctx, srv.cfg.CommandTimeout)
	defer cancel()
	sess := c.sess
	var orphan *domain.PresenceJoined
	var orphanChats []domain.ChatMemberJoined
	if p := st.Presence; p != nil {
		res, err := srv.handlers.JoinUserRoom.Handle(ctx, commands.JoinUserRoom{Cause: sess.cause(commandRecover, srv.cfg.NewID()), UserID: p.UserID, Profile: p.Profile})
		if err != nil {
			srv.cfg.Logger.Warn("could not restore a recovered socket's presence", append(c.log(), "err", err)...)
			return
		}
		if ev := res.Event; sess.joinedPresence(ev, res.Actor) {
			orphan = &ev
		}
	}
	for _, m := range st.Chats {
		res, err := srv.handlers.JoinChatRoom.Handle(ctx, commands.JoinChatRoom{Cause: sess.cause(commandRecover, srv.cfg.NewID()), RoomName: m.RoomName, Profile: m.Profile})
		if err != nil {
			srv.cfg.Logger.Warn("could not restore a recovered socket's chat membership", append(c.log(), "room", m.RoomName, "err", err)...)
			continue
		}
		if sess.restoredChat(res.Event) {
			orphanChats = append(orphanChats, res.Event)
		}
	}
	if orphan != nil || len(orphanChats) > 0 {
		srv.storeEnd(sess.currentActor(), orphan, orphanChats, domain.ReasonDisconnect, "disconnect")
	}
}

// commandRecover marks the events that restore a recovered socket's session;
// the dispatcher does not confirm them to the socket again.
const commandRecover = "recover"
