package socketadapter

import (
	"encoding/json"
	"time"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/socketadapter/wire"
)

// Server→client payloads, exactly as the source document gives them. The
// read-model answers that `auraos query` prints too, with the date format and
// the encoding, live in package wire; these are the adapter's own.

// encode marshals a payload once, so a broadcast to many sockets sends the
// same bytes.
var encode = wire.Encode

type userJoinedPayload struct {
	ID       string `json:"id"`
	SocketID string `json:"socketId"`
}

type joinedChatPayload struct {
	Room    string `json:"room"`
	Message string `json:"message"`
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
