package socketadapter

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/auraos/realtime/domain"
)

// Fuzz targets for every payload decoder, each followed by the domain's
// decision, as a client event goes through them before anything is stored.
// Run one with: go test -run '^$' -fuzz FuzzSendMessage ./socketadapter
//
// Each checks that nothing panics and that whatever is accepted satisfies the
// limits of PROTOCOL.md.

var fuzzNow = time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)

// hostileSeeds are inputs a hostile client might send: wrong types, nulls,
// huge strings, deep nesting, invalid UTF-8, prototype-pollution keys.
func hostileSeeds() []string {
	deep := strings.Repeat(`{"a":`, 5000) + `1` + strings.Repeat(`}`, 5000)
	deepArray := strings.Repeat(`[`, 20000) + strings.Repeat(`]`, 20000)
	huge := `"` + strings.Repeat("x", 1<<20) + `"`
	return []string{
		`null`, `true`, `0`, `-1e309`, `"string"`, `[]`, `{}`, `[{}]`, deep, deepArray, huge,
		`{"__proto__":{"admin":true},"constructor":{"prototype":{"admin":true}}}`,
		`{"userId":null,"userProfile":null,"roomName":null,"message":null}`,
		`{"userId":1,"userProfile":"x","roomName":[],"message":{},"to":false}`,
		`{"userId":"u","userProfile":{"uid":"u","email":"\ud800","displayName":"\u0000"}}`,
		"{\"roomName\":\"r\xff\",\"message\":\"m\xfe\",\"userProfile\":{\"uid\":\"u\xc0\"}}",
		`{"roomName":"` + strings.Repeat("r", 200) + `","message":` + huge + `,"userProfile":{"uid":"u","email":"a@b.c"}}`,
		`{"to":"u","notification":{"title":"t","message":"m","type":"info","data":` + deep + `}}`,
		`{"agentId":"a","status":"s","data":{"__proto__":null}}`,
		`{"title":"t","message":"m","severity":"critical","action":{"label":"x","url":"javascript:alert(1)"}}`,
		`{"appId":"a","status":"active","__proto__":{"status":"inactive"}}`,
	}
}

func addSeeds(f *testing.F, valid ...string) {
	for _, s := range append(hostileSeeds(), valid...) {
		f.Add([]byte(s))
	}
}

// payloadOf decodes input as Socket.IO hands a payload over.
func payloadOf(data []byte) (any, bool) {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, false
	}
	return v, true
}

func checkText(t *testing.T, field, s string, max int) {
	t.Helper()
	if !utf8.ValidString(s) {
		t.Fatalf("%s accepted with invalid UTF-8: %q", field, s)
	}
	if n := utf8.RuneCountInString(s); n > max {
		t.Fatalf("%s accepted with %d characters (max %d)", field, n, max)
	}
}

// checkRequired is checkText for a field that must hold more than white
// space.
func checkRequired(t *testing.T, field, s string, max int) {
	t.Helper()
	checkText(t, field, s, max)
	if strings.TrimSpace(s) == "" {
		t.Fatalf("%s accepted blank: %q", field, s)
	}
}

func checkProfile(t *testing.T, p domain.UserProfile) {
	t.Helper()
	checkRequired(t, "uid", p.UID, domain.MaxIDLength)
	checkText(t, "email", p.Email, domain.MaxEmailLength)
	checkText(t, "displayName", p.DisplayName, domain.MaxDisplayNameLength)
	checkText(t, "photoURL", p.PhotoURL, domain.MaxURLLength)
	if p.PhotoURL != "" && !strings.HasPrefix(p.PhotoURL, "http://") && !strings.HasPrefix(p.PhotoURL, "https://") {
		t.Fatalf("photoURL %q accepted", p.PhotoURL)
	}
}

