package socketadapter_test

import (
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/auraos/realtime/socketadapter"
	"github.com/auraos/realtime/socketadapter/sockettest"
)

// dialFrozen opens a raw Engine.IO websocket with a tiny receive buffer,
// joins room and from then on reads nothing, but answers pings blindly (a
// pong every 100 ms), as a frozen tab on a path that still passes small
// frames does. It returns a function that stops the pongs.
func dialFrozen(t *testing.T, url, uid, room string) (stop func()) {
	t.Helper()
	dialer := *websocket.DefaultDialer
	dialer.NetDialContext = (&net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		_ = c.Control(func(fd uintptr) { err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return err
	}}).DialContext
	ws, _, err := dialer.Dial("ws"+strings.TrimPrefix(url, "http")+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	for _, step := range []struct{ send, want string }{{"", "0{"}, {"40", "40{"}} {
		if step.send != "" {
			if err := ws.WriteMessage(websocket.TextMessage, []byte(step.send)); err != nil {
				t.Fatal(err)
			}
		}
		if _, msg, err := ws.ReadMessage(); err != nil || !strings.HasPrefix(string(msg), step.want) {
			t.Fatalf("handshake: got %q, %v; want %s…", msg, err, step.want)
		}
	}
	join := `42["join_chat_room",{"roomName":"` + room + `","userProfile":{"uid":"` + uid + `","email":"` + uid + `@example.com"}}]`
	if err := ws.WriteMessage(websocket.TextMessage, []byte(join)); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				_ = ws.SetWriteDeadline(time.Now().Add(time.Second))
				if ws.WriteMessage(websocket.TextMessage, []byte("3")) != nil {
					return
				}
			}
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { close(done); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

func heapAlloc() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// A client that stops reading but keeps answering pings, in a busy room, is
// disconnected once its queue passes the bound; the server does not keep
// what was sent for it, and the other members carry on.
func TestANonReadingClientIsDisconnectedAndTheHeapStaysBounded(t *testing.T) {
	// Not parallel: it measures the process's heap.
	const queueMax = 256 << 10
	st := startStack(t, socketadapter.Config{
		ClientQueueMax: queueMax, PingInterval: 200 * time.Millisecond, PingTimeout: 2 * time.Second,
		Limits: socketadapter.RateLimits{Message: socketadapter.RateLimit{Rate: 1e6, Burst: 1e6}},
	})
	const room = "busy"
	dialFrozen(t, st.URL, "frozen", room)

	const senders = 8
	clients := make([]*sockettest.Client, senders)
	for i := range clients {
		c := sockettest.Dial(t, st.URL, "websocket", nil)
		uid := "sender" + string(rune('a'+i))
		if ack := c.EmitAck("join_chat_room", map[string]any{"roomName": room, "userProfile": sockettest.Profile(uid)}); ack["ok"] != true {
			t.Fatalf("join: %v", ack)
		}
		c.Ignore("new_message")
		clients[i] = c
	}
	before := heapAlloc()

	text := strings.Repeat("x", 1000)
	var sent atomic.Int64 // bytes of messages the room was sent
	disconnected := func() bool { return strings.Contains(st.Log.String(), "disconnected a slow consumer") }
	// send keeps the room busy until stop says so.
	send := func(stop func() bool) {
		var wg sync.WaitGroup
		for i, c := range clients {
			uid := "sender" + string(rune('a'+i))
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !stop() {
					ack, err := c.TryEmitAck("send_message", map[string]any{"roomName": room, "message": text, "userProfile": sockettest.Profile(uid)})
					if err != nil || ack["ok"] != true {
						t.Errorf("send_message: %v %v", ack, err)
						return
					}
					sent.Add(int64(len(text)))
				}
			}()
		}
		wg.Wait()
	}
	const giveUpAfter = 48 << 20
	send(func() bool { return disconnected() || sent.Load() > giveUpAfter || t.Failed() })
	if !disconnected() {
		t.Fatalf("the non-reading client was not disconnected after %d MiB were sent to its room", sent.Load()>>20)
	}
	// The room stays busy after the disconnect, and the others are served.
	after := sent.Load()
	send(func() bool { return sent.Load() > after+8<<20 || t.Failed() })
	grown := int64(heapAlloc()) - int64(before)
	// What stays is the store's tail of recent commits (bounded in bytes)
	// and the like, whatever was sent; without the bound the frozen
	// client's queue alone would hold most of what its room was sent.
	if grown > 16<<20 {
		t.Fatalf("live heap grew by %d MiB while %d MiB went to the room; want it bounded (a few times the %d KiB queue)", grown>>20, sent.Load()>>20, queueMax>>10)
	}
	t.Logf("disconnected after %d KiB; heap grew by %d KiB over %d MiB sent", after>>10, grown>>10, sent.Load()>>20)
}
