package socketadapter

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"
	"golang.org/x/time/rate"

	"github.com/auraos/realtime/commands"
	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
)

// handlerFunc handles one client event. Its reply holds the success ack's
// fields (ok is added), or how to get them once the event's append is
// durable.
type handlerFunc func(c *conn, ctx context.Context, payload any) (reply, error)

// reply is what a handled event acknowledges: its fields now, or later
// (then the socket's next events are handled meanwhile).
type reply struct {
	ack   map[string]any
	later func(ctx context.Context) (map[string]any, error)
}

// clientEvent is how one client event is handled: its rate limit (nil for
// none) and its handler.
type clientEvent struct {
	limit   func(*session) *rate.Limiter
	handler handlerFunc
}

// clientEvents are the client→server events of the source document. One
// table for all sockets, and one any-event listener per socket, keep a
// connection's footprint small.
var clientEvents = map[string]clientEvent{
	"join_user_room":         {nil, (*conn).joinUserRoom},
	"join_system_room":       {nil, (*conn).joinSystemRoom},
	"join_room":              {nil, (*conn).joinRoom},
	"leave_room":             {nil, (*conn).leaveRoom},
	"join_chat_room":         {nil, (*conn).joinChatRoom},
	"send_message":           {func(s *session) *rate.Limiter { return s.limits.message }, (*conn).sendMessage},
	"typing_start":           {func(s *session) *rate.Limiter { return s.limits.typing }, (*conn).typingStart},
	"typing_stop":            {func(s *session) *rate.Limiter { return s.limits.typing }, (*conn).typingStop},
	"send_notification":      {func(s *session) *rate.Limiter { return s.limits.notification }, (*conn).sendNotification},
	"broadcast_system_alert": {nil, (*conn).broadcastSystemAlert},
	"update_app_status":      {nil, (*conn).updateAppStatus},
	"request_system_status":  {nil, (*conn).requestSystemStatus},
	"data_agent_update":      {func(s *session) *rate.Limiter { return s.limits.agent }, (*conn).dataAgentUpdate},
}

// conn is one socket with its session, as event handlers see it.
type conn struct {
	srv  *Server
	s    *socket.Socket
	sess *session
}

func (c *conn) log() []any { return []any{"socket", c.sess.id, "user", c.sess.currentActor().UserID} }

// onConnection sets up a new (or recovered) socket.
func (srv *Server) onConnection(s *socket.Socket) {
	sid := string(s.Id())
	ci, _ := s.Data().(*connectionIdentity)
	if ci == nil {
		ci = &connectionIdentity{}
	}
	actor := domain.Actor{UserID: ci.UserID, SessionID: sid, NodeID: srv.cfg.NodeID, Admin: ci.Admin}
	previous := ci.session
	recovered := s.Recovered() && previous != nil
	if recovered {
		actor = previous.currentActor()
	}
	sess := newSession(sid, actor, ci.Profile, srv.cfg.Limits)
	ci.session = sess
	s.SetData(ci)
	srv.sessions.Store(sid, sess)
	c := &conn{srv: srv, s: s, sess: sess}
	srv.cfg.Logger.Debug("socket connected", "socket", sid, "user", actor.UserID, "transport", s.Conn().Transport().Name(), "recovered", recovered)

	// Runs on the socket's task queue, one event after another.
	s.OnAny(c.onEvent)
	s.On("disconnect", func(args ...any) {
		reason, _ := firstString(args)
		srv.endSession(sess, reason)
	})

	srv.inflight.enter()
	go func() {
		defer srv.inflight.leave()
		if recovered {
			srv.restoreRecovered(c, previous)
		}
		// A first status also gives the client an offset to recover from.
		ctx, cancel := context.WithTimeout(srv.ctx, srv.cfg.CommandTimeout)
		defer cancel()
		if st, err := srv.systemStatus(ctx); err == nil {
			srv.emitTo(sid, "system_status_update", st)
		}
	}()
}

func firstString(args []any) (string, bool) {
	if len(args) == 0 {
		return "", false
	}
	s, ok := args[0].(string)
	return s, ok
}

