package socketadapter_test

import (
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/auraos/realtime/socketadapter"
)

// dialEngine opens a raw Engine.IO websocket and connects to the default
// namespace, so that a test decides itself whether to answer pings.
func dialEngine(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(url, "http")+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	if _, open, err := ws.ReadMessage(); err != nil || !strings.HasPrefix(string(open), "0{") {
		t.Fatalf("open packet: %q, %v", open, err)
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte("40")); err != nil {
		t.Fatal(err)
	}
	if _, connect, err := ws.ReadMessage(); err != nil || !strings.HasPrefix(string(connect), "40{") {
		t.Fatalf("connect packet: %q, %v", connect, err)
	}
	return ws
}

// The server pings every interval, again and again as long as the client
// answers, and drops a client that stops answering.
func TestHeartbeat(t *testing.T) {
	t.Parallel()
	st := startStack(t, socketadapter.Config{PingInterval: 100 * time.Millisecond, PingTimeout: 300 * time.Millisecond})

	t.Run("answered pings keep coming", func(t *testing.T) {
		t.Parallel()
		ws := dialEngine(t, st.URL)
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		for pings := 0; pings < 5; {
			_, msg, err := ws.ReadMessage()
			if err != nil {
				t.Fatalf("after %d pings: %v", pings, err)
			}
			if string(msg) == "2" {
				pings++
				if err := ws.WriteMessage(websocket.TextMessage, []byte("3")); err != nil {
					t.Fatal(err)
				}
			}
		}
	})

	t.Run("a silent client is dropped", func(t *testing.T) {
		t.Parallel()
		ws := dialEngine(t, st.URL)
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		pings := 0
		for {
			_, msg, err := ws.ReadMessage()
			if err != nil {
				if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
					t.Fatal("the server kept a client that never answered a ping")
				}
				break // the server closed the connection
			}
			if string(msg) == "2" {
				pings++
			}
		}
		if pings != 1 {
			t.Fatalf("the server sent %d pings before dropping the client, want 1", pings)
		}
	})
}
