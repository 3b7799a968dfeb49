package commands

import (
	"context"
	"time"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
)

// JoinUserRoom is a join_user_room: a session joins presence as a user.
type JoinUserRoom struct {
	Cause
	UserID  string
	Profile domain.UserProfile
}

// JoinedPresence is what JoinUserRoom stored: the event (the caller keeps it
// to end the session later), the actor now bound to the user, and where it
// landed.
type JoinedPresence struct {
	Stored
	Event domain.PresenceJoined
	Actor domain.Actor
}

// JoinUserRoomHandler handles JoinUserRoom.
type JoinUserRoomHandler struct{ Deps }

// Handle appends PresenceJoined. It returns EINVALID or EFORBIDDEN for a bad
// payload (nothing stored) and the store's EUNAVAILABLE.
func (h JoinUserRoomHandler) Handle(ctx context.Context, cmd JoinUserRoom) (JoinedPresence, error) {
	ev, actor, err := domain.JoinPresence(cmd.Actor, cmd.UserID, cmd.Profile, h.Now())
	if err != nil {
		return JoinedPresence{}, err
	}
	pos, err := appendOne(ctx, h.Store, ev, cmd.eventID(ev.EventType(), 0), eventstore.Any, cmd.Cause, actor)
	if err != nil {
		return JoinedPresence{}, err
	}
	return JoinedPresence{Stored: Stored{pos}, Event: ev, Actor: actor}, nil
}

// presenceLeftID derives the id of the event that ends one presence join, so
// that every path that ends it (disconnect, restart clean-up) stores it once.
func presenceLeftID(joined domain.PresenceJoined) string {
	return eventstore.NameID(domain.TypePresenceLeft, joined.SessionID, joined.UserID, joined.At.Format(time.RFC3339Nano))
}

// chatLeftID derives the id of the event that ends one chat membership.
func chatLeftID(joined domain.ChatMemberJoined) string {
	return eventstore.NameID(domain.TypeChatMemberLeft, joined.RoomName, joined.SessionID, joined.UserID, joined.At.Format(time.RFC3339Nano))
}

// EndSession ends what a session had joined: its presence (when it joined)
// and its chat memberships, for the given reason.
type EndSession struct {
	Cause
	Presence *domain.PresenceJoined
	Chats    []domain.ChatMemberJoined
	Reason   string
}

// EndSessionHandler handles EndSession.
type EndSessionHandler struct{ Deps }

// Handle appends ChatMemberLeft for every membership and then PresenceLeft.
// Each is idempotent, so running it again after a partial failure stores
// only what is missing. It returns the store's errors.
func (h EndSessionHandler) Handle(ctx context.Context, cmd EndSession) (Stored, error) {
	var last eventstore.Position
	now := h.Now()
	for _, joined := range cmd.Chats {
		ev := domain.LeaveChat(joined, cmd.Reason, now)
		pos, err := appendOne(ctx, h.Store, ev, chatLeftID(joined), eventstore.Any, cmd.Cause, cmd.Actor)
		if err != nil {
			return Stored{last}, err
		}
		last = pos
	}
	if p := cmd.Presence; p != nil {
		ev := domain.LeavePresence(p.UserID, p.SessionID, p.NodeID, cmd.Reason, now)
		pos, err := appendOne(ctx, h.Store, ev, presenceLeftID(*p), eventstore.Any, cmd.Cause, cmd.Actor)
		if err != nil {
			return Stored{last}, err
		}
		last = pos
	}
	return Stored{last}, nil
}

// OpenSessions lists what sessions a node held and never ended: their
// presence joins and chat memberships. The online-users read model provides
// it.
type OpenSessions interface {
	OpenSessionsOf(ctx context.Context, nodeID string) ([]domain.PresenceJoined, []domain.ChatMemberJoined, error)
}

// StartNode records that a server process started, ending the sessions its
// previous run left open (after a clean stop they are already ended; after
// a crash they are not).
type StartNode struct {
	Cause
	NodeID string
}