// onEvent handles one client event: it splits off the acknowledgement
// callback, applies the rate limit, runs the handler with a bounded context,
// and answers with an ack and, on failure, an `error` event. Events without
// a handler are ignored, as Socket.IO ignores events nobody listens to.
func (c *conn) onEvent(args ...any) {
	if len(args) == 0 {
		return
	}
	event, _ := args[0].(string)
	spec, ok := clientEvents[event]
	if !ok {
		return
	}
	args = args[1:]
	srv := c.srv
	srv.inflight.enter()
	started := time.Now()
	srv.cfg.Logger.Debug("client event", "socket", c.sess.id, "event", event)
	var ack socket.Ack
	if n := len(args); n > 0 {
		if a, ok := args[n-1].(socket.Ack); ok {
			ack, args = a, args[:n-1]
		}
	}
	var payload any
	if len(args) > 0 {
		payload = args[0]
	}
	ctx, cancel := context.WithTimeout(srv.ctx, srv.cfg.CommandTimeout)
	async := false
	defer func() {
		if !async {
			cancel()
			srv.inflight.leave()
		}
	}()
	var res reply
	var err error
	switch {
	case srv.closing.Load():
		err = domain.Errorf(domain.EUNAVAILABLE, "the server is shutting down")
	case spec.limit != nil && !spec.limit(c.sess).Allow():
		err = domain.Errorf(domain.ERATELIMITED, "too many %s events; slow down", event)
	default:
		res, err = c.run(ctx, spec.handler, payload)
	}
	if err == nil && res.later != nil {
		async = true
		go func() {
			defer srv.inflight.leave()
			defer cancel()
			fields, err := res.later(ctx)
			c.answer(ctx, event, ack, started, fields, err)
		}()
		return
	}
	c.answer(ctx, event, ack, started, res.ack, err)
}

// run calls a handler and turns a panic into an INTERNAL error, so a bug
// answers the client and is logged instead of leaving it waiting.
func (c *conn) run(ctx context.Context, h handlerFunc, payload any) (res reply, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = domain.WrapError(domain.EINTERNAL, "internal error", fmt.Errorf("panic: %v\n%s", p, debug.Stack()))
		}
	}()
	return h(c, ctx, payload)
}

// answer acknowledges a handled event, or refuses it.
func (c *conn) answer(ctx context.Context, event string, ack socket.Ack, started time.Time, fields map[string]any, err error) {
	observer := c.srv.cfg.Observer
	if err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		err = domain.WrapError(domain.EUNAVAILABLE, "the server could not complete "+event+" in time", err)
	}
	if err != nil {
		c.refuse(event, err, ack)
		observer.ClientEvent(event, clientCode(err), time.Since(started))
		return
	}
	observer.ClientEvent(event, "ok", time.Since(started))
	if ack != nil {
		if fields == nil {
			fields = map[string]any{}
		}
		fields["ok"] = true
		ack([]any{fields}, nil)
	}
}

// refuse reports a refused or failed event to its socket: an `error` event
// and, when the client asked for one, a failed ack. Internal details go to
// the log only.
func (c *conn) refuse(event string, err error, ack socket.Ack) {
	code, msg := clientCode(err), domain.ErrorMessage(err)
	switch code {
	case domain.EINTERNAL:
		msg = "internal error"
		c.srv.cfg.Logger.Error("client event failed", append(c.log(), "event", event, "code", code, "err", err)...)
	case domain.EUNAVAILABLE:
		c.srv.cfg.Logger.Warn("client event failed", append(c.log(), "event", event, "code", code, "err", err)...)
	default:
		c.srv.cfg.Logger.Info("client event refused", append(c.log(), "event", event, "code", code, "field", domain.ErrorField(err))...)
	}
	c.srv.emitTo(c.sess.id, "error", encode(errorPayload{Message: msg, Code: code, Details: errorDetails{Event: event, Field: domain.ErrorField(err)}}))
	if ack != nil {
		ack([]any{map[string]any{"ok": false, "error": ackError{Code: code, Message: msg}}}, nil)
	}
}

// clientCode is the error code a client sees: the codes of PROTOCOL.md,
// with anything else reported as INTERNAL.
func clientCode(err error) string {
	switch code := domain.ErrorCode(err); code {
	case domain.EINVALID, domain.EFORBIDDEN, domain.EAUTH, domain.ERATELIMITED, domain.EUNAVAILABLE:
		return code
	default:
		return domain.EINTERNAL
	}
}

// stored waits until the live feed has pushed the event at p (so the client
// gets an event's pushes before its ack) and returns the ack's position.
func (c *conn) stored(ctx context.Context, p eventstore.Position) (reply, error) {
	ack, err := c.pushed(ctx, p)
	return reply{ack: ack}, err
}

// pushed waits until the live feed has pushed the event at p and returns
// the ack's fields.
func (c *conn) pushed(ctx context.Context, p eventstore.Position) (map[string]any, error) {
	if err := c.srv.dispatch.waitFor(ctx, p); err != nil {
		return nil, err
	}
	return map[string]any{"position": p.Commit}, nil
}

