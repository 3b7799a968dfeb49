package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// A minimal Engine.IO v4 / Socket.IO v5 client over one websocket: the
// default namespace, text packets only, no polling, no reconnection. Each
// websocket message is one Engine.IO packet:
//
//	0{...}  open            2 / 3  ping / pong         4...  message
//	40 / 40{"sid":...}      Socket.IO CONNECT (sent / answered)
//	42["event",payload,...] an event; 42<id>[...] asks for an ack
//	43<id>[...]             an ack reply
//	44{...}                 CONNECT_ERROR
//
// One goroutine per connection reads; it answers pings itself and hands
// every other packet to the connection's handler, with a buffer that is
// reused for the next packet (handlers must not keep it).

// handler sees one Engine.IO packet (starting with '4') on the reading
// goroutine; now is when it was read, in nanoseconds since the process's
// clock origin.
type handler func(c *client, pkt []byte, now int64)

// streamHandler sees a packet larger than largePacket as it arrives: the
// first largePacket bytes, then the rest to read. The storm's lists of
// thousands of users are megabytes: buffered whole, ten thousand
// connections reading them at once would hold tens of gigabytes.
type streamHandler func(c *client, prefix []byte, rest io.Reader, now int64) error

// largePacket is the size from which a connection with a streamHandler
// streams a packet instead of buffering it.
const largePacket = 64 << 10

// origin is the monotonic clock origin that send timestamps and receive
// times are measured from: one process, one clock.
var origin = time.Now()

func nanotime() int64 { return int64(time.Since(origin)) }

type client struct {
	id int
	ws *websocket.Conn
	nc *countingConn
	// Sid is the Socket.IO id the server gave this connection.
	Sid string

	wmu sync.Mutex // writers: the reading goroutine (pongs, follow-ups) and scenario code

	handle handler
	large  streamHandler // nil: every packet is buffered whole
	// centrifugo: the connection speaks Centrifugo's JSON protocol
	// (centrifugo.go), not Socket.IO.
	centrifugo bool

	// acks awaited by call(); used at set-up, not on hot paths.
	amu     sync.Mutex
	nextAck int
	acks    map[int]chan []byte

	done chan struct{} // closed when the reading goroutine ends
	rerr error         // why it ended (read after done)
}

// countingConn counts the bytes read from the network, websocket framing
// included: what the server sent this connection.
type countingConn struct {
	net.Conn
	in atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.Add(int64(n))
	return n, err
}

// wsURL turns a server URL (http://host:port, ws://…) into the Socket.IO
// websocket endpoint.
func wsURL(raw string) (string, error) {
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("unsupported URL scheme %q", u.Scheme)
	}
	u.Path = "/socket.io/"
	u.RawQuery = "EIO=4&transport=websocket"
	return u.String(), nil
}

var dialer = &websocket.Dialer{
	HandshakeTimeout: 15 * time.Second,
	ReadBufferSize:   4096,
	WriteBufferSize:  2048,
}

// connsPerSourceAddr is how many connections share one loopback source
// address: one address has about 28,000 ephemeral ports
// (net.ipv4.ip_local_port_range), so 50,000 websockets need two.
const connsPerSourceAddr = 25_000

// sourceAddr is the local address of connection id: 127.0.0.1 for the first
// connsPerSourceAddr, then 127.0.0.2, … (all of 127/8 is loopback).
func sourceAddr(id int) *net.TCPAddr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+id/connsPerSourceAddr))}
}

// A dialFunc opens one client connection: the handshakes done, its
// reading goroutine started with h as the packet handler.
type dialFunc func(ctx context.Context, endpoint string, id int, h handler) (*client, error)

// socketIODial dials Socket.IO clients whose CONNECT packet carries auth
// (nil: none).
func socketIODial(auth []byte) dialFunc {
	return socketIOStreamDial(auth, nil)
}

// socketIOStreamDial is socketIODial whose connections hand packets larger
// than largePacket to large (when not nil) as they arrive.
func socketIOStreamDial(auth []byte, large func(id int) streamHandler) dialFunc {
	return func(ctx context.Context, endpoint string, id int, h handler) (*client, error) {
		var l streamHandler
		if large != nil {
			l = large(id)
		}
		return dial(ctx, endpoint, id, h, l, auth)
	}
}

// openWS opens the websocket of connection id, counting what it reads.
func openWS(ctx context.Context, endpoint string, id int) (*websocket.Conn, *countingConn, error) {
	var nc *countingConn
	d := *dialer
	d.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		nd := &net.Dialer{Timeout: 10 * time.Second}
		if id >= connsPerSourceAddr {
			nd.LocalAddr = sourceAddr(id)
		}
		conn, err := nd.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		nc = &countingConn{Conn: conn}
		return nc, nil
	}
	ws, resp, err := d.DialContext(ctx, endpoint, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, nil, err
	}
	return ws, nc, nil
}

