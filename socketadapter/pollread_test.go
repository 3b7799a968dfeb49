package socketadapter_test

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/auraos/realtime/socketadapter"
)

// The Engine.IO server waits for idle websockets with one poller and reads
// a readable one on a goroutine that ends when what arrived is handled
// (socketadapter/patched/engineio-server/transports/pollconn.go). These
// tests write frames byte by byte where they need to, below gorilla's
// client: the server must see the same messages however the bytes arrive.

// clientFrame encodes one masked client frame.
func clientFrame(fin bool, opcode byte, payload []byte) []byte {
	b0 := opcode
	if fin {
		b0 |= 0x80
	}
	f := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		f = append(f, 0x80|byte(n))
	case n <= 0xffff:
		f = append(f, 0x80|126, byte(n>>8), byte(n))
	default:
		f = append(f, 0x80|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	mask := [4]byte{0x11, 0x22, 0x33, 0x44}
	f = append(f, mask[:]...)
	for i, c := range payload {
		f = append(f, c^mask[i%4])
	}
	return f
}

// ackedEvent is a Socket.IO event with ack id: typing_stop without a room,
// which the server refuses, answering the ack.
func ackedEvent(id int, pad int) string {
	return fmt.Sprintf(`42%d["typing_stop",{"pad":"%s"}]`, id, strings.Repeat("x", pad))
}

// readAcks reads until acks 1..n arrived, in order, and counts the pongs
// that came meanwhile.
func readAcks(t *testing.T, ws *websocket.Conn, n int) (pongs int) {
	t.Helper()
	ws.SetPongHandler(func(string) error { pongs++; return nil })
	_ = ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	for want := 1; want <= n; {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("waiting for ack %d: %v", want, err)
		}
		s := string(msg)
		if !strings.HasPrefix(s, "43") {
			continue // pings, broadcasts
		}
		if prefix := fmt.Sprintf("43%d[", want); !strings.HasPrefix(s, prefix) {
			t.Fatalf("got %.40q, want ack %d", s, want)
		}
		want++
	}
	return pongs
}

func TestPolledWebsocketReadsFramesHoweverTheyArrive(t *testing.T) {
	t.Parallel()
	st := startStack(t, socketadapter.Config{})

	// One stream of frames: small messages, a message in three fragments
	// with an empty ping and a ping with payload between them, messages
	// larger than the poll's lent buffer (4 KiB) with 16- and 64-bit
	// lengths, and small messages after them.
	var stream []byte
	id := 0
	next := func(pad int) []byte { id++; return []byte(ackedEvent(id, pad)) }
	stream = append(stream, clientFrame(true, websocket.TextMessage, next(0))...)
	stream = append(stream, clientFrame(true, websocket.TextMessage, next(3))...)
	frag := next(200)
	stream = append(stream, clientFrame(false, websocket.TextMessage, frag[:5])...)
	stream = append(stream, clientFrame(true, websocket.PingMessage, nil)...)
	stream = append(stream, clientFrame(false, 0, frag[5:150])...)
	stream = append(stream, clientFrame(true, websocket.PingMessage, []byte("hello"))...)
	stream = append(stream, clientFrame(true, 0, frag[150:])...)
	stream = append(stream, clientFrame(true, websocket.TextMessage, next(10_000))...)
	stream = append(stream, clientFrame(true, websocket.TextMessage, next(70_000))...)
	for range 20 {
		stream = append(stream, clientFrame(true, websocket.TextMessage, next(1))...)
	}
	const pings = 2

	splits := map[string]func(rng *rand.Rand) int{
		"all at once":  func(*rand.Rand) int { return len(stream) },
		"byte by byte": func(*rand.Rand) int { return 1 },
		"random cuts":  func(rng *rand.Rand) int { return 1 + rng.IntN(300) },
	}
	for name, cut := range splits {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ws := dialEngine(t, st.URL)
			raw := ws.NetConn()
			if tcp, ok := raw.(*net.TCPConn); ok {
				_ = tcp.SetNoDelay(true)
			}
			done := make(chan error, 1)
			go func() {
				rng := rand.New(rand.NewPCG(1, 2))
				for rest := stream; len(rest) > 0; {
					n := min(cut(rng), len(rest))
					if _, err := raw.Write(rest[:n]); err != nil {
						done <- err
						return
					}
					rest = rest[n:]
				}
				done <- nil
			}()
			if got := readAcks(t, ws, id); got != pings {
				t.Fatalf("%d pongs for %d pings", got, pings)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// goroutinesIn counts the goroutines whose stacks name fn.
func goroutinesIn(fn string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, fn) {
			count++
		}
	}
	return count
}

// waitGoroutines waits until no goroutine names any of fns.
func waitGoroutines(t *testing.T, what string, fns ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := 0
		for _, fn := range fns {
			left += goroutinesIn(fn)
		}
		if left == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines still %s", left, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Readers of websockets, polled (pollRead) or not (message).
var wsReaders = []string{"transports.(*websocket).pollRead", "transports.(*websocket).message"}

// Not parallel: it counts the goroutines of the whole process.
func TestIdleWebsocketsHoldNoReadingGoroutine(t *testing.T) {
	st := startStack(t, socketadapter.Config{})
	clients := make([]*websocket.Conn, 20)
	for i := range clients {
		clients[i] = dialEngine(t, st.URL)
	}
	waitGoroutines(t, "reading idle websockets", wsReaders...)
	// And they still read: every client gets its ack.
	for _, ws := range clients {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(ackedEvent(1, 0))); err != nil {
			t.Fatal(err)
		}
		readAcks(t, ws, 1)
	}
	waitGoroutines(t, "reading idle websockets", wsReaders...)
}

// A client that stops in the middle of a frame does not keep a reading
// goroutine: the read gives up after the heartbeat's time (which also drops
// the client), and the connection is closed. Not parallel: it counts
// goroutines.
func TestHalfAFrameDoesNotPinAReader(t *testing.T) {
	st := startStack(t, socketadapter.Config{PingInterval: 100 * time.Millisecond, PingTimeout: 200 * time.Millisecond})
	ws := dialEngine(t, st.URL)
	f := clientFrame(true, websocket.TextMessage, []byte(ackedEvent(1, 100)))
	if _, err := ws.NetConn().Write(f[:9]); err != nil { // the header and 3 bytes of payload
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("the server kept a client stalled in the middle of a frame")
			}
			break
		}
	}
	waitGoroutines(t, "reading a stalled websocket", wsReaders...)
}