// SessionsEnded is what ending a node's open sessions stored: how many
// presence sessions and chat memberships it ended, and where its last event
// landed.
type SessionsEnded struct {
	Stored
	EndedSessions    int
	EndedMemberships int
}

// StartNodeHandler handles StartNode.
type StartNodeHandler struct {
	Deps
	Sessions OpenSessions
}

// Handle ends the node's open sessions with ReasonServerRestart and appends
// domain.NodeStarted; it returns what it ended and where the NodeStarted
// event landed. The caller must let the online-users projection catch up
// first, so that the sessions it lists are complete. It returns the store's
// and the read model's errors; a retry ends only what is still open.
func (h StartNodeHandler) Handle(ctx context.Context, cmd StartNode) (SessionsEnded, error) {
	if err := domain.CheckID("nodeId", cmd.NodeID); err != nil {
		return SessionsEnded{}, err
	}
	out, err := endOpenSessions(ctx, h.Deps, h.Sessions, cmd.NodeID, domain.ReasonServerRestart, cmd.Cause)
	if err != nil {
		return out, err
	}
	ev := domain.StartNode(cmd.NodeID, h.Now())
	pos, err := appendOne(ctx, h.Store, ev, cmd.eventID(ev.EventType(), 0), eventstore.Any, cmd.Cause, domain.Actor{NodeID: cmd.NodeID})
	if err != nil {
		return out, err
	}
	out.Position = pos
	return out, nil
}

// endOpenSessions ends every session and chat membership the read model
// lists as open on nodeID, for reason, one EndSession per session. The event
// ids derive from the sessions, so whoever ends them (the node itself after a
// restart, or another server that found it dead), and however often, each is
// ended once.
func endOpenSessions(ctx context.Context, deps Deps, open OpenSessions, nodeID, reason string, cause Cause) (SessionsEnded, error) {
	sessions, memberships, err := open.OpenSessionsOf(ctx, nodeID)
	if err != nil {
		return SessionsEnded{}, err
	}
	ends := map[string]*EndSession{} // by session id
	var order []string
	endOf := func(sid, uid string) *EndSession {
		if e, ok := ends[sid]; ok {
			return e
		}
		c := cause
		c.Actor = domain.Actor{UserID: uid, SessionID: sid, NodeID: nodeID}
		ends[sid] = &EndSession{Cause: c, Reason: reason}
		order = append(order, sid)
		return ends[sid]
	}
	for _, joined := range memberships {
		e := endOf(joined.SessionID, joined.UserID)
		e.Chats = append(e.Chats, joined)
	}
	for _, joined := range sessions {
		endOf(joined.SessionID, joined.UserID).Presence = &joined
	}
	var out SessionsEnded
	for _, sid := range order {
		e := ends[sid]
		stored, err := EndSessionHandler{deps}.Handle(ctx, *e)
		if err != nil {
			return out, err
		}
		out.Position = stored.Position
		out.EndedMemberships += len(e.Chats)
		if e.Presence != nil {
			out.EndedSessions++
		}
	}
	return out, nil
}

// EndLostNode records that another server found NodeID dead: the sessions
// it held are ended with ReasonNodeDown, so its users leave presence and
// their chat rooms. The caller must know the node is gone (with PostgreSQL,
// by holding the node's liveness lock while this runs), or it would end the
// sessions of a live server.
type EndLostNode struct {
	Cause
	NodeID string
}

// EndLostNodeHandler handles EndLostNode.
type EndLostNodeHandler struct {
	Deps
	Sessions OpenSessions
}

// Handle ends the lost node's open sessions and reports how many it ended.
// It returns INVALID_PAYLOAD for a bad node id, and the store's and the
// read model's errors; a retry ends only what is still open.
func (h EndLostNodeHandler) Handle(ctx context.Context, cmd EndLostNode) (SessionsEnded, error) {
	if err := domain.CheckID("nodeId", cmd.NodeID); err != nil {
		return SessionsEnded{}, err
	}
	return endOpenSessions(ctx, h.Deps, h.Sessions, cmd.NodeID, domain.ReasonNodeDown, cmd.Cause)
}
