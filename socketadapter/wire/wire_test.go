package wire_test

import (
	"testing"
	"time"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/projections"
	"github.com/auraos/realtime/socketadapter/wire"
)

// Each payload encodes with the field names, order and date format of the
// source document (SOCKET_EVENTS.md), and empty lists as [].
func TestPayloadsEncodeAsTheSourceDocumentSays(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 27, 10, 15, 11, 123456789, time.FixedZone("CET", 3600))
	avatar := "https://example.com/a.png"
	cases := []struct {
		name    string
		payload any
		want    string
	}{
		{"online_users", wire.OnlineUsers([]projections.OnlineUser{{
			ID: "u1", SocketID: "s1", ConnectedAt: at, Status: "online", LastSeen: at.Add(time.Second),
			Profile: domain.UserProfile{UID: "u1", Email: "u1@example.com", DisplayName: "U <1>"},
		}}), `[{"id":"u1","socketId":"s1","connectedAt":"2026-11-27T09:15:11.123Z","userProfile":{"uid":"u1","email":"u1@example.com","displayName":"U \u003c1\u003e"},"status":"online","lastSeen":"2026-11-27T09:15:12.123Z"}]`},
		{"no online users", wire.OnlineUsers(nil), `[]`},
		{"chat_history", wire.History([]projections.ChatMessage{
			{ID: "m1", RoomName: "general", UserID: "u1", UserName: "U1", Message: "hi", MessageType: "text", Timestamp: at},
			{ID: "m2", RoomName: "general", UserID: "ai-assistant", UserName: "AI Assistant", UserAvatar: &avatar, Message: "hello", MessageType: "ai_response", Timestamp: at, IsAI: true},
		}), `[{"id":"m1","roomName":"general","userId":"u1","userName":"U1","userAvatar":null,"message":"hi","messageType":"text","timestamp":"2026-11-27T09:15:11.123Z","isAI":false},` +
			`{"id":"m2","roomName":"general","userId":"ai-assistant","userName":"AI Assistant","userAvatar":"https://example.com/a.png","message":"hello","messageType":"ai_response","timestamp":"2026-11-27T09:15:11.123Z","isAI":true}]`},
		{"empty chat_history", wire.History(nil), `[]`},
		{"new_message", wire.MessageFromEvent(domain.MessagePosted{ID: "m1", RoomName: "r", UserID: "u", UserName: "U", Message: "x", MessageType: domain.MessageText, At: at}),
			`{"id":"m1","roomName":"r","userId":"u","userName":"U","userAvatar":null,"message":"x","messageType":"text","timestamp":"2026-11-27T09:15:11.123Z","isAI":false}`},
		{"app_updated", wire.AppUpdatedFromEvent(domain.AppStatusChanged{AppID: "a1", Status: domain.AppActive, At: at}),
			`{"appId":"a1","status":"active","updatedAt":"2026-11-27T09:15:11.123Z"}`},
		{"apps", wire.Apps([]projections.App{{AppID: "a1", Status: "inactive", UpdatedAt: at}}),
			`[{"appId":"a1","status":"inactive","updatedAt":"2026-11-27T09:15:11.123Z"}]`},
		{"system_status_update", wire.SystemStatus{AppTotals: wire.Totals(projections.AppTotals{Total: 3, Active: 1, Inactive: 2}), Uptime: "1h2m3s", Timestamp: wire.Date(at)},
			`{"totalApps":3,"activeApps":1,"inactiveApps":2,"uptime":"1h2m3s","timestamp":"2026-11-27T09:15:11.123Z"}`},
	}
	for _, c := range cases {
		if got := string(wire.Encode(c.payload)); got != c.want {
			t.Errorf("%s:\ngot  %s\nwant %s", c.name, got, c.want)
		}
	}
}