// Closing the server stops its poller. Not parallel: it counts goroutines.
func TestShutdownStopsThePoller(t *testing.T) {
	const poller = "transports.(*epoll).wait"
	if runtime.GOOS != "linux" || (runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64") {
		t.Skip("no poller on " + runtime.GOOS + "/" + runtime.GOARCH)
	}
	t.Cleanup(func() { waitGoroutines(t, "polling after the server closed", poller) }) // runs after the stack's close
	st := startStack(t, socketadapter.Config{})
	dialEngine(t, st.URL)
	if n := goroutinesIn(poller); n != 1 {
		t.Fatalf("%d poller goroutines with one server, want 1", n)
	}
}

// A client that starts on polling upgrades to a polled websocket: the probe,
// the upgrade, then events and the heartbeat over the websocket.
func TestPollingUpgradesToAPolledWebsocket(t *testing.T) {
	t.Parallel()
	st := startStack(t, socketadapter.Config{PingInterval: 200 * time.Millisecond, PingTimeout: 5 * time.Second})
	base := st.URL + "/socket.io/?EIO=4&transport=polling"
	poll := func(method, url, body string) string {
		t.Helper()
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: %d %q %v", method, url, res.StatusCode, b, err)
		}
		return string(b)
	}
	open := poll(http.MethodGet, base, "")
	var hs struct{ Sid string }
	if !strings.HasPrefix(open, "0") || json.Unmarshal([]byte(open[1:]), &hs) != nil || hs.Sid == "" {
		t.Fatalf("open packet %q", open)
	}
	withSid := base + "&sid=" + hs.Sid
	if got := poll(http.MethodPost, withSid, "40"); got != "ok" {
		t.Fatalf("POST 40: %q", got)
	}
	if got := poll(http.MethodGet, withSid, ""); !strings.HasPrefix(got, "40{") {
		t.Fatalf("connect packet over polling: %q", got)
	}

	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(st.URL, "http")+"/socket.io/?EIO=4&transport=websocket&sid="+hs.Sid, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	_ = ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	if err := ws.WriteMessage(websocket.TextMessage, []byte("2probe")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := ws.ReadMessage(); err != nil || string(msg) != "3probe" {
		t.Fatalf("probe answer %q, %v", msg, err)
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte("5")); err != nil {
		t.Fatal(err)
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte(ackedEvent(1, 0))); err != nil {
		t.Fatal(err)
	}
	// The ack and two pings come over the websocket; the pings are answered.
	acked, pings := false, 0
	for !acked || pings < 2 {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("after the upgrade (acked %v, %d pings): %v", acked, pings, err)
		}
		switch s := string(msg); {
		case strings.HasPrefix(s, "431["):
			acked = true
		case s == "2":
			pings++
			if err := ws.WriteMessage(websocket.TextMessage, []byte("3")); err != nil {
				t.Fatal(err)
			}
		}
	}
}