func (c *conn) joinUserRoom(ctx context.Context, payload any) (reply, error) {
	p, err := decodeJoinUserRoom(payload)
	if err != nil {
		return reply{}, err
	}
	sess := c.sess
	if joined, ok := sess.currentPresence(); ok {
		// Already present: decide as for a first join (identity, profile),
		// then confirm again without storing anything.
		if _, _, err := domain.JoinPresence(sess.currentActor(), p.UserID, sess.verifiedProfile(p.Profile), c.srv.cfg.Now()); err != nil {
			return reply{}, err
		}
		c.srv.emitTo(sess.id, "user_joined", encode(userJoinedPayload{ID: joined.UserID, SocketID: sess.id}))
		users, err := c.srv.onlineUsers(ctx)
		if err != nil {
			return reply{}, err
		}
		c.srv.emitTo(sess.id, "online_users", users)
		return reply{}, nil
	}
	res, err := c.srv.handlers.JoinUserRoom.Handle(ctx, commands.JoinUserRoom{
		Cause: sess.cause("join_user_room", c.srv.cfg.NewID()), UserID: p.UserID, Profile: sess.verifiedProfile(p.Profile),
	})
	if err != nil {
		return reply{}, err
	}
	ev := res.Event
	if sess.joinedPresence(ev, res.Actor) {
		c.srv.endLate(sess, &ev, nil)
		return reply{}, domain.Errorf(domain.EUNAVAILABLE, "the connection closed while joining")
	}
	c.s.Join(userRoom(ev.UserID))
	return c.stored(ctx, res.Position)
}

func (c *conn) joinSystemRoom(_ context.Context, payload any) (reply, error) {
	name, err := stringPayload(payload, "roomName")
	if err != nil {
		return reply{}, err
	}
	if err := domain.CheckRoomName("roomName", name); err != nil {
		return reply{}, err
	}
	if name == "admin_notifications" && !c.sess.currentActor().Admin {
		return reply{}, domain.Errorf(domain.EFORBIDDEN, "admin_notifications is for admins only")
	}
	c.s.Join(systemRoom(name))
	return reply{}, nil
}

func (c *conn) joinRoom(_ context.Context, payload any) (reply, error) {
	name, err := stringPayload(payload, "roomName")
	if err != nil {
		return reply{}, err
	}
	if err := domain.CheckRoomName("roomName", name); err != nil {
		return reply{}, err
	}
	c.s.Join(clientRoom(name))
	return reply{}, nil
}

func (c *conn) leaveRoom(ctx context.Context, payload any) (reply, error) {
	name, err := stringPayload(payload, "roomName")
	if err != nil {
		return reply{}, err
	}
	if err := domain.CheckRoomName("roomName", name); err != nil {
		return reply{}, err
	}
	sess := c.sess
	c.s.Leave(clientRoom(name))
	member, isMember, stop := sess.leaveChat(name)
	if stop != nil {
		c.srv.sendTyping(name, sess.id, *stop)
	}
	if !isMember {
		return reply{}, nil
	}
	res, err := c.srv.handlers.LeaveChatRoom.Handle(ctx, commands.LeaveChatRoom{Cause: sess.cause("leave_room", c.srv.cfg.NewID()), Joined: member})
	if err != nil {
		sess.undoLeave(member)
		return reply{}, err
	}
	return c.stored(ctx, res.Position)
}

func (c *conn) joinChatRoom(ctx context.Context, payload any) (reply, error) {
	p, err := decodeRoomProfile(payload)
	if err != nil {
		return reply{}, err
	}
	sess := c.sess
	profile := sess.verifiedProfile(p.Profile)
	done := make(chan error, 1)
	var ack map[string]any
	if sess.inChat(p.RoomName) {
		// Already a member: check the identity, then deliver joined_chat and
		// the history again.
		if _, _, err := domain.JoinChat(sess.currentActor(), p.RoomName, profile, c.srv.cfg.Now()); err != nil {
			return reply{}, err
		}
		c.srv.dispatch.redeliver(sess.id, p.RoomName, done)
		ack = map[string]any{}
	} else {
		sess.awaitJoin(p.RoomName, done)
		res, err := c.srv.handlers.JoinChatRoom.Handle(ctx, commands.JoinChatRoom{
			Cause: sess.cause("join_chat_room", c.srv.cfg.NewID()), RoomName: p.RoomName, Profile: profile,
		})
		if err != nil {
			sess.forgetJoin(p.RoomName, done)
			return reply{}, err
		}
		ev := res.Event
		if sess.joinedChat(ev, res.Actor) {
			c.srv.endLate(sess, nil, &ev)
			return reply{}, domain.Errorf(domain.EUNAVAILABLE, "the connection closed while joining")
		}
		ack = map[string]any{"position": res.Position.Commit}
	}
	select {
	case err := <-done:
		if err != nil {
			return reply{}, err
		}
	case <-ctx.Done():
		return reply{}, domain.WrapError(domain.EUNAVAILABLE, "chat history did not arrive in time", ctx.Err())
	}
	return reply{ack: ack}, nil
}

