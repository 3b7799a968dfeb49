package domain

import (
	"encoding/json"
	"fmt"
	"time"
)

// SchemaVersion is the version of the JSON layout of every event type below.
// A change that old readers cannot read bumps it, and Decode learns to read
// both.
const SchemaVersion = 1

// Event types, past tense. One stream per consistency boundary: see the
// *Stream functions.
const (
	TypePresenceJoined       = "PresenceJoined"
	TypePresenceLeft         = "PresenceLeft"
	TypeChatMemberJoined     = "ChatMemberJoined"
	TypeChatMemberLeft       = "ChatMemberLeft"
	TypeMessagePosted        = "MessagePosted"
	TypeNotificationSent     = "NotificationSent"
	TypeSystemAlertBroadcast = "SystemAlertBroadcast"
	TypeAppStatusChanged     = "AppStatusChanged"
	TypeDataAgentUpdated     = "DataAgentUpdated"
	TypeNodeStarted          = "NodeStarted"
	TypeUserForgotten        = "UserForgotten"
)

// EventTypes returns every event type above, in the order of their streams'
// life: the list readers check a type against and show when it is unknown.
func EventTypes() []string {
	return []string{
		TypePresenceJoined, TypePresenceLeft, TypeChatMemberJoined, TypeChatMemberLeft, TypeMessagePosted,
		TypeNotificationSent, TypeSystemAlertBroadcast, TypeAppStatusChanged, TypeDataAgentUpdated, TypeNodeStarted,
		TypeUserForgotten,
	}
}

// PresenceStream is the stream of a user's presence sessions. Ids are
// validated (1–128 characters, no control characters) before they become
// part of a stream name.
func PresenceStream(userID string) string { return "presence-" + userID }

// ChatStream is the stream of a chat room: members joining and leaving, and
// messages.
func ChatStream(room string) string { return "chat-" + room }

// NotifyStream is the stream of the notifications sent to a user.
func NotifyStream(userID string) string { return "notify-" + userID }

// AppStream is the stream of an app's status changes.
func AppStream(appID string) string { return "app-" + appID }

// AgentStream is the stream of a data agent's updates.
func AgentStream(agentID string) string { return "agent-" + agentID }

// NodeStream is the stream of a server process's lifecycle.
func NodeStream(nodeID string) string { return "node-" + nodeID }

// UserStream is the stream of what happens to a user as a data subject:
// being forgotten.
func UserStream(userID string) string { return "user-" + userID }

// SystemStream is the stream of system alerts.
func SystemStream() string { return "system" }

// Reasons a presence session or a chat membership ends.
const (
	ReasonDisconnect    = "disconnect"     // the socket went away
	ReasonLeave         = "leave"          // the client left the room
	ReasonServerRestart = "server_restart" // the server that held the socket restarted
	ReasonNodeDown      = "node_down"      // another server found the holding server dead
)

// Event is a domain event: its type and the stream it belongs to.
type Event interface {
	EventType() string
	Stream() string
}

// PresenceJoined records that a user's socket (a session) joined presence.
type PresenceJoined struct {
	SchemaVersion int         `json:"schemaVersion"`
	UserID        string      `json:"userId"`
	SessionID     string      `json:"sessionId"`
	NodeID        string      `json:"nodeId"`
	Profile       UserProfile `json:"profile"`
	Status        string      `json:"status"`
	At            time.Time   `json:"at"`
}

// PresenceLeft records that a session left presence, and why.
type PresenceLeft struct {
	SchemaVersion int       `json:"schemaVersion"`
	UserID        string    `json:"userId"`
	SessionID     string    `json:"sessionId"`
	NodeID        string    `json:"nodeId"`
	Reason        string    `json:"reason"`
	At            time.Time `json:"at"`
}

// ChatMemberJoined records that a session joined a chat room.
type ChatMemberJoined struct {
	SchemaVersion int         `json:"schemaVersion"`
	RoomName      string      `json:"roomName"`
	UserID        string      `json:"userId"`
	SessionID     string      `json:"sessionId"`
	NodeID        string      `json:"nodeId"`
	Profile       UserProfile `json:"profile"`
	At            time.Time   `json:"at"`
}

