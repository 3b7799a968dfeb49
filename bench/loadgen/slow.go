package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// The slow-consumer scenario is the fan-out scenario with slow members
// added to every room: a slow member joins its room, then never reads
// again, as a frozen browser tab or a phone on a dead network path. It
// still sends an Engine.IO pong every slowPongEvery, so a heartbeat alone
// does not drop it (it cannot see the pings it does not read; servers take
// a pong at any time). Its receive buffer is small, so what the server
// sends it piles up on the server, not in this process's kernel buffers.

// slowPongEvery is well inside the default ping timeout (20 s).
const slowPongEvery = 2 * time.Second

// slowMember is one non-reading connection.
type slowMember struct {
	ws   *websocket.Conn
	wmu  sync.Mutex
	stop chan struct{}
	done chan struct{} // closed when its pong goroutine has ended
}

// dialSlow connects a slow member and joins it to room; from then on
// nothing reads the connection.
func dialSlow(ctx context.Context, endpoint string, room int, uid string) (*slowMember, error) {
	d := *dialer
	d.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		nd := &net.Dialer{Timeout: 10 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
			})
			if err != nil {
				return err
			}
			return serr
		}}
		return nd.DialContext(ctx, network, addr)
	}
	ws, resp, err := d.DialContext(ctx, endpoint, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	_ = ws.SetReadDeadline(time.Now().Add(15 * time.Second))
	// open, then our CONNECT and its answer, then the join and its ack:
	// the last frames this connection reads.
	join := eventPacket(nil, 0, "join_chat_room", fmt.Appendf(nil,
		`{"roomName":"bench_room_%d","userProfile":{"uid":%q,"email":"%s@bench.example","displayName":"Slow %s"}}`, room, uid, uid, uid))
	steps := []struct{ send, until []byte }{{nil, []byte("0")}, {[]byte("40"), []byte("40")}, {join, []byte("430")}}
	for _, st := range steps {
		if st.send != nil {
			if err := ws.WriteMessage(websocket.TextMessage, st.send); err != nil {
				ws.Close()
				return nil, err
			}
		}
		for {
			_, p, err := ws.ReadMessage()
			if err != nil {
				ws.Close()
				return nil, fmt.Errorf("slow member %s: waiting for %q: %w", uid, st.until, err)
			}
			if bytes.Equal(p, []byte("2")) {
				_ = ws.WriteMessage(websocket.TextMessage, []byte("3"))
			}
			if bytes.HasPrefix(p, st.until) {
				break
			}
		}
	}
	s := &slowMember{ws: ws, stop: make(chan struct{}), done: make(chan struct{})}
	go s.pong()
	return s, nil
}

func (s *slowMember) pong() {
	defer close(s.done)
	t := time.NewTicker(slowPongEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.wmu.Lock()
			_ = s.ws.SetWriteDeadline(time.Now().Add(time.Second))
			err := s.ws.WriteMessage(websocket.TextMessage, []byte("3"))
			s.wmu.Unlock()
			if err != nil {
				return // the server closed it (or our writes back up too)
			}
		}
	}
}

// disconnected stops the pongs and reports whether the server has closed
// the connection: it reads what is queued for at most limit, and a closed
// connection ends the read with an error other than the deadline.
func (s *slowMember) disconnected(limit time.Duration) bool {
	close(s.stop)
	<-s.done
	_ = s.ws.SetReadDeadline(time.Now().Add(limit))
	s.ws.SetReadLimit(0)
	for {
		if _, _, err := s.ws.NextReader(); err != nil {
			var ne net.Error
			return !errors.As(err, &ne) || !ne.Timeout()
		}
	}
}

// slowDisconnectsMetric reads auraos_slow_disconnects_total from a
// Prometheus text endpoint; -1 when there is none.
func slowDisconnectsMetric(ctx context.Context, url string) float64 {
	if url == "" {
		return -1
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return -1
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("auraos_slow_disconnects_total ")); ok {
			if f, err := strconv.ParseFloat(string(bytes.TrimSpace(v)), 64); err == nil {
				return f
			}
		}
	}
	return -1
}
