package socketadapter

import (
	"context"

	"github.com/auraos/realtime/commands"
	"github.com/auraos/realtime/domain"
)

// endSession ends a socket's session once: its typing indicators go false
// and its presence and chat memberships are ended in the log.
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
	if end.presence == nil && len(end.chats) == 0 {
		sess.markEndStored()
		return
	}
	srv.inflight.enter()
	go func() {
		defer srv.inflight.leave()
		defer sess.markEndStored()
		srv.storeEnd(end.actor, end.presence, end.chats)
	}()
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
		srv.storeEnd(sess.currentActor(), presence, chats)
	}()
}

// storeEnd appends the end of a session. It uses its own deadline, not the
// server's: a shutdown waits for it.
func (srv *Server) storeEnd(actor domain.Actor, presence *domain.PresenceJoined, chats []domain.ChatMemberJoined) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(srv.ctx), srv.cfg.CommandTimeout)
	defer cancel()
	_, err := srv.handlers.EndSession.Handle(ctx, commands.EndSession{
		Cause:    commands.Cause{Actor: actor, Command: "disconnect", CorrelationID: srv.cfg.NewID()},
		Presence: presence, Chats: chats, Reason: domain.ReasonDisconnect,
	})
	if err != nil {
		// The next start of this node ends what is left open.
		srv.cfg.Logger.Warn("could not store the end of a session", "socket", actor.SessionID, "user", actor.UserID, "err", err)
	}
}

// restoreRecovered re-joins what a recovered socket had joined before it
// dropped: the drop ended its presence and memberships, the recovery starts
// them again (other clients see it leave and come back).
func (srv *Server) restoreRecovered(c *conn, previous *session) {
	if !previous.waitEndStored(srv.ctx) {
		return
	}
	presence, chats := previous.memberships()
	ctx, cancel := context.WithTimeout(srv.ctx, srv.cfg.CommandTimeout)
	defer cancel()
	sess := c.sess
	// What is restored after the socket dropped again is ended here.
	var orphan *domain.PresenceJoined
	var orphanChats []domain.ChatMemberJoined
	if presence != nil {
		res, err := srv.handlers.JoinUserRoom.Handle(ctx, commands.JoinUserRoom{Cause: sess.cause(commandRecover, srv.cfg.NewID()), UserID: presence.UserID, Profile: presence.Profile})
		if err != nil {
			srv.cfg.Logger.Warn("could not restore a recovered socket's presence", append(c.log(), "err", err)...)
			return
		}
		if ev := res.Event; sess.joinedPresence(ev, res.Actor) {
			orphan = &ev
		}
	}
	for _, m := range chats {
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
		srv.storeEnd(sess.currentActor(), orphan, orphanChats)
	}
}

// commandRecover marks the events that restore a recovered socket's session;
// the dispatcher does not confirm them to the socket again.
const commandRecover = "recover"
