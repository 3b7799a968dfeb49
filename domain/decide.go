package domain

import (
	"encoding/json"
	"strings"
	"time"
)

// Actor is who causes a command: the user the socket is bound to (empty until
// it names one in open mode), the socket's session id, the server node that
// holds the socket, and whether a verified token made the user an admin.
type Actor struct {
	UserID    string
	SessionID string
	NodeID    string
	Admin     bool
}

// ActAs decides whether a may act as the user uid. An actor not yet bound to
// a user is bound to uid (the caller keeps the returned actor); an actor bound
// to another user is refused with EFORBIDDEN. It returns EINVALID for an
// invalid uid.
func (a Actor) ActAs(field, uid string) (Actor, error) {
	if err := CheckID(field, uid); err != nil {
		return a, err
	}
	if a.UserID == "" {
		a.UserID = uid
		return a, nil
	}
	if a.UserID != uid {
		return a, &Error{Code: EFORBIDDEN, Field: field, Message: "this connection acts as another user; it cannot act as " + uid}
	}
	return a, nil
}

// actAsProfile binds a to the user a profile names.
func (a Actor) actAsProfile(field string, p UserProfile) (Actor, error) {
	if err := p.Validate(field); err != nil {
		return a, err
	}
	return a.ActAs(field+".uid", p.UID)
}

// JoinPresence decides a join_user_room: the named user and the profile's
// uid must agree and be the actor's. It returns the event and the actor bound
// to the user; EINVALID or EFORBIDDEN otherwise.
func JoinPresence(a Actor, userID string, profile UserProfile, at time.Time) (PresenceJoined, Actor, error) {
	bound, err := a.ActAs("userId", userID)
	if err != nil {
		return PresenceJoined{}, a, err
	}
	if err := profile.Validate("userProfile"); err != nil {
		return PresenceJoined{}, a, err
	}
	if profile.UID != userID {
		return PresenceJoined{}, a, &Error{Code: EFORBIDDEN, Field: "userProfile.uid", Message: "userProfile.uid names another user than userId"}
	}
	return PresenceJoined{
		SchemaVersion: SchemaVersion, UserID: userID, SessionID: a.SessionID, NodeID: a.NodeID,
		Profile: profile, Status: "online", At: stamp(at),
	}, bound, nil
}

// LeavePresence decides the end of a session that joined presence.
func LeavePresence(userID, sessionID, nodeID, reason string, at time.Time) PresenceLeft {
	return PresenceLeft{SchemaVersion: SchemaVersion, UserID: userID, SessionID: sessionID, NodeID: nodeID, Reason: reason, At: stamp(at)}
}

// JoinChat decides a join_chat_room. It returns EINVALID for a bad room or
// profile and EFORBIDDEN for a profile of another user.
func JoinChat(a Actor, room string, profile UserProfile, at time.Time) (ChatMemberJoined, Actor, error) {
	if err := CheckRoomName("roomName", room); err != nil {
		return ChatMemberJoined{}, a, err
	}
	bound, err := a.actAsProfile("userProfile", profile)
	if err != nil {
		return ChatMemberJoined{}, a, err
	}
	return ChatMemberJoined{
		SchemaVersion: SchemaVersion, RoomName: room, UserID: profile.UID, SessionID: a.SessionID, NodeID: a.NodeID,
		Profile: profile, At: stamp(at),
	}, bound, nil
}

// LeaveChat decides that a session's chat membership ends.
func LeaveChat(joined ChatMemberJoined, reason string, at time.Time) ChatMemberLeft {
	return ChatMemberLeft{
		SchemaVersion: SchemaVersion, RoomName: joined.RoomName, UserID: joined.UserID, SessionID: joined.SessionID,
		NodeID: joined.NodeID, Profile: joined.Profile, Reason: reason, At: stamp(at),
	}
}

// PostMessageInput is a send_message as the client sent it.
type PostMessageInput struct {
	RoomName    string
	Message     string
	Profile     UserProfile
	MessageType string
	ClientMsgID string
}

// PostMessage decides a send_message. The message is trimmed and must then be
// 1–1000 characters; messageType must be text or system. id is the message's
// (and its event's) id. It returns EINVALID or EFORBIDDEN errors.
func PostMessage(a Actor, in PostMessageInput, id string, at time.Time) (MessagePosted, Actor, error) {
	if err := CheckRoomName("roomName", in.RoomName); err != nil {
		return MessagePosted{}, a, err
	}
	text := strings.TrimSpace(in.Message)
	if err := checkText("message", text, MinChatMessageLength, MaxChatMessageLength, true); err != nil {
		return MessagePosted{}, a, err
	}
	mt, err := ParseClientMessageType(in.MessageType)
	if err != nil {
		return MessagePosted{}, a, err
	}
	if in.ClientMsgID != "" {
		if err := checkText("clientMsgId", in.ClientMsgID, 1, MaxClientMsgIDLength, false); err != nil {
			return MessagePosted{}, a, err
		}
	}
	bound, err := a.actAsProfile("userProfile", in.Profile)
	if err != nil {
		return MessagePosted{}, a, err
	}
	var avatar *string
	if in.Profile.PhotoURL != "" {
		avatar = &in.Profile.PhotoURL
	}
	return MessagePosted{
		SchemaVersion: SchemaVersion, ID: id, RoomName: in.RoomName, UserID: in.Profile.UID, UserName: in.Profile.Name(),
		UserAvatar: avatar, Message: text, MessageType: mt, ClientMsgID: in.ClientMsgID, At: stamp(at),
	}, bound, nil
}

