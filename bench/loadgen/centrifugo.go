package main

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Centrifugo's JSON protocol over one websocket, for the reference row of
// the fan-out scenario (-scenario centrifugo). Commands and replies are
// JSON objects; one websocket message may carry several, one per line:
//
//	{"id":1,"connect":{}}                        → {"id":1,"connect":{"client":…,"ping":25,"pong":true}}
//	{"id":2,"subscribe":{"channel":"room"}}      → {"id":2,"subscribe":{…}}
//	{"id":3,"publish":{"channel":"room","data":…}} → {"id":3,"publish":{}}
//	{"push":{"channel":"room","pub":{"data":…,"offset":7}}}   a publication
//	{}                                           a ping; the client answers {}
//
// A reply to a failed command carries "error". Replies whose id a call()
// waits for go to it; every other line goes to the handler.

// centrifugoURL turns a server URL (http://host:port) into Centrifugo's
// websocket endpoint.
func centrifugoURL(raw string) (string, error) {
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	u.Scheme = map[string]string{"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}[u.Scheme]
	if u.Scheme == "" {
		return "", fmt.Errorf("unsupported URL scheme in %q", raw)
	}
	u.Path, u.RawQuery = "/connection/websocket", ""
	return u.String(), nil
}

// dialCentrifugo is a dialFunc for Centrifugo: it sends connect and waits
// for the reply before starting the reading goroutine.
func dialCentrifugo(ctx context.Context, endpoint string, id int, h handler) (*client, error) {
	ws, nc, err := openWS(ctx, endpoint, id)
	if err != nil {
		return nil, err
	}
	// Call ids start after connect's 1.
	c := &client{id: id, ws: ws, nc: nc, handle: h, centrifugo: true, nextAck: 2, acks: map[int]chan []byte{}, done: make(chan struct{})}
	_ = ws.SetReadDeadline(handshakeDeadline(ctx))
	if err := c.write([]byte(`{"id":1,"connect":{}}`)); err != nil {
		ws.Close()
		return nil, err
	}
	_, p, err := ws.ReadMessage()
	if err != nil {
		ws.Close()
		return nil, fmt.Errorf("waiting for the connect reply: %w", err)
	}
	if !bytes.HasPrefix(p, []byte(`{"id":1,"connect"`)) {
		ws.Close()
		return nil, fmt.Errorf("connect refused: %.200s", p)
	}
	_ = ws.SetReadDeadline(time.Time{})
	go c.readLoop()
	return c, nil
}

// readCentrifugo is readLoop for Centrifugo connections.
func (c *client) readCentrifugo() {
	defer close(c.done)
	var buf []byte
	for {
		_, r, err := c.ws.NextReader()
		if err != nil {
			c.rerr = err
			return
		}
		if buf, err = readAll(r, buf[:0]); err != nil {
			c.rerr = err
			return
		}
		now := nanotime()
		for rest := buf; len(rest) > 0; {
			line := rest
			if i := bytes.IndexByte(rest, '\n'); i >= 0 {
				line, rest = rest[:i], rest[i+1:]
			} else {
				rest = nil
			}
			switch {
			case len(line) == 0:
			case bytes.Equal(line, []byte("{}")):
				if err := c.write([]byte("{}")); err != nil {
					c.rerr = err
					return
				}
			default:
				if id, ok := centrifugoReplyID(line); ok && c.deliverAckID(id, line) {
					continue
				}
				if c.handle != nil {
					c.handle(c, line, now)
				}
			}
		}
	}
}

// centrifugoReplyID is the id of a reply line ({"id":N,…}).
func centrifugoReplyID(line []byte) (int, bool) {
	rest, ok := bytes.CutPrefix(line, []byte(`{"id":`))
	if !ok {
		return 0, false
	}
	v, _, ok := parseInt(rest)
	return int(v), ok
}

// commandPacket appends {"id":<id>,"<method>":params} to dst.
func commandPacket(dst []byte, id int, method string, params []byte) []byte {
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendInt(dst, int64(id), 10)
	dst = append(dst, `,"`...)
	dst = append(dst, method...)
	dst = append(dst, `":`...)
	dst = append(dst, params...)
	return append(dst, '}')
}