func FuzzJoinUserRoom(f *testing.F) {
	addSeeds(f, `{"userId":"user_123","userProfile":{"uid":"user_123","email":"user@example.com","displayName":"John Doe","photoURL":"https://example.com/avatar.jpg"}}`,
		`{"userId":"  ","userProfile":{"uid":"  ","email":"user@example.com"}}`)
	f.Fuzz(func(t *testing.T, data []byte) {
		v, ok := payloadOf(data)
		if !ok {
			return
		}
		p, err := decodeJoinUserRoom(v)
		if err != nil {
			return
		}
		ev, _, err := domain.JoinPresence(domain.Actor{}, p.UserID, p.Profile, fuzzNow)
		if err != nil {
			return
		}
		checkProfile(t, ev.Profile)
		if ev.UserID != ev.Profile.UID {
			t.Fatal("user id and profile disagree")
		}
	})
}

func FuzzRoomProfile(f *testing.F) {
	addSeeds(f, `{"roomName":"general_chat","userProfile":{"uid":"user_123","email":"user@example.com","displayName":"John Doe"}}`,
		`{"roomName":"   ","userProfile":{"uid":"user_123","email":"user@example.com"}}`)
	f.Fuzz(func(t *testing.T, data []byte) {
		v, ok := payloadOf(data)
		if !ok {
			return
		}
		p, err := decodeRoomProfile(v)
		if err != nil {
			return
		}
		ev, _, err := domain.JoinChat(domain.Actor{}, p.RoomName, p.Profile, fuzzNow)
		if err != nil {
			return
		}
		checkRequired(t, "roomName", ev.RoomName, domain.MaxRoomNameLength)
		checkProfile(t, ev.Profile)
	})
}

func FuzzSendMessage(f *testing.F) {
	addSeeds(f, `{"roomName":"general_chat","message":"Hello everyone!","userProfile":{"uid":"user_123","email":"user@example.com","displayName":"John Doe"},"messageType":"text","clientMsgId":"c1"}`,
		`{"roomName":"r","message":"x","userProfile":{"uid":"u","email":"a@b.c"},"messageType":"ai_response"}`,
		`{"roomName":" \u3000","message":"x","userProfile":{"uid":"u","email":"a@b.c"}}`)
	f.Fuzz(func(t *testing.T, data []byte) {
		v, ok := payloadOf(data)
		if !ok {
			return
		}
		in, err := decodeSendMessage(v)
		if err != nil {
			return
		}
		m, _, err := domain.PostMessage(domain.Actor{}, in, "id", fuzzNow)
		if err != nil {
			return
		}
		checkText(t, "message", m.Message, domain.MaxChatMessageLength)
		if strings.TrimSpace(m.Message) == "" {
			t.Fatal("blank message accepted")
		}
		if m.MessageType != domain.MessageText && m.MessageType != domain.MessageSystem || m.IsAI {
			t.Fatalf("client message accepted as %s (isAI %v)", m.MessageType, m.IsAI)
		}
		checkRequired(t, "roomName", m.RoomName, domain.MaxRoomNameLength)
		checkText(t, "clientMsgId", m.ClientMsgID, domain.MaxClientMsgIDLength)
	})
}

func FuzzSendNotification(f *testing.F) {
	addSeeds(f, `{"to":"user_456","notification":{"title":"New Message","message":"You have a new message from John","type":"info","data":{"messageId":"msg_123"}}}`,
		`{"to":"  ","notification":{"title":"T","message":"M","type":"info"}}`,
		`{"to":"u","notification":{"title":"  ","message":"M","type":"info"}}`,
		`{"to":"u","notification":{"title":"T","message":" \n ","type":"info"}}`)
	f.Fuzz(func(t *testing.T, data []byte) {
		v, ok := payloadOf(data)
		if !ok {
			return
		}
		p, err := decodeSendNotification(v)
		if err != nil {
			return
		}
		n, err := domain.SendNotification(domain.Actor{UserID: "me"}, p.To, p.Title, p.Message, p.Type, p.Data, fuzzNow)
		if err != nil {
			return
		}
		checkRequired(t, "to", n.To, domain.MaxIDLength)
		checkRequired(t, "title", n.Title, domain.MaxNotificationTitleLength)
		checkRequired(t, "message", n.Message, domain.MaxNotificationMessageLength)
		if len(n.Data) > domain.MaxDataBytes || (n.Data != nil && !json.Valid(n.Data)) {
			t.Fatalf("data of %d bytes accepted", len(n.Data))
		}
	})
}

