package socketadapter_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/socketadapter"
	"github.com/auraos/realtime/socketadapter/jwtauth"
	"github.com/auraos/realtime/socketadapter/sockettest"
)

var testSecret = []byte("a-test-secret-that-is-long-enough-0123456789")

func jwtConfig(t testing.TB, required bool) socketadapter.Config {
	t.Helper()
	v, err := jwtauth.New(context.Background(), jwtauth.Config{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	return socketadapter.Config{Auth: jwtauth.Authenticator{Verifier: v, Required: required}}
}

func token(t testing.TB, uid string, admin bool) map[string]any {
	t.Helper()
	tok, err := jwtauth.Mint(testSecret, jwtauth.MintOptions{UID: uid, Email: uid + "@example.com", Name: "Verified " + uid, Admin: admin, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{"token": tok}
}

// refused checks a failed ack and the matching `error` event.
func refused(t *testing.T, c *sockettest.Client, ack map[string]any, event, code string) {
	t.Helper()
	if ack["ok"] != false {
		t.Fatalf("%s was accepted: %v", event, ack)
	}
	e, _ := ack["error"].(map[string]any)
	if e["code"] != code || e["message"] == "" {
		t.Fatalf("%s: ack error %v, want code %s", event, ack, code)
	}
	c.WaitEvent("error", func(raw json.RawMessage) bool {
		var p struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Details struct {
				Event string `json:"event"`
			} `json:"details"`
		}
		_ = json.Unmarshal(raw, &p)
		return p.Code == code && p.Details.Event == event && p.Message != ""
	})
}

// Every event that names a user is refused when it names another user than
// the socket's, in open mode (bound by the first event) and in jwt mode
// (bound by the token); nothing is stored or sent.
func TestImpersonationIsForbidden(t *testing.T) {
	t.Parallel()
	modes := []struct {
		name  string
		cfg   func(testing.TB) socketadapter.Config
		alice func(testing.TB) map[string]any
	}{
		{"open", func(testing.TB) socketadapter.Config { return socketadapter.Config{} }, func(testing.TB) map[string]any { return nil }},
		{"jwt", func(t testing.TB) socketadapter.Config { return jwtConfig(t, true) }, func(t testing.TB) map[string]any { return token(t, "alice", false) }},
	}
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			st := startStack(t, mode.cfg(t))
			alice := sockettest.Dial(t, st.URL, "websocket", mode.alice(t))
			if ack := alice.EmitAck("join_user_room", map[string]any{"userId": "alice", "userProfile": sockettest.Profile("alice")}); ack["ok"] != true {
				t.Fatalf("alice joins as herself: %v", ack)
			}
			if ack := alice.EmitAck("join_chat_room", map[string]any{"roomName": "lobby", "userProfile": sockettest.Profile("alice")}); ack["ok"] != true {
				t.Fatalf("alice joins the lobby: %v", ack)
			}
			watcherAuth := map[string]any(nil)
			if mode.name == "jwt" {
				watcherAuth = token(t, "watcher", false)
			}
			watcher := sockettest.Dial(t, st.URL, "websocket", watcherAuth)
			watcher.EmitAck("join_room", "lobby")
			before := len(st.events(t))
			bob := sockettest.Profile("bob")
			attempts := []struct {
				event   string
				payload any
			}{
				{"join_user_room", map[string]any{"userId": "bob", "userProfile": bob}},
				{"join_user_room", map[string]any{"userId": "alice", "userProfile": bob}},
				{"join_chat_room", map[string]any{"roomName": "lobby", "userProfile": bob}},
				{"send_message", map[string]any{"roomName": "lobby", "message": "I am bob", "userProfile": bob}},
				{"typing_start", map[string]any{"roomName": "lobby", "userProfile": bob}},
				{"typing_stop", map[string]any{"roomName": "lobby", "userProfile": bob}},
			}
			for _, a := range attempts {
				refused(t, alice, alice.EmitAck(a.event, a.payload), a.event, domain.EFORBIDDEN)
			}
			// Alice's own message still goes through, and is the only thing
			// the watcher sees.
			if ack := alice.EmitAck("send_message", map[string]any{"roomName": "lobby", "message": "I am alice", "userProfile": sockettest.Profile("alice")}); ack["ok"] != true {
				t.Fatalf("alice's own message: %v", ack)
			}
			watcher.WaitEvent("new_message", nil)
			for _, raw := range watcher.Received("new_message") {
				if strings.Contains(string(raw), "I am bob") {
					t.Fatalf("an impersonated message was broadcast: %s", raw)
				}
			}
			if got := watcher.Received("user_typing"); len(got) != 0 {
				t.Fatalf("impersonated typing was broadcast: %s", got)
			}
			after := st.events(t)
			if len(after) != before+1 {
				t.Fatalf("refused events stored %d events", len(after)-before-1)
			}
		})
	}
}