func (c *conn) sendMessage(ctx context.Context, payload any) (reply, error) {
	in, err := decodeSendMessage(payload)
	if err != nil {
		return reply{}, err
	}
	sess := c.sess
	in.Profile = sess.verifiedProfile(in.Profile)
	sub, err := c.srv.handlers.SendMessage.Submit(ctx, commands.SendMessage{Cause: sess.cause("send_message", c.srv.cfg.NewID()), PostMessageInput: in})
	if err != nil {
		return reply{}, err
	}
	sess.bind(sub.Actor)
	// The socket's next events are handled while this one is stored: the
	// store keeps the submission order, and the ack follows when durable.
	return reply{later: func(ctx context.Context) (map[string]any, error) {
		res, err := sub.Wait(ctx)
		if err != nil {
			return nil, err
		}
		ack, err := c.pushed(ctx, res.Position)
		if err != nil {
			return nil, err
		}
		ack["id"] = res.Message.ID
		return ack, nil
	}}, nil
}

func (c *conn) typingStart(_ context.Context, payload any) (reply, error) {
	return c.typing(true, payload)
}
func (c *conn) typingStop(_ context.Context, payload any) (reply, error) {
	return c.typing(false, payload)
}

// typing handles typing_start (true) and typing_stop (false): ephemeral,
// nothing is stored; the room sees user_typing, except the typer.
func (c *conn) typing(isTyping bool, payload any) (reply, error) {
	p, err := decodeRoomProfile(payload)
	if err != nil {
		return reply{}, err
	}
	if err := domain.CheckRoomName("roomName", p.RoomName); err != nil {
		return reply{}, err
	}
	sess := c.sess
	profile := sess.verifiedProfile(p.Profile)
	if err := profile.Validate("userProfile"); err != nil {
		return reply{}, err
	}
	if err := sess.markTyping(p.RoomName, profile, isTyping); err != nil {
		return reply{}, err
	}
	c.srv.sendTyping(p.RoomName, sess.id, typingPayload{UserID: profile.UID, UserName: profile.Name(), IsTyping: isTyping})
	return reply{}, nil
}

func (c *conn) sendNotification(ctx context.Context, payload any) (reply, error) {
	p, err := decodeSendNotification(payload)
	if err != nil {
		return reply{}, err
	}
	res, err := c.srv.handlers.SendNotification.Handle(ctx, commands.SendNotification{
		Cause: c.sess.cause("send_notification", c.srv.cfg.NewID()), To: p.To, Title: p.Title, Message: p.Message, Type: p.Type, Data: p.Data,
	})
	if err != nil {
		return reply{}, err
	}
	return c.stored(ctx, res.Position)
}

func (c *conn) broadcastSystemAlert(ctx context.Context, payload any) (reply, error) {
	if !c.sess.currentActor().Admin {
		return reply{}, domain.Errorf(domain.EFORBIDDEN, "broadcast_system_alert is for admins only")
	}
	p, err := decodeSystemAlert(payload)
	if err != nil {
		return reply{}, err
	}
	res, err := c.srv.handlers.BroadcastSystemAlert.Handle(ctx, commands.BroadcastSystemAlert{
		Cause: c.sess.cause("broadcast_system_alert", c.srv.cfg.NewID()), Title: p.Title, Message: p.Message, Severity: p.Severity, Action: p.Action,
	})
	if err != nil {
		return reply{}, err
	}
	return c.stored(ctx, res.Position)
}

func (c *conn) updateAppStatus(ctx context.Context, payload any) (reply, error) {
	p, err := decodeAppStatus(payload)
	if err != nil {
		return reply{}, err
	}
	res, err := c.srv.handlers.UpdateAppStatus.Handle(ctx, commands.UpdateAppStatus{
		Cause: c.sess.cause("update_app_status", c.srv.cfg.NewID()), AppID: p.AppID, Status: p.Status,
	})
	if err != nil {
		return reply{}, err
	}
	return c.stored(ctx, res.Position)
}

func (c *conn) dataAgentUpdate(ctx context.Context, payload any) (reply, error) {
	p, err := decodeDataAgent(payload)
	if err != nil {
		return reply{}, err
	}
	res, err := c.srv.handlers.UpdateDataAgent.Handle(ctx, commands.UpdateDataAgent{
		Cause: c.sess.cause("data_agent_update", c.srv.cfg.NewID()), AgentID: p.AgentID, Status: p.Status, Data: p.Data,
	})
	if err != nil {
		return reply{}, err
	}
	return c.stored(ctx, res.Position)
}

func (c *conn) requestSystemStatus(ctx context.Context, _ any) (reply, error) {
	st, err := c.srv.systemStatus(ctx)
	if err != nil {
		return reply{}, err
	}
	c.srv.emitTo(c.sess.id, "system_status_update", st)
	return reply{}, nil
}

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