// ChatMemberLeft records that a session left a chat room, and why.
type ChatMemberLeft struct {
	SchemaVersion int         `json:"schemaVersion"`
	RoomName      string      `json:"roomName"`
	UserID        string      `json:"userId"`
	SessionID     string      `json:"sessionId"`
	NodeID        string      `json:"nodeId"`
	Profile       UserProfile `json:"profile"`
	Reason        string      `json:"reason"`
	At            time.Time   `json:"at"`
}

// MessagePosted records a chat message: from a user (text or system) or
// from the server's assistant (ai_response). ID is the event id.
type MessagePosted struct {
	SchemaVersion int         `json:"schemaVersion"`
	ID            string      `json:"id"`
	RoomName      string      `json:"roomName"`
	UserID        string      `json:"userId"`
	UserName      string      `json:"userName"`
	UserAvatar    *string     `json:"userAvatar"`
	Message       string      `json:"message"`
	MessageType   MessageType `json:"messageType"`
	IsAI          bool        `json:"isAI"`
	ClientMsgID   string      `json:"clientMsgId,omitempty"`
	InReplyTo     string      `json:"inReplyTo,omitempty"`
	At            time.Time   `json:"at"`
}

// NotificationSent records a notification from one user to another.
type NotificationSent struct {
	SchemaVersion int              `json:"schemaVersion"`
	To            string           `json:"to"`
	From          string           `json:"from"`
	Title         string           `json:"title"`
	Message       string           `json:"message"`
	Type          NotificationType `json:"type"`
	Data          json.RawMessage  `json:"data,omitempty"`
	At            time.Time        `json:"at"`
}

// SystemAlertBroadcast records a system-wide alert sent by an admin.
type SystemAlertBroadcast struct {
	SchemaVersion int          `json:"schemaVersion"`
	Title         string       `json:"title"`
	Message       string       `json:"message"`
	Severity      Severity     `json:"severity"`
	Action        *AlertAction `json:"action,omitempty"`
	By            string       `json:"by"`
	At            time.Time    `json:"at"`
}

// AppStatusChanged records an app's new status; PreviousStatus is empty for
// the app's first status.
type AppStatusChanged struct {
	SchemaVersion  int       `json:"schemaVersion"`
	AppID          string    `json:"appId"`
	Status         AppStatus `json:"status"`
	PreviousStatus AppStatus `json:"previousStatus,omitempty"`
	By             string    `json:"by"`
	At             time.Time `json:"at"`
}

// DataAgentUpdated records a data agent's reported status and data.
type DataAgentUpdated struct {
	SchemaVersion int             `json:"schemaVersion"`
	AgentID       string          `json:"agentId"`
	Status        string          `json:"status"`
	Data          json.RawMessage `json:"data"`
	By            string          `json:"by"`
	At            time.Time       `json:"at"`
}

// NodeStarted records that a server process started. Sessions that the node
// held before are ended by PresenceLeft events with ReasonServerRestart.
type NodeStarted struct {
	SchemaVersion int       `json:"schemaVersion"`
	NodeID        string    `json:"nodeId"`
	At            time.Time `json:"at"`
}

// UserForgotten records that an operator erased a user's personal data: the
// user's keys were deleted, so every personal field encrypted under them now
// reads as its placeholder, and read models rewrite the rows they hold about
// the user. By is the operator who asked; Reason why. Neither should carry
// personal data: they stay in clear.
type UserForgotten struct {
	SchemaVersion int       `json:"schemaVersion"`
	UserID        string    `json:"userId"`
	Reason        string    `json:"reason"`
	By            string    `json:"by"`
	At            time.Time `json:"at"`
}

func (PresenceJoined) EventType() string       { return TypePresenceJoined }
func (PresenceLeft) EventType() string         { return TypePresenceLeft }
func (ChatMemberJoined) EventType() string     { return TypeChatMemberJoined }
func (ChatMemberLeft) EventType() string       { return TypeChatMemberLeft }
func (MessagePosted) EventType() string        { return TypeMessagePosted }
func (NotificationSent) EventType() string     { return TypeNotificationSent }
func (SystemAlertBroadcast) EventType() string { return TypeSystemAlertBroadcast }
func (AppStatusChanged) EventType() string     { return TypeAppStatusChanged }
func (DataAgentUpdated) EventType() string     { return TypeDataAgentUpdated }
func (NodeStarted) EventType() string          { return TypeNodeStarted }
func (UserForgotten) EventType() string        { return TypeUserForgotten }

