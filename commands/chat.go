package commands

import (
	"context"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
)

// JoinChatRoom is a join_chat_room.
type JoinChatRoom struct {
	Cause
	RoomName string
	Profile  domain.UserProfile
}

// JoinedChat is what JoinChatRoom stored: the event (the caller keeps it to
// end the membership later), the actor now bound to the user, and where it
// landed.
type JoinedChat struct {
	Stored
	Event domain.ChatMemberJoined
	Actor domain.Actor
}

// JoinChatRoomHandler handles JoinChatRoom.
type JoinChatRoomHandler struct{ Deps }

// Handle appends ChatMemberJoined. It returns EINVALID or EFORBIDDEN for a bad
// payload (nothing stored) and the store's EUNAVAILABLE.
func (h JoinChatRoomHandler) Handle(ctx context.Context, cmd JoinChatRoom) (JoinedChat, error) {
	ev, actor, err := domain.JoinChat(cmd.Actor, cmd.RoomName, cmd.Profile, h.Now())
	if err != nil {
		return JoinedChat{}, err
	}
	pos, err := appendOne(ctx, h.Store, ev, cmd.eventID(ev.EventType(), 0), eventstore.Any, cmd.Cause, actor)
	if err != nil {
		return JoinedChat{}, err
	}
	return JoinedChat{Stored: Stored{pos}, Event: ev, Actor: actor}, nil
}

// LeaveChatRoom ends one chat membership because the client left the room.
type LeaveChatRoom struct {
	Cause
	Joined domain.ChatMemberJoined
}

// LeaveChatRoomHandler handles LeaveChatRoom.
type LeaveChatRoomHandler struct{ Deps }

// Handle appends ChatMemberLeft with ReasonLeave. It returns the store's
// errors.
func (h LeaveChatRoomHandler) Handle(ctx context.Context, cmd LeaveChatRoom) (Stored, error) {
	ev := domain.LeaveChat(cmd.Joined, domain.ReasonLeave, h.Now())
	pos, err := appendOne(ctx, h.Store, ev, chatLeftID(cmd.Joined), eventstore.Any, cmd.Cause, cmd.Actor)
	return Stored{pos}, err
}

// SendMessage is a send_message.
type SendMessage struct {
	Cause
	domain.PostMessageInput
}

// SentMessage is what SendMessage stored: the message (its ID is the event
// id), the actor now bound to the user, and where it landed.
type SentMessage struct {
	Stored
	Message domain.MessagePosted
	Actor   domain.Actor
}

// SendMessageHandler handles SendMessage.
type SendMessageHandler struct{ Deps }

// Handle appends MessagePosted. With a clientMsgId the message id derives
// from room, user and clientMsgId, so a client's retry stores nothing new and
// returns the first message's id and position. It returns EINVALID or
// EFORBIDDEN for a bad payload (nothing stored) and the store's EUNAVAILABLE.
func (h SendMessageHandler) Handle(ctx context.Context, cmd SendMessage) (SentMessage, error) {
	sub, err := h.Submit(ctx, cmd)
	if err != nil {
		return SentMessage{}, err
	}
	return sub.Wait(ctx)
}

// Submit decides the message and hands its append to the store without
// waiting for the commit: messages one client submits one after another are
// stored in that order while several are in flight. It returns the decision
// errors of Handle; the store's come from Wait. ctx must stay alive until
// Wait returns.
func (h SendMessageHandler) Submit(ctx context.Context, cmd SendMessage) (SubmittedMessage, error) {
	id := cmd.eventID(domain.TypeMessagePosted, 0)
	if cmd.ClientMsgID != "" {
		id = eventstore.NameID(domain.TypeMessagePosted, cmd.RoomName, cmd.Profile.UID, cmd.ClientMsgID)
	}
	msg, actor, err := domain.PostMessage(cmd.Actor, cmd.PostMessageInput, id, h.Now())
	if err != nil {
		return SubmittedMessage{}, err
	}
	data, err := encode(msg, id, cmd.Cause, actor)
	if err != nil {
		return SubmittedMessage{}, err
	}
	p := eventstore.SubmitAppend(ctx, h.Store, msg.Stream(), eventstore.Any, data)
	return SubmittedMessage{Message: msg, Actor: actor, pending: p}, nil
}

// SubmittedMessage is a decided message on its way to the store; Message and
// Actor are known at once.
type SubmittedMessage struct {
	Message domain.MessagePosted
	Actor   domain.Actor
	pending *eventstore.Pending
}

// Wait returns what was stored once it is durable, or the store's error.
func (s SubmittedMessage) Wait(ctx context.Context) (SentMessage, error) {
	res, err := s.pending.Wait(ctx)
	if err != nil {
		return SentMessage{}, err
	}
	return SentMessage{Stored: Stored{res.LastPosition()}, Message: s.Message, Actor: s.Actor}, nil
}
