// Package wire holds the server→client payloads that more than the Socket.IO
// adapter produces: the read-model answers (online_users, chat_history,
// app_updated, system_status_update) and the encoding they go out in. The
// adapter pushes them to sockets and `auraos query` prints them, so both
// give one state exactly the same JSON. It imports projections, never the
// adapter, so any package may use it.
package wire

import (
	"encoding/json"
	"time"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/projections"
)

// Date formats t as JavaScript's Date.prototype.toISOString does: ISO 8601 in
// UTC with milliseconds, which is how the source document's server sends
// every date.
func Date(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// Encode marshals a payload once, so a broadcast to many sockets sends the
// same bytes. It panics on a value that does not marshal, which none of this
// package's payload types (nor the adapter's) can be.
func Encode(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic("wire: payload does not marshal: " + err.Error())
	}
	return b
}

// OnlineUser is one entry of online_users.
type OnlineUser struct {
	ID          string             `json:"id"`
	SocketID    string             `json:"socketId"`
	ConnectedAt string             `json:"connectedAt"`
	UserProfile domain.UserProfile `json:"userProfile"`
	Status      string             `json:"status"`
	LastSeen    string             `json:"lastSeen"`
}

// OnlineUsers is the online_users payload of the users, in their order. It
// is never nil, so no users encode as [] rather than null.
func OnlineUsers(users []projections.OnlineUser) []OnlineUser {
	out := make([]OnlineUser, len(users))
	for i, u := range users {
		out[i] = OnlineUser{
			ID: u.ID, SocketID: u.SocketID, ConnectedAt: Date(u.ConnectedAt), UserProfile: u.Profile,
			Status: u.Status, LastSeen: Date(u.LastSeen),
		}
	}
	return out
}

// Message is new_message and each entry of chat_history.
type Message struct {
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

// MessageFromEvent is the new_message payload of a stored message.
func MessageFromEvent(m domain.MessagePosted) Message {
	return Message{
		ID: m.ID, RoomName: m.RoomName, UserID: m.UserID, UserName: m.UserName, UserAvatar: m.UserAvatar,
		Message: m.Message, MessageType: string(m.MessageType), Timestamp: Date(m.At), IsAI: m.IsAI,
	}
}

// History is the chat_history payload of the messages, in their order. It is
// never nil, so an empty room encodes as [].
func History(msgs []projections.ChatMessage) []Message {
	out := make([]Message, len(msgs))
	for i, m := range msgs {
		out[i] = Message{
			ID: m.ID, RoomName: m.RoomName, UserID: m.UserID, UserName: m.UserName, UserAvatar: m.UserAvatar,
			Message: m.Message, MessageType: m.MessageType, Timestamp: Date(m.Timestamp), IsAI: m.IsAI,
		}
	}
	return out
}

// AppUpdated is app_updated: one app's status and when it changed.
type AppUpdated struct {
	AppID     string `json:"appId"`
	Status    string `json:"status"`
	UpdatedAt string `json:"updatedAt"`
}

// AppUpdatedFromEvent is the app_updated payload of a stored status change.
func AppUpdatedFromEvent(e domain.AppStatusChanged) AppUpdated {
	return AppUpdated{AppID: e.AppID, Status: string(e.Status), UpdatedAt: Date(e.At)}
}

// Apps is the app_updated payload of each app the read model holds, in their
// order; never nil.
func Apps(apps []projections.App) []AppUpdated {
	out := make([]AppUpdated, len(apps))
	for i, a := range apps {
		out[i] = AppUpdated{AppID: a.AppID, Status: a.Status, UpdatedAt: Date(a.UpdatedAt)}
	}
	return out
}

// AppTotals are the app counts of system_status_update.
type AppTotals struct {
	TotalApps    int `json:"totalApps"`
	ActiveApps   int `json:"activeApps"`
	InactiveApps int `json:"inactiveApps"`
}

// Totals is the counts part of system_status_update for the read model's
// totals.
func Totals(t projections.AppTotals) AppTotals {
	return AppTotals{TotalApps: t.Total, ActiveApps: t.Active, InactiveApps: t.Inactive}
}

// SystemStatus is system_status_update: the app counts (their fields
// inlined, as the source document lists them), the server's uptime and the
// time of the report.
type SystemStatus struct {
	AppTotals
	Uptime    string `json:"uptime"`
	Timestamp string `json:"timestamp"`
}