func (e PresenceJoined) Stream() string       { return PresenceStream(e.UserID) }
func (e PresenceLeft) Stream() string         { return PresenceStream(e.UserID) }
func (e ChatMemberJoined) Stream() string     { return ChatStream(e.RoomName) }
func (e ChatMemberLeft) Stream() string       { return ChatStream(e.RoomName) }
func (e MessagePosted) Stream() string        { return ChatStream(e.RoomName) }
func (e NotificationSent) Stream() string     { return NotifyStream(e.To) }
func (e SystemAlertBroadcast) Stream() string { return SystemStream() }
func (e AppStatusChanged) Stream() string     { return AppStream(e.AppID) }
func (e DataAgentUpdated) Stream() string     { return AgentStream(e.AgentID) }
func (e NodeStarted) Stream() string          { return NodeStream(e.NodeID) }
func (e UserForgotten) Stream() string        { return UserStream(e.UserID) }

// Decode reads the data of a stored event of the given type. It returns an
// EINVALID error for an unknown type or data that does not decode, and
// refuses schema versions newer than this code knows.
func Decode(eventType string, data []byte) (Event, error) {
	var e Event
	switch eventType {
	case TypePresenceJoined:
		e = decodeAs[PresenceJoined](data)
	case TypePresenceLeft:
		e = decodeAs[PresenceLeft](data)
	case TypeChatMemberJoined:
		e = decodeAs[ChatMemberJoined](data)
	case TypeChatMemberLeft:
		e = decodeAs[ChatMemberLeft](data)
	case TypeMessagePosted:
		if m, ok := decodeMessagePosted(data); ok && m.SchemaVersion <= SchemaVersion {
			return m, nil
		}
		e = decodeAs[MessagePosted](data)
	case TypeNotificationSent:
		e = decodeAs[NotificationSent](data)
	case TypeSystemAlertBroadcast:
		e = decodeAs[SystemAlertBroadcast](data)
	case TypeAppStatusChanged:
		e = decodeAs[AppStatusChanged](data)
	case TypeDataAgentUpdated:
		e = decodeAs[DataAgentUpdated](data)
	case TypeNodeStarted:
		e = decodeAs[NodeStarted](data)
	case TypeUserForgotten:
		e = decodeAs[UserForgotten](data)
	default:
		return nil, Errorf(EINVALID, "unknown event type %q", eventType)
	}
	if d, ok := e.(decodeFailure); ok {
		return nil, WrapError(EINVALID, fmt.Sprintf("%s: data does not decode", eventType), d.err)
	}
	return e, nil
}

// decodeFailure carries a decode error through Decode's switch.
type decodeFailure struct{ err error }

func (decodeFailure) EventType() string { return "" }
func (decodeFailure) Stream() string    { return "" }

// versioned is every event: it knows its schema version.
type versioned interface {
	Event
	schemaVersion() int
}

func decodeAs[T versioned](data []byte) Event {
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		return decodeFailure{err}
	}
	if n := v.schemaVersion(); n > SchemaVersion {
		return decodeFailure{fmt.Errorf("schema version %d is newer than this server knows (%d)", n, SchemaVersion)}
	}
	return v
}

func (e PresenceJoined) schemaVersion() int       { return e.SchemaVersion }
func (e PresenceLeft) schemaVersion() int         { return e.SchemaVersion }
func (e ChatMemberJoined) schemaVersion() int     { return e.SchemaVersion }
func (e ChatMemberLeft) schemaVersion() int       { return e.SchemaVersion }
func (e MessagePosted) schemaVersion() int        { return e.SchemaVersion }
func (e NotificationSent) schemaVersion() int     { return e.SchemaVersion }
func (e SystemAlertBroadcast) schemaVersion() int { return e.SchemaVersion }
func (e AppStatusChanged) schemaVersion() int     { return e.SchemaVersion }
func (e DataAgentUpdated) schemaVersion() int     { return e.SchemaVersion }
func (e NodeStarted) schemaVersion() int          { return e.SchemaVersion }
func (e UserForgotten) schemaVersion() int        { return e.SchemaVersion }

// Metadata says who and what caused an event. Every event the commands
// append carries it, so auditors can read who did what.
type Metadata struct {
	UserID        string `json:"userId,omitempty"`
	SocketID      string `json:"socketId,omitempty"`
	NodeID        string `json:"nodeId,omitempty"`
	Command       string `json:"command"`
	CorrelationID string `json:"correlationId,omitempty"`
	CausationID   string `json:"causationId,omitempty"`
}
