package socketadapter

import (
	"encoding/json"
	"fmt"

	"github.com/auraos/realtime/domain"
)

// Payload decoders. Socket.IO hands each event's arguments over as decoded
// JSON (map[string]any, []any, string, float64, bool, nil). The decoders
// check the shape the source document gives each payload — wrong types,
// missing fields and nulls are EINVALID errors naming the field — and leave
// length limits and enums to the domain. They never panic, whatever the
// input.

// object returns the payload as a JSON object.
func object(payload any) (map[string]any, error) {
	m, ok := payload.(map[string]any)
	if !ok {
		return nil, domain.Errorf(domain.EINVALID, "payload must be an object, not %s", jsonType(payload))
	}
	return m, nil
}

// jsonType names the JSON type of a decoded value, for error messages.
func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case float64, json.Number:
		return "a number"
	case bool:
		return "a boolean"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// str reads a required string field.
func str(m map[string]any, field, path string) (string, error) {
	v, ok := m[field]
	if !ok || v == nil {
		return "", domain.FieldErrorf(path, "%s is required", path)
	}
	s, ok := v.(string)
	if !ok {
		return "", domain.FieldErrorf(path, "%s must be a string, not %s", path, jsonType(v))
	}
	return s, nil
}

// optStr reads an optional string field; absent and null read as "".
func optStr(m map[string]any, field, path string) (string, error) {
	v, ok := m[field]
	if !ok || v == nil {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", domain.FieldErrorf(path, "%s must be a string, not %s", path, jsonType(v))
	}
	return s, nil
}

// stringPayload reads a payload that is a bare string (a room name).
func stringPayload(payload any, path string) (string, error) {
	s, ok := payload.(string)
	if !ok {
		return "", domain.FieldErrorf(path, "payload must be a string (the %s), not %s", path, jsonType(payload))
	}
	return s, nil
}

// rawJSON re-encodes a free-form field (data: any) as JSON; absent reads as
// nil.
func rawJSON(m map[string]any, field, path string) (json.RawMessage, error) {
	v, ok := m[field]
	if !ok {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, domain.FieldErrorf(path, "%s is not valid JSON", path)
	}
	return b, nil
}

// userProfile reads a userProfile object.
func userProfile(m map[string]any, field string) (domain.UserProfile, error) {
	v, ok := m[field]
	if !ok || v == nil {
		return domain.UserProfile{}, domain.FieldErrorf(field, "%s is required", field)
	}
	pm, ok := v.(map[string]any)
	if !ok {
		return domain.UserProfile{}, domain.FieldErrorf(field, "%s must be an object, not %s", field, jsonType(v))
	}
	var p domain.UserProfile
	var err error
	if p.UID, err = str(pm, "uid", field+".uid"); err != nil {
		return p, err
	}
	if p.Email, err = str(pm, "email", field+".email"); err != nil {
		return p, err
	}
	if p.DisplayName, err = optStr(pm, "displayName", field+".displayName"); err != nil {
		return p, err
	}
	if p.PhotoURL, err = optStr(pm, "photoURL", field+".photoURL"); err != nil {
		return p, err
	}
	return p, nil
}

// joinUserRoomPayload is join_user_room's payload.
type joinUserRoomPayload struct {
	UserID  string
	Profile domain.UserProfile
}

func decodeJoinUserRoom(payload any) (joinUserRoomPayload, error) {
	var p joinUserRoomPayload
	m, err := object(payload)
	if err != nil {
		return p, err
	}
	if p.UserID, err = str(m, "userId", "userId"); err != nil {
		return p, err
	}
	p.Profile, err = userProfile(m, "userProfile")
	return p, err
}

// roomProfilePayload is the payload of join_chat_room, typing_start and
// typing_stop.
type roomProfilePayload struct {
	RoomName string
	Profile  domain.UserProfile
}