// The verified claims of a token are the profile others see.
func TestTokenClaimsAreTheProfile(t *testing.T) {
	t.Parallel()
	st := startStack(t, jwtConfig(t, true))
	c := sockettest.Dial(t, st.URL, "websocket", token(t, "carol", false))
	c.EmitAck("join_user_room", map[string]any{"userId": "carol", "userProfile": map[string]any{"uid": "carol", "email": "fake@evil.example", "displayName": "The Admin"}})
	raw := c.WaitEvent("online_users", nil)
	if !strings.Contains(string(raw), `"displayName":"Verified carol"`) || strings.Contains(string(raw), "evil") {
		t.Fatalf("online_users shows the client's claims instead of the token's: %s", raw)
	}
}

func TestAdminOnlyEvents(t *testing.T) {
	t.Parallel()
	alert := map[string]any{"title": "Maintenance", "message": "Down in 10 minutes", "severity": "warning", "action": map[string]any{"label": "More", "url": "/maintenance"}}
	t.Run("open mode has no admins", func(t *testing.T) {
		t.Parallel()
		st := startStack(t, socketadapter.Config{})
		c := sockettest.Dial(t, st.URL, "websocket", nil)
		c.EmitAck("join_user_room", map[string]any{"userId": "admin", "userProfile": sockettest.Profile("admin")})
		refused(t, c, c.EmitAck("broadcast_system_alert", alert), "broadcast_system_alert", domain.EFORBIDDEN)
		refused(t, c, c.EmitAck("join_system_room", "admin_notifications"), "join_system_room", domain.EFORBIDDEN)
		if ack := c.EmitAck("join_system_room", "system_updates"); ack["ok"] != true {
			t.Fatalf("system_updates: %v", ack)
		}
		if n := len(st.events(t, domain.TypeSystemAlertBroadcast)); n != 0 {
			t.Fatalf("stored %d alerts", n)
		}
	})
	for _, mode := range []struct {
		name     string
		required bool
	}{{"jwt mode", true}, {"open mode with a verified token", false}} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			st := startStack(t, jwtConfig(t, mode.required))
			user := sockettest.Dial(t, st.URL, "websocket", token(t, "user", false))
			refused(t, user, user.EmitAck("broadcast_system_alert", alert), "broadcast_system_alert", domain.EFORBIDDEN)
			refused(t, user, user.EmitAck("join_system_room", "admin_notifications"), "join_system_room", domain.EFORBIDDEN)
			admin := sockettest.Dial(t, st.URL, "websocket", token(t, "root", true))
			if ack := admin.EmitAck("join_system_room", "admin_notifications"); ack["ok"] != true {
				t.Fatalf("admin joins admin_notifications: %v", ack)
			}
			if ack := admin.EmitAck("broadcast_system_alert", alert); ack["ok"] != true {
				t.Fatalf("admin alert: %v", ack)
			}
			raw := user.WaitEvent("system_alert", nil)
			if !strings.Contains(string(raw), `"severity":"warning"`) || !strings.Contains(string(raw), `"url":"/maintenance"`) {
				t.Fatalf("system_alert: %s", raw)
			}
		})
	}
}

// A user's private room, where notifications go, cannot be joined under
// any name.
func TestPrivateUserRoomCannotBeJoined(t *testing.T) {
	t.Parallel()
	st := startStack(t, socketadapter.Config{})
	bob := sockettest.Dial(t, st.URL, "websocket", nil)
	bob.EmitAck("join_user_room", map[string]any{"userId": "bob", "userProfile": sockettest.Profile("bob")})
	eve := sockettest.Dial(t, st.URL, "websocket", nil)
	for _, name := range []string{"bob", "user:bob", "user_bob", "user-bob", "room:user:bob", "sys:bob", "notify-bob", "presence-bob"} {
		eve.TryEmitAck("join_room", name)
		eve.TryEmitAck("join_system_room", name)
		eve.TryEmitAck("join_chat_room", map[string]any{"roomName": name, "userProfile": sockettest.Profile("eve")})
	}
	sender := sockettest.Dial(t, st.URL, "websocket", nil)
	if ack := sender.EmitAck("send_notification", map[string]any{"to": "bob", "notification": map[string]any{"title": "Secret", "message": "for bob only", "type": "info"}}); ack["ok"] != true {
		t.Fatalf("send_notification: %v", ack)
	}
	bob.WaitEvent("notification", nil)
	// eve's last request is acked after the notification was pushed: any
	// copy meant for her would have arrived by then.
	eve.EmitAck("request_system_status", nil)
	if got := eve.Received("notification"); len(got) != 0 {
		t.Fatalf("eve received bob's notification: %s", got)
	}
}

