package socketadapter

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	engine "github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"golang.org/x/time/rate"

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
	"join_system_room":       {(*session).joinLimit, (*conn).joinSystemRoom},
	"join_room":              {(*session).joinLimit, (*conn).joinRoom},
	"leave_room":             {nil, (*conn).leaveRoom},
	"join_chat_room":         {(*session).joinLimit, (*conn).joinChatRoom},
	"send_message":           {(*session).messageLimit, (*conn).sendMessage},
	"typing_start":           {(*session).typingLimit, (*conn).typingStart},
	"typing_stop":            {(*session).typingLimit, (*conn).typingStop},
	"send_notification":      {(*session).notificationLimit, (*conn).sendNotification},
	"broadcast_system_alert": {nil, (*conn).broadcastSystemAlert},
	"update_app_status":      {nil, (*conn).updateAppStatus},
	"request_system_status":  {nil, (*conn).requestSystemStatus},
	"data_agent_update":      {(*session).agentLimit, (*conn).dataAgentUpdate},
}

// conn is one socket with its session, as event handlers see it.
type conn struct {
	srv  *Server
	s    *socket.Socket
	sess *session
}

// log returns the attributes that name the socket and its user in a log
// record.
func (c *conn) log() []any { return []any{"socket", c.sess.id, "user", c.sess.currentActor().UserID} }

// onConnection sets up a new (or recovered) socket.
func (srv *Server) onConnection(s *socket.Socket) {
	sid := string(s.Id())
	ci, _ := s.Data().(*connectionIdentity)
	if ci == nil {
		ci = &connectionIdentity{}
	}
	restored := ci.restored
	if !s.Recovered() {
		restored = nil
	}
	ci.restored = nil
	actor := domain.Actor{UserID: ci.UserID, SessionID: sid, NodeID: srv.cfg.NodeID, Admin: ci.Admin}
	if restored != nil {
		actor = restored.state.Actor
		actor.SessionID, actor.NodeID = sid, srv.cfg.NodeID
	}
	sess := newSession(sid, actor, ci.Profile, &srv.cfg.Limits)
	sess.list.diff = wantsPresenceDiff(s.Auth())
	if srv.cfg.Sessions != nil && s.Pid() != "" {
		sess.pidHash = hashPID(string(s.Pid()))
	}
	if restored != nil {
		sess.restore(restored.state, restored.row.Generation, restored.row.Ended)
	}
	srv.sessions.Store(sid, sess)
	c := &conn{srv: srv, s: s, sess: sess}
	srv.cfg.Logger.Debug("socket connected", "socket", sid, "user", actor.UserID, "transport", s.Conn().Transport().Name(), "recovered", restored != nil)

	// Runs on the socket's task queue, one event after another.
	s.OnAny(c.onEvent)
	s.On("disconnect", func(args ...any) {
		reason, _ := firstString(args)
		if reason == engine.SlowConsumerReason {
			srv.cfg.Logger.Warn("disconnected a slow consumer: its outbound queue passed --client-queue-max",
				"socket", sid, "user", sess.currentActor().UserID, "limit_bytes", srv.cfg.ClientQueueMax)
			srv.cfg.Observer.SlowDisconnect()
		}
		srv.endSession(sess, reason)
	})

	srv.inflight.enter()
	go func() {
		defer srv.inflight.leave()
		ctx, cancel := context.WithTimeout(srv.ctx, srv.cfg.CommandTimeout)
		defer cancel()
		if restored != nil {
			if restored.row.Ended {
				srv.rejoin(c, restored.state)
			}
			srv.saveSession(ctx, sess)
			srv.replay(c, restored)
			return
		}
		srv.saveSession(ctx, sess)
		srv.sendFirstStatus(ctx, sid)
	}()
}

// sendFirstStatus sends a new socket its first system_status_update, with
// the offset the live feed has reached: the socket has been sent every push
// up to it that concerned it, so a client that drops recovers from there.
func (srv *Server) sendFirstStatus(ctx context.Context, sid string) {
	st, err := srv.systemStatus(ctx)
	if err != nil {
		return
	}
	d := srv.dispatch
	d.do(func() { srv.emitAt(srv.io.To(socketRoom(sid)), "system_status_update", st, d.Position()) })
}

// wantsPresenceDiff reports whether a handshake's auth asks for
// online_users_diff instead of full lists (auth: { presence: 'diff' }).
func wantsPresenceDiff(auth map[string]any) bool {
	mode, _ := auth["presence"].(string)
	return mode == "diff"
}

// firstString returns the first of an event's arguments if it is a
// string, as a disconnect's reason is.
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