// PostAssistantMessage decides the server assistant's message in a room:
// an ai_response replying to trigger, or a system message (isAI false) when
// the assistant could not answer. The text is trimmed and cut to the chat
// message limit.
func PostAssistantMessage(trigger MessagePosted, assistantID, assistantName, text string, failed bool, id string, at time.Time) MessagePosted {
	text = strings.TrimSpace(text)
	if r := []rune(text); len(r) > MaxChatMessageLength {
		text = string(r[:MaxChatMessageLength-1]) + "…"
	}
	m := MessagePosted{
		SchemaVersion: SchemaVersion, ID: id, RoomName: trigger.RoomName, UserID: assistantID, UserName: assistantName,
		Message: text, MessageType: MessageAIResponse, IsAI: true, InReplyTo: trigger.ID, At: stamp(at),
	}
	if failed {
		m.MessageType, m.IsAI = MessageSystem, false
	}
	return m
}

// SendNotification decides a send_notification from the actor to the user
// to. It returns EINVALID errors.
func SendNotification(a Actor, to, title, message, typ string, data json.RawMessage, at time.Time) (NotificationSent, error) {
	if err := CheckID("to", to); err != nil {
		return NotificationSent{}, err
	}
	if err := checkText("notification.title", title, 1, MaxNotificationTitleLength, false); err != nil {
		return NotificationSent{}, err
	}
	if err := checkText("notification.message", message, 1, MaxNotificationMessageLength, true); err != nil {
		return NotificationSent{}, err
	}
	nt, err := ParseNotificationType(typ)
	if err != nil {
		return NotificationSent{}, err
	}
	if err := CheckData("notification.data", data); err != nil {
		return NotificationSent{}, err
	}
	return NotificationSent{
		SchemaVersion: SchemaVersion, To: to, From: a.UserID, Title: title, Message: message, Type: nt, Data: data, At: stamp(at),
	}, nil
}

// BroadcastAlert decides a broadcast_system_alert: admins only (EFORBIDDEN
// otherwise), and EINVALID for a bad alert.
func BroadcastAlert(a Actor, title, message, severity string, action *AlertAction, at time.Time) (SystemAlertBroadcast, error) {
	if !a.Admin {
		return SystemAlertBroadcast{}, Errorf(EFORBIDDEN, "broadcast_system_alert is for admins only")
	}
	if err := checkText("title", title, 1, MaxAlertTitleLength, false); err != nil {
		return SystemAlertBroadcast{}, err
	}
	if err := checkText("message", message, 1, MaxAlertMessageLength, true); err != nil {
		return SystemAlertBroadcast{}, err
	}
	sev, err := ParseSeverity(severity)
	if err != nil {
		return SystemAlertBroadcast{}, err
	}
	if action != nil {
		if err := action.Validate(); err != nil {
			return SystemAlertBroadcast{}, err
		}
	}
	return SystemAlertBroadcast{
		SchemaVersion: SchemaVersion, Title: title, Message: message, Severity: sev, Action: action, By: a.UserID, At: stamp(at),
	}, nil
}

// ChangeAppStatus decides an update_app_status given the app's current
// status (empty for an app never seen). It returns EINVALID errors.
func ChangeAppStatus(a Actor, appID, status string, previous AppStatus, at time.Time) (AppStatusChanged, error) {
	if err := CheckID("appId", appID); err != nil {
		return AppStatusChanged{}, err
	}
	st, err := ParseAppStatus(status)
	if err != nil {
		return AppStatusChanged{}, err
	}
	return AppStatusChanged{
		SchemaVersion: SchemaVersion, AppID: appID, Status: st, PreviousStatus: previous, By: a.UserID, At: stamp(at),
	}, nil
}

// UpdateDataAgent decides a data_agent_update: an agent id, a status of
// 1–64 characters and JSON data of at most 16 KiB (absent data is null). It
// returns EINVALID errors.
func UpdateDataAgent(a Actor, agentID, status string, data json.RawMessage, at time.Time) (DataAgentUpdated, error) {
	if err := CheckID("agentId", agentID); err != nil {
		return DataAgentUpdated{}, err
	}
	if err := checkText("status", status, 1, MaxStatusLength, false); err != nil {
		return DataAgentUpdated{}, err
	}
	if data == nil {
		data = json.RawMessage("null")
	}
	if err := CheckData("data", data); err != nil {
		return DataAgentUpdated{}, err
	}
	return DataAgentUpdated{SchemaVersion: SchemaVersion, AgentID: agentID, Status: status, Data: data, By: a.UserID, At: stamp(at)}, nil
}

// stamp is the time an event records: UTC, to the microsecond, which every
// store and read model keeps exactly.
func stamp(at time.Time) time.Time { return at.UTC().Truncate(time.Microsecond) }

// StartNode decides the record of a server process starting.
func StartNode(nodeID string, at time.Time) NodeStarted {
	return NodeStarted{SchemaVersion: SchemaVersion, NodeID: nodeID, At: stamp(at)}
}

// ForgetUser decides the record of erasing a user: the user id must be a
// valid id and the reason must say why (1–200 characters, it stays in clear
// in the log). It returns EINVALID errors.
func ForgetUser(userID, reason, by string, at time.Time) (UserForgotten, error) {
	if err := CheckID("userId", userID); err != nil {
		return UserForgotten{}, err
	}
	if err := checkText("reason", reason, 1, MaxForgetReasonLength, false); err != nil {
		return UserForgotten{}, err
	}
	if err := CheckID("by", by); err != nil {
		return UserForgotten{}, err
	}
	return UserForgotten{SchemaVersion: SchemaVersion, UserID: userID, Reason: reason, By: by, At: stamp(at)}, nil
}