func TestJWTHandshakesAreChecked(t *testing.T) {
	t.Parallel()
	st := startStack(t, jwtConfig(t, true))
	expired, _ := jwtauth.Mint(testSecret, jwtauth.MintOptions{UID: "u", TTL: time.Minute, Now: time.Now().Add(-time.Hour)})
	forged, _ := jwtauth.Mint([]byte("another-secret-that-is-long-enough-000000"), jwtauth.MintOptions{UID: "u", TTL: time.Hour})
	none := "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1IiwiZXhwIjo0MTAyNDQ0ODAwfQ."
	cases := []struct {
		name string
		auth map[string]any
	}{
		{"missing", nil},
		{"malformed", map[string]any{"token": "not-a-jwt"}},
		{"forged", map[string]any{"token": forged}},
		{"expired", map[string]any{"token": expired}},
		{"alg none", map[string]any{"token": none}},
	}
	for _, c := range cases {
		_, err := sockettest.TryDial(t, st.URL, "websocket", c.auth)
		var ee *types.ExtendedError
		if !errors.As(err, &ee) {
			t.Fatalf("%s: connected or failed otherwise: %v", c.name, err)
		}
		data, _ := ee.Data.(map[string]any)
		if data["code"] != domain.EAUTH {
			t.Fatalf("%s: connect_error data %v, want code %s", c.name, ee.Data, domain.EAUTH)
		}
		if tok, _ := c.auth["token"].(string); tok != "" && (strings.Contains(st.Log.String(), tok) || strings.Contains(ee.Message, tok)) {
			t.Fatalf("%s: the token appears in the log or the error", c.name)
		}
	}
	if !strings.Contains(st.Log.String(), "connection refused") || !strings.Contains(st.Log.String(), "code="+domain.EAUTH) {
		t.Fatalf("refusals are not logged with their code:\n%s", st.Log.String())
	}
	good := sockettest.Dial(t, st.URL, "websocket", token(t, "dave", false))
	if ack := good.EmitAck("join_user_room", map[string]any{"userId": "dave", "userProfile": sockettest.Profile("dave")}); ack["ok"] != true {
		t.Fatalf("valid token: %v", ack)
	}
}

func TestOversizedFrameClosesOnlyThatSocket(t *testing.T) {
	t.Parallel()
	st := startStack(t, socketadapter.Config{MaxFrame: 4096})
	big := sockettest.Dial(t, st.URL, "websocket", nil)
	other := sockettest.Dial(t, st.URL, "websocket", nil)
	other.EmitAck("join_chat_room", map[string]any{"roomName": "r", "userProfile": sockettest.Profile("other")})
	_ = big.S.Emit("send_message", map[string]any{"roomName": "r", "message": strings.Repeat("x", 8192), "userProfile": sockettest.Profile("big")})
	select {
	case <-big.Disconnected():
	case <-time.After(10 * time.Second):
		t.Fatal("the socket that sent an oversized frame stayed connected")
	}
	if ack := other.EmitAck("send_message", map[string]any{"roomName": "r", "message": "still here", "userProfile": sockettest.Profile("other")}); ack["ok"] != true {
		t.Fatalf("the other socket: %v", ack)
	}
	if n := len(st.events(t, domain.TypeMessagePosted)); n != 1 {
		t.Fatalf("stored %d messages, want 1", n)
	}
}

