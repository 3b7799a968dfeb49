package socketadapter

import (
	"encoding/json"
	"time"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/projections"
)

// Server→client payloads, exactly as the source document gives them. Dates
// are ISO 8601 strings with milliseconds in UTC, as a JavaScript Date
// serializes.

// jsDate formats t as JavaScript's Date.prototype.toISOString does.
func jsDate(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// encode marshals a payload once, so a broadcast to many sockets sends the
// same bytes. The payload types below always marshal.
func encode(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic("socketadapter: payload does not marshal: " + err.Error())
	}
	return b
}

type userJoinedPayload struct {
	ID       string `json:"id"`
	SocketID string `json:"socketId"`
}

type onlineUserPayload struct {
	ID          string             `json:"id"`
	SocketID    string             `json:"socketId"`
	ConnectedAt string             `json:"connectedAt"`
	UserProfile domain.UserProfile `json:"userProfile"`
	Status      string             `json:"status"`
	LastSeen    string             `json:"lastSeen"`
}

func onlineUsersPayload(users []projections.OnlineUser) []onlineUserPayload {
	out := make([]onlineUserPayload, len(users))
	for i, u := range users {
		out[i] = onlineUserPayload{
			ID: u.ID, SocketID: u.SocketID, ConnectedAt: jsDate(u.ConnectedAt), UserProfile: u.Profile,
			Status: u.Status, LastSeen: jsDate(u.LastSeen),
		}
	}
	return out
}

type joinedChatPayload struct {
	Room    string `json:"room"`
	Message string `json:"message"`
}

// messagePayload is new_message and each entry of chat_history.
type messagePayload struct {
	ID          string  `json:"id"`
	RoomName    string  `json:"roomName"`
	UserID      string  `json:"userId"`
	UserName    string  `json:"userName"`
	UserAvatar  *string `json:"userAvatar"`
	Message     string  `json:"message"`
	MessageType string  `json:"messageType"`
	Timestamp   string  `json:"timestamp"`
	IsAI        bool    `json:"isAI"`
}

func messageFromEvent(m domain.MessagePosted) messagePayload {
	return messagePayload{
		ID: m.ID, RoomName: m.RoomName, UserID: m.UserID, UserName: m.UserName, UserAvatar: m.UserAvatar,
		Message: m.Message, MessageType: string(m.MessageType), Timestamp: jsDate(m.At), IsAI: m.IsAI,
	}
}

func historyPayload(msgs []projections.ChatMessage) []messagePayload {
	out := make([]messagePayload, len(msgs))
	for i, m := range msgs {
		out[i] = messagePayload{
			ID: m.ID, RoomName: m.RoomName, UserID: m.UserID, UserName: m.UserName, UserAvatar: m.UserAvatar,
			Message: m.Message, MessageType: m.MessageType, Timestamp: jsDate(m.Timestamp), IsAI: m.IsAI,
		}
	}
	return out
}

// chatMemberPayload is user_joined_chat and user_left_chat.
type chatMemberPayload struct {
	User    domain.UserProfile `json:"user"`
	Message string             `json:"message"`
}

type typingPayload struct {
	UserID   string `json:"userId"`
	UserName string `json:"userName"`
	IsTyping bool   `json:"isTyping"`
}

type notificationOut struct {
	Title   string          `json:"title"`
	Message string          `json:"message"`
	Type    string          `json:"type"`
	Data    json.RawMessage `json:"data,omitempty"`
}

type systemAlertOut struct {
	Title    string              `json:"title"`
	Message  string              `json:"message"`
	Severity string              `json:"severity"`
	Action   *domain.AlertAction `json:"action,omitempty"`
}

type appUpdatedPayload struct {
	AppID     string `json:"appId"`
	Status    string `json:"status"`
	UpdatedAt string `json:"updatedAt"`
}

type systemStatusPayload struct {
	TotalApps    int    `json:"totalApps"`
	ActiveApps   int    `json:"activeApps"`
	InactiveApps int    `json:"inactiveApps"`
	Uptime       string `json:"uptime"`
	Timestamp    string `json:"timestamp"`
}

type dataAgentPayload struct {
	AgentID   string          `json:"agentId"`
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	Timestamp string          `json:"timestamp"`
}

// errorPayload is the `error` event: a client-safe message, the code, and
// which event (and field) was refused.
type errorPayload struct {
	Message string       `json:"message"`
	Code    string       `json:"code"`
	Details errorDetails `json:"details"`
}

type errorDetails struct {
	Event string `json:"event"`
	Field string `json:"field,omitempty"`
}

// ackError is the error of a failed acknowledgement.
type ackError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// uptime formats how long the server has run, as whole seconds ("1h2m3s").
func uptime(d time.Duration) string { return d.Truncate(time.Second).String() }
