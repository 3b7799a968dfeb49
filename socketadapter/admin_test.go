package socketadapter_test

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/zishang520/socket.io/v3/pkg/types"
	"golang.org/x/crypto/bcrypt"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/socketadapter"
	"github.com/auraos/realtime/socketadapter/sockettest"
)

const adminPassword = "correct horse battery staple"

// adminConfig is jwtConfig (so admin tokens verify) with the Admin UI on
// for user "admin" and adminPassword.
func adminConfig(t testing.TB, readOnly bool) socketadapter.Config {
	t.Helper()
	cfg := jwtConfig(t, false)
	hash, err := bcrypt.GenerateFromPassword([]byte(adminPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := socketadapter.NewAdminCredentials("admin", hash, cfg.Auth)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Admin = &socketadapter.AdminConfig{Credentials: creds, ReadOnly: readOnly}
	return cfg
}

// serializedSocket is the part of typed-events.ts's SerializedSocket the
// tests look at.
type serializedSocket struct {
	ID        string         `json:"id"`
	ClientID  string         `json:"clientId"`
	Transport string         `json:"transport"`
	Nsp       string         `json:"nsp"`
	Rooms     []string       `json:"rooms"`
	Data      map[string]any `json:"data"`
	Handshake map[string]any `json:"handshake"`
}

// dialAdmin connects to /admin with auth and waits for its first
// all_sockets, which it returns.
func dialAdmin(t *testing.T, url string, auth map[string]any) (*sockettest.Client, []serializedSocket) {
	t.Helper()
	c, err := tryDialAdmin(t, url, auth)
	if err != nil {
		t.Fatal(err)
	}
	var all []serializedSocket
	if err := json.Unmarshal(c.WaitEvent("all_sockets", nil), &all); err != nil {
		t.Fatal(err)
	}
	return c, all
}

// tryDialAdmin connects to /admin; a command without arguments (refused
// for its unknown namespace) is the round trip that proves the connection.
func tryDialAdmin(t *testing.T, url string, auth map[string]any) (*sockettest.Client, error) {
	t.Helper()
	return sockettest.TryDialProbing(t, url+socketadapter.AdminNamespace, "websocket", auth, "join")
}

func findSocket(all []serializedSocket, id string) (serializedSocket, bool) {
	for _, s := range all {
		if s.ID == id {
			return s, true
		}
	}
	return serializedSocket{}, false
}

// adminCommand sends one of the UI's commands with an acknowledgement and
// returns it.
func adminCommand(t *testing.T, c *sockettest.Client, event string, args ...any) map[string]any {
	t.Helper()
	done := make(chan map[string]any, 1)
	fail := make(chan error, 1)
	c.S.EmitWithAck(event, args...)(func(res []any, err error) {
		if err != nil {
			fail <- err
			return
		}
		m, _ := res[0].(map[string]any)
		done <- m
	})
	select {
	case m := <-done:
		return m
	case err := <-fail:
		t.Fatalf("%s: %v", event, err)
	case <-time.After(15 * time.Second):
		t.Fatalf("%s: no ack within 15s", event)
	}
	return nil
}

// joinedUser connects a user socket that joins its presence and chat room
// "general", and returns it with its socket id.
func joinedUser(t *testing.T, url, uid string) (*sockettest.Client, string) {
	t.Helper()
	u := sockettest.Dial(t, url, "websocket", nil)
	if ack := u.EmitAck("join_user_room", map[string]any{"userId": uid, "userProfile": sockettest.Profile(uid)}); ack["ok"] != true {
		t.Fatalf("join_user_room: %v", ack)
	}
	if ack := u.EmitAck("join_room", "general"); ack["ok"] != true {
		t.Fatalf("join_room: %v", ack)
	}
	return u, string(u.S.Id())
}

func TestAdminRefusesWithoutCredentials(t *testing.T) {
	t.Parallel()
	st := startStack(t, adminConfig(t, false))
	cases := []struct {
		name string
		auth map[string]any
		code string
	}{
		{"no credentials", nil, domain.EAUTH},
		{"no password", map[string]any{"username": "admin"}, domain.EAUTH},
		{"wrong password", map[string]any{"username": "admin", "password": "wrong"}, domain.EAUTH},
		{"wrong username", map[string]any{"username": "root", "password": adminPassword}, domain.EAUTH},
		{"unknown session", map[string]any{"sessionId": "0123456789abcdef"}, domain.EAUTH},
		{"forged token", map[string]any{"token": "not-a-jwt"}, domain.EAUTH},
		{"a user's token", token(t, "mallory", false), domain.EFORBIDDEN},
	}
	for _, c := range cases {
		_, err := tryDialAdmin(t, st.URL, c.auth)
		var ee *types.ExtendedError
		if !errors.As(err, &ee) {
			t.Fatalf("%s: connected or failed otherwise: %v", c.name, err)
		}
		data, _ := ee.Data.(map[string]any)
		if ee.Message != "invalid credentials" || data["code"] != c.code {
			t.Fatalf("%s: connect_error %q %v, want \"invalid credentials\" with code %s", c.name, ee.Message, ee.Data, c.code)
		}
	}
}

func TestAdminNamespaceIsOffUnlessConfigured(t *testing.T) {
	t.Parallel()
	st := startStack(t, jwtConfig(t, false))
	// The library refuses an unknown namespace with "Invalid namespace",
	// which the Go client (v3.0.6) reports as a connect_error without data.
	if _, err := tryDialAdmin(t, st.URL, map[string]any{"username": "admin", "password": adminPassword}); err == nil {
		t.Fatal("connected to /admin without the Admin UI")
	}
}

func TestAdminSeesSocketsRoomsAndStats(t *testing.T) {
	t.Parallel()
	st := startStack(t, adminConfig(t, false))
	_, sid := joinedUser(t, st.URL, "alice")

	for _, login := range []struct {
		name string
		auth map[string]any
	}{
		{"password", map[string]any{"username": "admin", "password": adminPassword}},
		{"admin token", token(t, "ops", true)},
	} {
		t.Run(login.name, func(t *testing.T) {
			a, all := dialAdmin(t, st.URL, login.auth)
			var cfg struct {
				SupportedFeatures []string `json:"supportedFeatures"`
			}
			if err := json.Unmarshal(a.WaitEvent("config", nil), &cfg); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{"EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT", "AGGREGATED_EVENTS", "ALL_EVENTS"} {
				if !slices.Contains(cfg.SupportedFeatures, f) {
					t.Fatalf("config %v lacks %s", cfg.SupportedFeatures, f)
				}
			}
			var stats struct {
				ServerID            string `json:"serverId"`
				Hostname            string `json:"hostname"`
				PID                 int    `json:"pid"`
				ClientsCount        int    `json:"clientsCount"`
				PollingClientsCount *int   `json:"pollingClientsCount"`
				Namespaces          []struct {
					Name         string `json:"name"`
					SocketsCount int    `json:"socketsCount"`
				} `json:"namespaces"`
				AggregatedEvents []struct {
					Type  string `json:"type"`
					Count int    `json:"count"`
				} `json:"aggregatedEvents"`
			}
			if err := json.Unmarshal(a.WaitEvent("server_stats", nil), &stats); err != nil {
				t.Fatal(err)
			}
			if stats.ServerID != "test-node" || stats.PID == 0 || stats.ClientsCount < 2 || stats.PollingClientsCount == nil ||
				len(stats.Namespaces) != 2 || stats.Namespaces[0].Name != "/" || stats.Namespaces[0].SocketsCount < 1 {
				t.Fatalf("server_stats: %+v", stats)
			}
			user, ok := findSocket(all, sid)
			if !ok {
				t.Fatalf("all_sockets %+v lacks the user's socket %s", all, sid)
			}
			for _, room := range []string{sid, "user:alice", "room:general"} {
				if !slices.Contains(user.Rooms, room) {
					t.Fatalf("the user's socket's rooms %v lack %s", user.Rooms, room)
				}
			}
			if user.Nsp != "/" || user.Transport != "websocket" || user.ClientID == "" || user.Data["userId"] != "alice" || user.Handshake["address"] == "" {
				t.Fatalf("the user's socket: %+v", user)
			}
			if login.name == "password" {
				// The session id the UI keeps lets it reconnect without the password.
				var session string
				_ = json.Unmarshal(a.WaitEvent("session", nil), &session)
				dialAdmin(t, st.URL, map[string]any{"sessionId": session})
			}
		})
	}

	// A periodic server_stats counts the traffic.
	a, _ := dialAdmin(t, st.URL, map[string]any{"username": "admin", "password": adminPassword})
	a.WaitEvent("server_stats", func(raw json.RawMessage) bool {
		var s struct {
			AggregatedEvents []struct {
				Type string `json:"type"`
			} `json:"aggregatedEvents"`
		}
		_ = json.Unmarshal(raw, &s)
		return len(s.AggregatedEvents) > 0
	})
	// A socket that connects and leaves is announced.
	_, bob := joinedUser(t, st.URL, "bob")
	a.WaitEvent("socket_connected", func(raw json.RawMessage) bool {
		var s serializedSocket
		_ = json.Unmarshal(raw, &s)
		return s.ID == bob
	})
}

func TestAdminCommands(t *testing.T) {
	t.Parallel()
	st := startStack(t, adminConfig(t, false))
	u, sid := joinedUser(t, st.URL, "carol")
	a, _ := dialAdmin(t, st.URL, map[string]any{"username": "admin", "password": adminPassword})

	if ack := adminCommand(t, a, "join", "/", "ops", sid); ack["ok"] != true {
		t.Fatalf("join: %v", ack)
	}
	_, all := dialAdmin(t, st.URL, map[string]any{"username": "admin", "password": adminPassword})
	if s, _ := findSocket(all, sid); !slices.Contains(s.Rooms, "ops") {
		t.Fatalf("after join the rooms are %v", s.Rooms)
	}
	if ack := adminCommand(t, a, "emit", "/", "ops", "ops_notice", map[string]any{"text": "hello"}); ack["ok"] != true {
		t.Fatalf("emit: %v", ack)
	}
	u.WaitEvent("ops_notice", func(raw json.RawMessage) bool { return string(raw) == `{"text":"hello"}` })
	// ALL_EVENTS: what the socket sends and receives is copied to the UI.
	a.WaitEvent("event_sent", func(raw json.RawMessage) bool { return string(raw) == `"/"` })
	if ack := u.EmitAck("join_room", "more"); ack["ok"] != true {
		t.Fatalf("join_room: %v", ack)
	}
	a.WaitEvent("event_received", func(raw json.RawMessage) bool { return string(raw) == `"/"` })
	if ack := adminCommand(t, a, "leave", "/", "ops", sid); ack["ok"] != true {
		t.Fatalf("leave: %v", ack)
	}
	_, all = dialAdmin(t, st.URL, map[string]any{"username": "admin", "password": adminPassword})
	if s, _ := findSocket(all, sid); slices.Contains(s.Rooms, "ops") || !slices.Contains(s.Rooms, "room:general") {
		t.Fatalf("after leave the rooms are %v", s.Rooms)
	}
	if ack := adminCommand(t, a, "join", "/nowhere", "ops", sid); ack["ok"] != false {
		t.Fatalf("join in an unknown namespace: %v", ack)
	}
	if ack := adminCommand(t, a, "_disconnect", "/", false, sid); ack["ok"] != true {
		t.Fatalf("_disconnect: %v", ack)
	}
	select {
	case <-u.Disconnected():
	case <-time.After(15 * time.Second):
		t.Fatal("the socket was not disconnected")
	}
	a.WaitEvent("socket_disconnected", func(raw json.RawMessage) bool { return string(raw) == `"/"` })
}

func TestAdminReadOnlyRefusesCommands(t *testing.T) {
	t.Parallel()
	st := startStack(t, adminConfig(t, true))
	u, sid := joinedUser(t, st.URL, "dan")
	a, _ := dialAdmin(t, st.URL, map[string]any{"username": "admin", "password": adminPassword})
	var cfg struct {
		SupportedFeatures []string `json:"supportedFeatures"`
	}
	_ = json.Unmarshal(a.WaitEvent("config", nil), &cfg)
	if slices.Contains(cfg.SupportedFeatures, "JOIN") || slices.Contains(cfg.SupportedFeatures, "DISCONNECT") {
		t.Fatalf("read-only config lists commands: %v", cfg.SupportedFeatures)
	}
	for _, c := range []struct {
		event string
		args  []any
	}{
		{"join", []any{"/", "ops", sid}},
		{"leave", []any{"/", "room:general", sid}},
		{"emit", []any{"/", sid, "ops_notice", "hi"}},
		{"_disconnect", []any{"/", true, sid}},
	} {
		ack := adminCommand(t, a, c.event, c.args...)
		e, _ := ack["error"].(map[string]any)
		if ack["ok"] != false || e["code"] != domain.EFORBIDDEN {
			t.Fatalf("%s in read-only mode: %v", c.event, ack)
		}
	}
	_, all := dialAdmin(t, st.URL, map[string]any{"username": "admin", "password": adminPassword})
	if s, ok := findSocket(all, sid); !ok || slices.Contains(s.Rooms, "ops") || !slices.Contains(s.Rooms, "room:general") {
		t.Fatalf("read-only commands changed the socket: %+v", s)
	}
	if got := u.Received("ops_notice"); len(got) != 0 {
		t.Fatalf("a read-only emit arrived: %v", got)
	}
	if ack := u.EmitAck("join_room", "more"); ack["ok"] != true {
		t.Fatalf("the socket is not usable after the refused commands: %v", ack)
	}
}

// linkedBus is one end of an in-process signal bus between two servers:
// what one publishes, the other receives.
type linkedBus struct {
	in  chan []byte
	out chan<- []byte
}

func (b linkedBus) Publish(p []byte) bool {
	select {
	case b.out <- p:
		return true
	default:
		return false
	}
}

func (b linkedBus) Signals() <-chan []byte { return b.in }

// With several servers, the Admin UI connected to one lists each under its
// node id: their stats cross the signal bus.
func TestAdminListsEveryServer(t *testing.T) {
	t.Parallel()
	ab, ba := make(chan []byte, 64), make(chan []byte, 64)
	cfgA, cfgB := adminConfig(t, false), adminConfig(t, false)
	cfgA.NodeID, cfgA.Signals = "node-a", linkedBus{in: ba, out: ab}
	cfgB.NodeID, cfgB.Signals = "node-b", linkedBus{in: ab, out: ba}
	a := startStack(t, cfgA)
	startStack(t, cfgB)
	admin, _ := dialAdmin(t, a.URL, map[string]any{"username": "admin", "password": adminPassword})
	for _, node := range []string{"node-a", "node-b"} {
		admin.WaitEvent("server_stats", func(raw json.RawMessage) bool {
			var s struct {
				ServerID string `json:"serverId"`
			}
			_ = json.Unmarshal(raw, &s)
			return s.ServerID == node
		})
	}
}
