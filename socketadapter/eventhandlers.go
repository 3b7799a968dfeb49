package socketadapter

import (
	"context"

	"github.com/auraos/realtime/commands"
	"github.com/auraos/realtime/domain"
)

// joinUserRoom handles join_user_room: it stores the socket's presence and
// joins the user's private room, where notifications arrive. A socket that
// is already present is checked and confirmed again without storing
// anything, so repeating the event stores nothing new.
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
		sess.list.sentUnknownList()
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
	c.srv.adminUpdated(sess.id)
	c.s.Join(userRoom(ev.UserID))
	c.srv.saveSession(ctx, sess)
	return c.stored(ctx, res.Position)
}

// joinSystemRoom handles join_system_room. Nothing is stored in the log:
// system rooms only route pushes, and admin_notifications is kept to
// admins. The room is recorded for recovery before the ack.
func (c *conn) joinSystemRoom(ctx context.Context, payload any) (reply, error) {
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
	if err := c.sess.canJoin(name, true, c.srv.cfg.MaxRooms); err != nil {
		return reply{}, err
	}
	c.s.Join(systemRoom(name))
	c.sess.joinedRoom(name, true)
	c.srv.saveSession(ctx, c.sess)
	return reply{}, nil
}

// joinRoom handles join_room: the socket gets the room's broadcasts. The
// membership is not stored in the log (join_chat_room is the stored kind);
// it is recorded for recovery before the ack.
func (c *conn) joinRoom(ctx context.Context, payload any) (reply, error) {
	name, err := stringPayload(payload, "roomName")
	if err != nil {
		return reply{}, err
	}
	if err := domain.CheckRoomName("roomName", name); err != nil {
		return reply{}, err
	}
	if err := c.sess.canJoin(name, false, c.srv.cfg.MaxRooms); err != nil {
		return reply{}, err
	}
	c.s.Join(clientRoom(name))
	c.sess.joinedRoom(name, false)
	c.srv.saveSession(ctx, c.sess)
	return reply{}, nil
}

// leaveRoom handles leave_room. Leaving also stops the socket's typing
// there, and ends a chat membership in the log, so the members who remain
// see user_left_chat; if that cannot be stored, the membership is kept so
// that a retry can leave.
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
	sess.leftRoom(name)
	member, isMember, stop := sess.leaveChat(name)
	if stop != nil {
		c.srv.sendTyping(name, sess.id, *stop)
	}
	if !isMember {
		c.srv.saveSession(ctx, sess)
		return reply{}, nil
	}
	res, err := c.srv.handlers.LeaveChatRoom.Handle(ctx, commands.LeaveChatRoom{Cause: sess.cause("leave_room", c.srv.cfg.NewID()), Joined: member})
	if err != nil {
		sess.undoLeave(member)
		return reply{}, err
	}
	c.srv.saveSession(ctx, sess)
	return c.stored(ctx, res.Position)
}

// joinChatRoom handles join_chat_room: it stores the membership and acks
// once the dispatcher has sent joined_chat and the history, so the client
// gets them before the ack. A member joining again is sent them again
// without storing anything.
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
		if err := sess.canJoin(p.RoomName, false, c.srv.cfg.MaxRooms); err != nil {
			return reply{}, err
		}
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
		c.srv.saveSession(ctx, sess)
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

// sendMessage handles send_message. It acks later, once the message is
// durable, so that a socket's next events are not held up by the append.
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
	c.srv.adminUpdated(sess.id)
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

// typingStart handles typing_start.
func (c *conn) typingStart(_ context.Context, payload any) (reply, error) {
	return c.typing(true, payload)
}

// typingStop handles typing_stop.
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

// sendNotification handles send_notification; the dispatcher delivers it
// to the recipient's private room once stored.
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

// broadcastSystemAlert handles broadcast_system_alert, which only admins
// may send, since it reaches every client.
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

// updateAppStatus handles update_app_status; every client sees app_updated
// once it is stored.
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

// dataAgentUpdate handles data_agent_update; every client sees it once it
// is stored.
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

// requestSystemStatus handles request_system_status by sending the
// requester the status that the periodic update sends everyone.
func (c *conn) requestSystemStatus(ctx context.Context, _ any) (reply, error) {
	st, err := c.srv.systemStatus(ctx)
	if err != nil {
		return reply{}, err
	}
	c.srv.emitTo(c.sess.id, "system_status_update", st)
	return reply{}, nil
}
