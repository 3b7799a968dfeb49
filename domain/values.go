package domain

import (
	"encoding/json"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits of PROTOCOL.md. Lengths count characters (Unicode code points).
const (
	MaxIDLength                  = 128
	MaxRoomNameLength            = 128
	MinChatMessageLength         = 1
	MaxChatMessageLength         = 1000
	MaxNotificationTitleLength   = 200
	MaxNotificationMessageLength = 2000
	MaxAlertTitleLength          = 200
	MaxAlertMessageLength        = 2000
	MaxDataBytes                 = 16 << 10
	MaxEmailLength               = 320
	MaxDisplayNameLength         = 128
	MaxURLLength                 = 2048
	MaxStatusLength              = 64
	MaxActionLabelLength         = 100
	MaxClientMsgIDLength         = 64
)

// checkText validates a string field: valid UTF-8, no control characters
// other than newline and tab when multiline, and a length in [min, max]
// characters. A required field (min ≥ 1) must hold more than white space,
// which shows as nothing: a room, a user or a title nobody can see. It
// returns an EINVALID error naming field.
func checkText(field, s string, min, max int, multiline bool) error {
	if !utf8.ValidString(s) {
		return FieldErrorf(field, "%s is not valid UTF-8", field)
	}
	n := utf8.RuneCountInString(s)
	if n < min {
		if n == 0 {
			return FieldErrorf(field, "%s must not be empty", field)
		}
		return FieldErrorf(field, "%s must be at least %d characters", field, min)
	}
	if n > max {
		return FieldErrorf(field, "%s must be at most %d characters", field, max)
	}
	if min >= 1 && strings.TrimSpace(s) == "" {
		return FieldErrorf(field, "%s must not be only white space", field)
	}
	for _, r := range s {
		if multiline && (r == '\n' || r == '\t' || r == '\r') {
			continue
		}
		if unicode.IsControl(r) {
			return FieldErrorf(field, "%s contains a control character", field)
		}
	}
	return nil
}

// CheckID validates a user, app or agent id: 1–128 characters without
// control characters. It returns an EINVALID error naming field.
func CheckID(field, id string) error {
	return checkText(field, id, 1, MaxIDLength, false)
}

// CheckRoomName validates a client room name: 1–128 characters without
// control characters. It returns an EINVALID error naming field.
func CheckRoomName(field, room string) error {
	return checkText(field, room, 1, MaxRoomNameLength, false)
}

// UserProfile is the profile a client sends with presence and chat events.
type UserProfile struct {
	UID         string `json:"uid"`
	Email       string `json:"email"`
	DisplayName string `json:"displayName,omitempty"`
	PhotoURL    string `json:"photoURL,omitempty"`
}

// Validate checks the profile. field prefixes the names of offending fields
// (for example "userProfile"). It returns EINVALID errors.
func (p UserProfile) Validate(field string) error {
	if err := CheckID(field+".uid", p.UID); err != nil {
		return err
	}
	if err := checkText(field+".email", p.Email, 1, MaxEmailLength, false); err != nil {
		return err
	}
	if !strings.Contains(p.Email, "@") || strings.ContainsAny(p.Email, " <>") {
		return FieldErrorf(field+".email", "%s.email is not an email address", field)
	}
	if err := checkText(field+".displayName", p.DisplayName, 0, MaxDisplayNameLength, false); err != nil {
		return err
	}
	if p.PhotoURL != "" {
		if err := CheckHTTPURL(field+".photoURL", p.PhotoURL); err != nil {
			return err
		}
	}
	return nil
}

// Name is what other users see: the display name, else the email, else the
// uid.
func (p UserProfile) Name() string {
	switch {
	case strings.TrimSpace(p.DisplayName) != "":
		return p.DisplayName
	case p.Email != "":
		return p.Email
	default:
		return p.UID
	}
}

// CheckHTTPURL validates an absolute http or https URL of at most 2048
// characters. It returns an EINVALID error naming field.
func CheckHTTPURL(field, s string) error {
	if err := checkText(field, s, 1, MaxURLLength, false); err != nil {
		return err
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return FieldErrorf(field, "%s must be an http or https URL", field)
	}
	return nil
}

// MessageType is the kind of a chat message.
type MessageType string

// The message types of the source document. Clients may send only text and
// system; ai_response is made by the server's assistant.
const (
	MessageText       MessageType = "text"
	MessageSystem     MessageType = "system"
	MessageAIResponse MessageType = "ai_response"
)

// ParseClientMessageType validates the messageType a client sent: empty
// means text; ai_response is refused, because only the server's assistant
// speaks as the AI. It returns an EINVALID error.
func ParseClientMessageType(s string) (MessageType, error) {
	switch MessageType(s) {
	case "":
		return MessageText, nil
	case MessageText, MessageSystem:
		return MessageType(s), nil
	case MessageAIResponse:
		return "", FieldErrorf("messageType", "messageType ai_response is reserved for the server's assistant")
	default:
		return "", FieldErrorf("messageType", "messageType must be text or system")
	}
}

// NotificationType is the kind of a notification.
type NotificationType string

// ParseNotificationType validates a notification type: info, success,
// warning or error. It returns an EINVALID error.
func ParseNotificationType(s string) (NotificationType, error) {
	switch s {
	case "info", "success", "warning", "error":
		return NotificationType(s), nil
	}
	return "", FieldErrorf("notification.type", "notification.type must be info, success, warning or error")
}

// Severity is the severity of a system alert.
type Severity string

// ParseSeverity validates an alert severity: info, warning or critical. It
// returns an EINVALID error.
func ParseSeverity(s string) (Severity, error) {
	switch s {
	case "info", "warning", "critical":
		return Severity(s), nil
	}
	return "", FieldErrorf("severity", "severity must be info, warning or critical")
}

// AppStatus is the status of an app.
type AppStatus string

// The app statuses of the source document.
const (
	AppActive   AppStatus = "active"
	AppInactive AppStatus = "inactive"
)

// ParseAppStatus validates an app status: active or inactive. It returns an
// EINVALID error.
func ParseAppStatus(s string) (AppStatus, error) {
	switch AppStatus(s) {
	case AppActive, AppInactive:
		return AppStatus(s), nil
	}
	return "", FieldErrorf("status", "status must be active or inactive")
}

// CheckData validates a free-form data field: JSON of at most 16 KiB. An
// absent field (nil) is allowed. It returns an EINVALID error naming field.
func CheckData(field string, data json.RawMessage) error {
	if data == nil {
		return nil
	}
	if len(data) > MaxDataBytes {
		return FieldErrorf(field, "%s must be at most %d bytes of JSON", field, MaxDataBytes)
	}
	if !json.Valid(data) || !utf8.Valid(data) {
		return FieldErrorf(field, "%s is not valid JSON", field)
	}
	return nil
}

// AlertAction is the optional link of a system alert.
type AlertAction struct {
	Label string `json:"label"`
	URL   string `json:"url"`
}

// Validate checks the action: a label of 1–100 characters and a URL that is
// either http(s) or a path on this site. It returns EINVALID errors.
func (a AlertAction) Validate() error {
	if err := checkText("action.label", a.Label, 1, MaxActionLabelLength, false); err != nil {
		return err
	}
	if strings.HasPrefix(a.URL, "/") && !strings.HasPrefix(a.URL, "//") {
		return checkText("action.url", a.URL, 1, MaxURLLength, false)
	}
	return CheckHTTPURL("action.url", a.URL)
}