func TestFloodIsRateLimited(t *testing.T) {
	t.Parallel()
	limits := socketadapter.RateLimits{Message: socketadapter.RateLimit{Rate: 1, Burst: 5}}
	st := startStack(t, socketadapter.Config{Limits: limits})
	flood := sockettest.Dial(t, st.URL, "websocket", nil)
	ok, limited := 0, 0
	for i := range 30 {
		ack := flood.EmitAck("send_message", map[string]any{"roomName": "r", "message": fmt.Sprint(i), "userProfile": sockettest.Profile("flood")})
		switch {
		case ack["ok"] == true:
			ok++
		case ack["error"].(map[string]any)["code"] == domain.ERATELIMITED:
			limited++
		default:
			t.Fatalf("unexpected ack %v", ack)
		}
	}
	if ok < 5 || ok > 8 || limited != 30-ok {
		t.Fatalf("%d accepted and %d limited out of 30 with a burst of 5 at 1/s", ok, limited)
	}
	if n := len(st.events(t, domain.TypeMessagePosted)); n != ok {
		t.Fatalf("stored %d messages, accepted %d", n, ok)
	}
	// Another socket has its own bucket.
	calm := sockettest.Dial(t, st.URL, "websocket", nil)
	if ack := calm.EmitAck("send_message", map[string]any{"roomName": "r", "message": "hi", "userProfile": sockettest.Profile("calm")}); ack["ok"] != true {
		t.Fatalf("a calm socket is limited: %v", ack)
	}
}

// A socket's first typing_start, leave_room and join_chat_room work on a
// fresh session (its maps are made on first use).
func TestFirstTypingOnAFreshSocket(t *testing.T) {
	t.Parallel()
	st := startStack(t, socketadapter.Config{})
	c := sockettest.Dial(t, st.URL, "websocket", nil)
	if ack := c.EmitAck("typing_start", map[string]any{"roomName": "r", "userProfile": sockettest.Profile("t1")}); ack["ok"] != true {
		t.Fatalf("typing_start: %v", ack)
	}
	if ack := c.EmitAck("typing_stop", map[string]any{"roomName": "r", "userProfile": sockettest.Profile("t1")}); ack["ok"] != true {
		t.Fatalf("typing_stop: %v", ack)
	}
	if ack := c.EmitAck("leave_room", "r"); ack["ok"] != true {
		t.Fatalf("leave_room: %v", ack)
	}
}

// Names and texts that are only white space are refused with
// INVALID_PAYLOAD naming the field, and nothing is stored.
func TestBlankFieldsAreRefused(t *testing.T) {
	t.Parallel()
	st := startStack(t, socketadapter.Config{})
	c := sockettest.Dial(t, st.URL, "websocket", nil)
	c.EmitAck("join_user_room", map[string]any{"userId": "blank", "userProfile": sockettest.Profile("blank")})
	note := func(to, title, message string) map[string]any {
		return map[string]any{"to": to, "notification": map[string]any{"title": title, "message": message, "type": "info"}}
	}
	for _, tc := range []struct {
		event   string
		payload any
		field   string
	}{
		{"join_room", "   ", "roomName"},
		{"leave_room", "\u00a0", "roomName"},
		{"join_system_room", " ", "roomName"},
		{"join_chat_room", map[string]any{"roomName": "  ", "userProfile": sockettest.Profile("blank")}, "roomName"},
		{"send_message", map[string]any{"roomName": " \u3000 ", "message": "hi", "userProfile": sockettest.Profile("blank")}, "roomName"},
		{"send_notification", note("  ", "T", "M"), "to"},
		{"send_notification", note("u2", "  ", "M"), "notification.title"},
		{"send_notification", note("u2", "T", " \n "), "notification.message"},
		{"update_app_status", map[string]any{"appId": "  ", "status": "active"}, "appId"},
		{"data_agent_update", map[string]any{"agentId": "  ", "status": "ok"}, "agentId"},
		{"data_agent_update", map[string]any{"agentId": "a1", "status": "   "}, "status"},
	} {
		ack := c.EmitAck(tc.event, tc.payload)
		e, _ := ack["error"].(map[string]any)
		if ack["ok"] != false || e["code"] != domain.EINVALID || !strings.Contains(fmt.Sprint(e["message"]), tc.field) {
			t.Errorf("%s with a blank %s: %v", tc.event, tc.field, ack)
			continue
		}
		c.WaitEvent("error", func(raw json.RawMessage) bool {
			var p struct {
				Code    string                        `json:"code"`
				Details struct{ Event, Field string } `json:"details"`
			}
			_ = json.Unmarshal(raw, &p)
			return p.Code == domain.EINVALID && p.Details.Event == tc.event && p.Details.Field == tc.field
		})
	}
	for _, typ := range []string{domain.TypeChatMemberJoined, domain.TypeMessagePosted, domain.TypeNotificationSent, domain.TypeAppStatusChanged, domain.TypeDataAgentUpdated} {
		if evs := st.events(t, typ); len(evs) != 0 {
			t.Errorf("stored %d %s events", len(evs), typ)
		}
	}
}