func FuzzSystemAlert(f *testing.F) {
	addSeeds(f, `{"title":"Maintenance Notice","message":"System will be down for maintenance in 10 minutes","severity":"warning","action":{"label":"Learn More","url":"/maintenance"}}`,
		`{"title":"  ","message":"M","severity":"info"}`)
	f.Fuzz(func(t *testing.T, data []byte) {
		v, ok := payloadOf(data)
		if !ok {
			return
		}
		p, err := decodeSystemAlert(v)
		if err != nil {
			return
		}
		if _, err := domain.BroadcastAlert(domain.Actor{UserID: "u"}, p.Title, p.Message, p.Severity, p.Action, fuzzNow); err == nil {
			t.Fatal("a non-admin's alert was accepted")
		}
		a, err := domain.BroadcastAlert(domain.Actor{UserID: "root", Admin: true}, p.Title, p.Message, p.Severity, p.Action, fuzzNow)
		if err != nil {
			return
		}
		checkRequired(t, "title", a.Title, domain.MaxAlertTitleLength)
		if a.Action != nil && strings.HasPrefix(strings.ToLower(strings.TrimSpace(a.Action.URL)), "javascript:") {
			t.Fatalf("action url %q accepted", a.Action.URL)
		}
	})
}

func FuzzAppStatus(f *testing.F) {
	addSeeds(f, `{"appId":"app_123","status":"active"}`, `{"appId":"   ","status":"active"}`)
	f.Fuzz(func(t *testing.T, data []byte) {
		v, ok := payloadOf(data)
		if !ok {
			return
		}
		p, err := decodeAppStatus(v)
		if err != nil {
			return
		}
		ev, err := domain.ChangeAppStatus(domain.Actor{}, p.AppID, p.Status, "", fuzzNow)
		if err != nil {
			return
		}
		if ev.Status != domain.AppActive && ev.Status != domain.AppInactive {
			t.Fatalf("status %q accepted", ev.Status)
		}
		checkRequired(t, "appId", ev.AppID, domain.MaxIDLength)
	})
}

func FuzzDataAgent(f *testing.F) {
	addSeeds(f, `{"agentId":"agent_123","status":"processing","data":{"progress":75}}`,
		`{"agentId":"  ","status":"processing"}`, `{"agentId":"agent_123","status":"   "}`)
	f.Fuzz(func(t *testing.T, data []byte) {
		v, ok := payloadOf(data)
		if !ok {
			return
		}
		p, err := decodeDataAgent(v)
		if err != nil {
			return
		}
		ev, err := domain.UpdateDataAgent(domain.Actor{}, p.AgentID, p.Status, p.Data, fuzzNow)
		if err != nil {
			return
		}
		if len(ev.Data) > domain.MaxDataBytes || !json.Valid(ev.Data) {
			t.Fatalf("data of %d bytes accepted", len(ev.Data))
		}
		checkRequired(t, "agentId", ev.AgentID, domain.MaxIDLength)
		checkRequired(t, "status", ev.Status, domain.MaxStatusLength)
	})
}

func FuzzRoomName(f *testing.F) {
	addSeeds(f, `"project_123"`, `"admin_notifications"`, `"   "`, `"\u00a0"`)
	f.Fuzz(func(t *testing.T, data []byte) {
		v, ok := payloadOf(data)
		if !ok {
			return
		}
		name, err := stringPayload(v, "roomName")
		if err != nil {
			return
		}
		if domain.CheckRoomName("roomName", name) != nil {
			return
		}
		checkRequired(t, "roomName", name, domain.MaxRoomNameLength)
		if !strings.HasPrefix(string(clientRoom(name)), "room:") || clientRoom(name) == userRoom(name) {
			t.Fatalf("client room %q could reach a private room", name)
		}
	})
}
