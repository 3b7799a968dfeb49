package socketadapter_test

import (
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"
	"weak"

	"github.com/gorilla/websocket"
	socket "github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// The Engine.IO socket keeps a copy of what the Socket.IO handshake reads of
// the first request, not the request (PATCH(auraos) in
// socketadapter/patched/engineio-server/socket.go): every namespace the
// client connects to, later too, sees the same handshake, and the
// request's http.Request is garbage once the connection is up.
func TestHandshakeOutlivesItsRequest(t *testing.T) {
	t.Parallel()
	opts := socket.DefaultServerOptions()
	opts.SetCors(&types.Cors{Origin: "*"}) // the client sends an Origin
	io := socket.NewServer(nil, opts)
	t.Cleanup(func() { io.Close(nil) })
	handshakes := make(chan *socket.Handshake, 2)
	for _, nsp := range []string{"/", "/later"} {
		io.Of(nsp, nil).On("connection", func(args ...any) {
			handshakes <- args[0].(*socket.Socket).Handshake()
		})
	}
	handler := io.ServeHandler(nil)
	requests := make(chan weak.Pointer[http.Request], 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if websocket.IsWebSocketUpgrade(r) {
			requests <- weak.Make(r)
		}
		handler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/socket.io/?EIO=4&transport=websocket&room=kitchen"
	ws, _, err := websocket.DefaultDialer.Dial(url, http.Header{"X-Test": {"yes"}, "Origin": {"http://example.test"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	read := func(prefix string) {
		t.Helper()
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			_, msg, err := ws.ReadMessage()
			if err != nil {
				t.Fatalf("waiting for %q: %v", prefix, err)
			}
			if strings.HasPrefix(string(msg), prefix) {
				return
			}
		}
	}
	read("0{")
	if err := ws.WriteMessage(websocket.TextMessage, []byte("40")); err != nil {
		t.Fatal(err)
	}
	read("40{")
	first := <-handshakes

	// The request is not kept once the connection is up.
	req := <-requests
	deadline := time.Now().Add(10 * time.Second)
	for req.Value() != nil {
		if time.Now().After(deadline) {
			t.Fatal("the handshake's http.Request is still reachable")
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}

	// A namespace connected to afterwards sees the same handshake.
	if err := ws.WriteMessage(websocket.TextMessage, []byte("40/later,")); err != nil {
		t.Fatal(err)
	}
	read("40/later,")
	later := <-handshakes
	for name, hs := range map[string]*socket.Handshake{"/": first, "/later": later} {
		if got, _ := hs.Headers["X-Test"].([]string); len(got) != 1 || got[0] != "yes" {
			t.Errorf("%s: header X-Test = %v", name, hs.Headers["X-Test"])
		}
		if got, _ := hs.Query["room"].([]string); len(got) != 1 || got[0] != "kitchen" {
			t.Errorf("%s: query room = %v", name, hs.Query["room"])
		}
		if !strings.HasPrefix(hs.Url, "/socket.io/?EIO=4&transport=websocket&room=kitchen") {
			t.Errorf("%s: url %q", name, hs.Url)
		}
		if !hs.Xdomain || hs.Secure {
			t.Errorf("%s: xdomain %v, secure %v", name, hs.Xdomain, hs.Secure)
		}
		if !strings.HasPrefix(hs.Address, "127.0.0.1:") {
			t.Errorf("%s: address %q", name, hs.Address)
		}
	}
}

// The Socket.IO socket keeps only the auth payload and the time it
// connected (PATCH(auraos) in socketadapter/patched/socketio-server/socket.go):
// each Handshake call builds the same details anew, so a caller that changes
// one changes no other, and Auth gives the payload without building them.
func TestHandshakeIsBuiltOnEachCall(t *testing.T) {
	t.Parallel()
	io := socket.NewServer(nil, socket.DefaultServerOptions())
	t.Cleanup(func() { io.Close(nil) })
	sockets := make(chan *socket.Socket, 1)
	io.On("connection", func(args ...any) { sockets <- args[0].(*socket.Socket) })
	srv := httptest.NewServer(io.ServeHandler(nil))
	t.Cleanup(srv.Close)

	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/socket.io/?EIO=4&transport=websocket&room=kitchen"
	ws, _, err := websocket.DefaultDialer.Dial(url, http.Header{"X-Test": {"yes"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`40{"token":"t1"}`)); err != nil {
		t.Fatal(err)
	}
	var s *socket.Socket
	select {
	case s = <-sockets:
	case <-time.After(10 * time.Second):
		t.Fatal("no connection")
	}

	if got, _ := s.Auth()["token"].(string); got != "t1" {
		t.Fatalf("Auth() = %v, want token t1", s.Auth())
	}
	first := s.Handshake()
	first.Headers["X-Test"] = []string{"changed"}
	first.Query["room"] = []string{"changed"}
	time.Sleep(1100 * time.Millisecond) // a second later: Time and Issued must not move
	second := s.Handshake()
	if got, _ := second.Headers["X-Test"].([]string); len(got) != 1 || got[0] != "yes" {
		t.Errorf("after a caller changed its copy, header X-Test = %v", second.Headers["X-Test"])
	}
	if got, _ := second.Query["room"].([]string); len(got) != 1 || got[0] != "kitchen" {
		t.Errorf("after a caller changed its copy, query room = %v", second.Query["room"])
	}
	if second.Issued != first.Issued || second.Time != first.Time || second.Issued == 0 {
		t.Errorf("connection time moved: %d %q, then %d %q", first.Issued, first.Time, second.Issued, second.Time)
	}
	if got, _ := second.Auth["token"].(string); got != "t1" {
		t.Errorf("Handshake().Auth = %v, want token t1", second.Auth)
	}
}