func decodeRoomProfile(payload any) (roomProfilePayload, error) {
	var p roomProfilePayload
	m, err := object(payload)
	if err != nil {
		return p, err
	}
	if p.RoomName, err = str(m, "roomName", "roomName"); err != nil {
		return p, err
	}
	p.Profile, err = userProfile(m, "userProfile")
	return p, err
}

func decodeSendMessage(payload any) (domain.PostMessageInput, error) {
	var in domain.PostMessageInput
	m, err := object(payload)
	if err != nil {
		return in, err
	}
	if in.RoomName, err = str(m, "roomName", "roomName"); err != nil {
		return in, err
	}
	if in.Message, err = str(m, "message", "message"); err != nil {
		return in, err
	}
	if in.Profile, err = userProfile(m, "userProfile"); err != nil {
		return in, err
	}
	if in.MessageType, err = optStr(m, "messageType", "messageType"); err != nil {
		return in, err
	}
	in.ClientMsgID, err = optStr(m, "clientMsgId", "clientMsgId")
	return in, err
}

// notificationPayload is send_notification's payload.
type notificationPayload struct {
	To, Title, Message, Type string
	Data                     json.RawMessage
}

func decodeSendNotification(payload any) (notificationPayload, error) {
	var p notificationPayload
	m, err := object(payload)
	if err != nil {
		return p, err
	}
	if p.To, err = str(m, "to", "to"); err != nil {
		return p, err
	}
	v, ok := m["notification"]
	if !ok || v == nil {
		return p, domain.FieldErrorf("notification", "notification is required")
	}
	n, ok := v.(map[string]any)
	if !ok {
		return p, domain.FieldErrorf("notification", "notification must be an object, not %s", jsonType(v))
	}
	if p.Title, err = str(n, "title", "notification.title"); err != nil {
		return p, err
	}
	if p.Message, err = str(n, "message", "notification.message"); err != nil {
		return p, err
	}
	if p.Type, err = str(n, "type", "notification.type"); err != nil {
		return p, err
	}
	p.Data, err = rawJSON(n, "data", "notification.data")
	return p, err
}

// alertPayload is broadcast_system_alert's payload.
type alertPayload struct {
	Title, Message, Severity string
	Action                   *domain.AlertAction
}

func decodeSystemAlert(payload any) (alertPayload, error) {
	var p alertPayload
	m, err := object(payload)
	if err != nil {
		return p, err
	}
	if p.Title, err = str(m, "title", "title"); err != nil {
		return p, err
	}
	if p.Message, err = str(m, "message", "message"); err != nil {
		return p, err
	}
	if p.Severity, err = str(m, "severity", "severity"); err != nil {
		return p, err
	}
	if v, ok := m["action"]; ok && v != nil {
		am, ok := v.(map[string]any)
		if !ok {
			return p, domain.FieldErrorf("action", "action must be an object, not %s", jsonType(v))
		}
		var a domain.AlertAction
		if a.Label, err = str(am, "label", "action.label"); err != nil {
			return p, err
		}
		if a.URL, err = str(am, "url", "action.url"); err != nil {
			return p, err
		}
		p.Action = &a
	}
	return p, nil
}

// appStatusPayload is update_app_status's payload.
type appStatusPayload struct{ AppID, Status string }

func decodeAppStatus(payload any) (appStatusPayload, error) {
	var p appStatusPayload
	m, err := object(payload)
	if err != nil {
		return p, err
	}
	if p.AppID, err = str(m, "appId", "appId"); err != nil {
		return p, err
	}
	p.Status, err = str(m, "status", "status")
	return p, err
}

// agentPayload is data_agent_update's payload.
type agentPayload struct {
	AgentID, Status string
	Data            json.RawMessage
}

func decodeDataAgent(payload any) (agentPayload, error) {
	var p agentPayload
	m, err := object(payload)
	if err != nil {
		return p, err
	}
	if p.AgentID, err = str(m, "agentId", "agentId"); err != nil {
		return p, err
	}
	if p.Status, err = str(m, "status", "status"); err != nil {
		return p, err
	}
	p.Data, err = rawJSON(m, "data", "data")
	return p, err
}