// handshakeDeadline bounds a connection's handshake by ctx and 15 s.
func handshakeDeadline(ctx context.Context) time.Time {
	deadline := time.Now().Add(15 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	return deadline
}

// dial opens a websocket, completes the Engine.IO and Socket.IO handshakes
// (auth, when not nil, is the CONNECT packet's auth object) and starts the
// reading goroutine with h as the packet handler.
func dial(ctx context.Context, endpoint string, id int, h handler, large streamHandler, auth []byte) (*client, error) {
	ws, nc, err := openWS(ctx, endpoint, id)
	if err != nil {
		return nil, err
	}
	c := &client{id: id, ws: ws, nc: nc, handle: h, large: large, acks: map[int]chan []byte{}, done: make(chan struct{})}
	_ = ws.SetReadDeadline(handshakeDeadline(ctx))
	// Engine.IO open packet.
	_, open, err := ws.ReadMessage()
	if err != nil {
		ws.Close()
		return nil, fmt.Errorf("reading the open packet: %w", err)
	}
	if len(open) == 0 || open[0] != '0' {
		ws.Close()
		return nil, fmt.Errorf("expected an open packet, got %.60q", open)
	}
	// Socket.IO CONNECT to the default namespace.
	if err := c.write(append([]byte("40"), auth...)); err != nil {
		ws.Close()
		return nil, err
	}
	for {
		_, p, err := ws.ReadMessage()
		if err != nil {
			ws.Close()
			return nil, fmt.Errorf("waiting for the namespace connect: %w", err)
		}
		switch {
		case bytes.HasPrefix(p, []byte("40")):
			var hello struct {
				Sid string `json:"sid"`
			}
			_ = json.Unmarshal(p[2:], &hello)
			c.Sid = hello.Sid
		case bytes.HasPrefix(p, []byte("44")):
			ws.Close()
			return nil, fmt.Errorf("connect refused: %s", p[2:])
		case bytes.Equal(p, []byte("2")):
			if err := c.write([]byte("3")); err != nil {
				ws.Close()
				return nil, err
			}
			continue
		default:
			continue // nothing else comes before the connect
		}
		break
	}
	_ = ws.SetReadDeadline(time.Time{})
	go c.readLoop()
	return c, nil
}

// dialRetry dials with a few retries: a burst of connections can overflow
// a listen backlog.
func dialRetry(ctx context.Context, dial dialFunc, endpoint string, id int, h handler) (*client, error) {
	var err error
	for attempt := 0; attempt < 6; attempt++ {
		var c *client
		if c, err = dial(ctx, endpoint, id, h); err == nil {
			return c, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		select {
		case <-time.After(time.Duration(100<<attempt) * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return nil, err
}

func (c *client) readLoop() {
	if c.centrifugo {
		c.readCentrifugo()
		return
	}
	defer close(c.done)
	var buf []byte
	for {
		_, r, err := c.ws.NextReader()
		if err != nil {
			c.rerr = err
			return
		}
		limit := -1
		if c.large != nil {
			limit = largePacket
		}
		var more bool
		buf, more, err = readUpTo(r, buf[:0], limit)
		if err == nil && more {
			err = c.large(c, buf, r, nanotime())
			if err == nil {
				_, err = io.Copy(io.Discard, r)
			}
			if err != nil {
				c.rerr = err
				return
			}
			continue
		}
		if err != nil {
			c.rerr = err
			return
		}
		now := nanotime()
		if len(buf) == 0 {
			continue
		}
		switch buf[0] {
		case '2': // ping
			if err := c.write([]byte("3")); err != nil {
				c.rerr = err
				return
			}
		case '1': // close
			c.rerr = errors.New("server closed the engine")
			return
		case '4':
			if len(buf) > 1 && buf[1] == '3' && c.deliverAck(buf) {
				continue
			}
			if c.handle != nil {
				c.handle(c, buf, now)
			}
		}
	}
}

// readUpTo reads one message into buf, growing it as needed, until its end
// or, when limit is not negative, until buf holds limit bytes; more says
// the message goes on.
func readUpTo(r io.Reader, buf []byte, limit int) (_ []byte, more bool, err error) {
	if limit < 0 {
		buf, err = readAll(r, buf)
		return buf, false, err
	}
	if cap(buf) < limit {
		buf = make([]byte, 0, limit)
	}
	for len(buf) < limit {
		n, err := r.Read(buf[len(buf):limit])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, false, nil
		}
		if err != nil {
			return buf, false, err
		}
	}
	return buf, true, nil
}

// readAll reads one message into buf, growing it as needed.
func readAll(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// write sends one text message.
func (c *client) write(p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(p)
}

// writeLocked sends one text message; the caller holds wmu.
func (c *client) writeLocked(p []byte) error {
	_ = c.ws.SetWriteDeadline(time.Now().Add(15 * time.Second))
	return c.ws.WriteMessage(websocket.TextMessage, p)
}

// emit sends 42["event",payload] (payload is JSON, or nil for none).
func (c *client) emit(event string, payload []byte) error {
	return c.write(eventPacket(nil, -1, event, payload))
}

// eventPacket appends 42[<id>]["event",payload] to dst.
func eventPacket(dst []byte, ackID int, event string, payload []byte) []byte {
	dst = append(dst, '4', '2')
	if ackID >= 0 {
		dst = strconv.AppendInt(dst, int64(ackID), 10)
	}
	dst = append(dst, '[', '"')
	dst = append(dst, event...)
	dst = append(dst, '"')
	if payload != nil {
		dst = append(dst, ',')
		dst = append(dst, payload...)
	}
	return append(dst, ']')
}

// call emits an event with an ack id and waits for the ack's arguments
// (the JSON array after 43<id>); a Centrifugo client sends the command
// event instead and gets the whole reply.
func (c *client) call(ctx context.Context, event string, payload []byte) ([]byte, error) {
	ch := make(chan []byte, 1)
	c.amu.Lock()
	id := c.nextAck
	c.nextAck++
	c.acks[id] = ch
	c.amu.Unlock()
	defer func() {
		c.amu.Lock()
		delete(c.acks, id)
		c.amu.Unlock()
	}()
	pkt := eventPacket(nil, id, event, payload)
	if c.centrifugo {
		pkt = commandPacket(nil, id, event, payload)
	}
	if err := c.write(pkt); err != nil {
		return nil, err
	}
	select {
	case res := <-ch:
		return res, nil
	case <-c.done:
		return nil, fmt.Errorf("connection closed while waiting for the %s ack: %v", event, c.rerr)
	case <-ctx.Done():
		return nil, fmt.Errorf("no ack for %s: %w", event, ctx.Err())
	}
}

// deliverAck hands 43<id>[...] to a waiting call; it reports false for an
// ack nobody waits for.
func (c *client) deliverAck(pkt []byte) bool {
	i := 2
	for i < len(pkt) && pkt[i] >= '0' && pkt[i] <= '9' {
		i++
	}
	id, err := strconv.Atoi(string(pkt[2:i]))
	if err != nil {
		return false
	}
	return c.deliverAckID(id, pkt[i:])
}

// deliverAckID hands an ack's payload to the call waiting for id.
func (c *client) deliverAckID(id int, payload []byte) bool {
	c.amu.Lock()
	ch, ok := c.acks[id]
	c.amu.Unlock()
	if !ok {
		return false
	}
	select {
	case ch <- bytes.Clone(payload):
	default:
	}
	return true
}

// eventName returns the name of a 42[...] packet (nil for other packets).
// Event names carry no escapes.
func eventName(pkt []byte) []byte {
	if len(pkt) < 5 || pkt[0] != '4' || pkt[1] != '2' {
		return nil
	}
	i := 2
	for i < len(pkt) && pkt[i] >= '0' && pkt[i] <= '9' {
		i++
	}
	if i+1 >= len(pkt) || pkt[i] != '[' || pkt[i+1] != '"' {
		return nil
	}
	rest := pkt[i+2:]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return nil
	}
	return rest[:end]
}

// connectAll dials n clients with dial, at most par at a time, and returns
// them in order. On error it closes what it opened.
func connectAll(ctx context.Context, endpoint string, n, par int, dial dialFunc, h func(i int) handler, progress func(done int)) ([]*client, error) {
	clients := make([]*client, n)
	var next atomic.Int64
	var connected atomic.Int64
	var firstErr error
	var emu sync.Mutex
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for w := 0; w < par; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				c, err := dialRetry(ctx, dial, endpoint, i, h(i))
				if err != nil {
					emu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("connection %d: %w", i, err)
					}
					emu.Unlock()
					cancel()
					return
				}
				clients[i] = c
				if d := connected.Add(1); progress != nil {
					progress(int(d))
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		closeAll(clients)
		return nil, firstErr
	}
	return clients, nil
}

// closeAll closes every client and waits for their reading goroutines.
func closeAll(clients []*client) {
	for _, c := range clients {
		if c != nil {
			_ = c.ws.Close()
		}
	}
	for _, c := range clients {
		if c != nil {
			<-c.done
		}
	}
}
