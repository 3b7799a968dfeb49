// Package sockettest is a Socket.IO client for tests: it connects over one
// transport, records every event it receives, and sends events with
// acknowledgements.
package sockettest

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	sioc "github.com/zishang520/socket.io/clients/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// Client is a Go Socket.IO client that records every event it receives.
type Client struct {
	t testing.TB
	S *sioc.Socket

	mu      sync.Mutex
	events  map[string][]json.RawMessage // first argument of each event, as JSON
	ignored map[string]bool              // events not recorded
	changed chan struct{}
	down    chan string // disconnect reasons
}

// Dial connects a client over one transport (only "websocket" works) with
// the given handshake auth, waits until it is connected, and disconnects it
// when the test ends.
func Dial(t testing.TB, url, transport string, auth map[string]any) *Client {
	t.Helper()
	c, err := TryDial(t, url, transport, auth)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TryDial is Dial that returns the connection error (a connect_error's
// *types.ExtendedError, say) instead of failing the test.
//
// The Go client (v3.0.6) starts opening its transport before it listens for
// the "open" event, so now and then (seen about once in a hundred connects
// under the race detector) it misses it and times out without ever reaching
// the server, or it connects twice and is closed. TryDial retries such a
// connection; a refusal by the server is returned at once. The same race can
// leak the client's connect timer, which dialOnce keeps out of reach.
func TryDial(t testing.TB, url, transport string, auth map[string]any) (*Client, error) {
	return TryDialProbing(t, url, transport, auth, "request_system_status")
}

// TryDialProbing is TryDial for a namespace other than the default one:
// probe names an event the namespace acknowledges (whether it accepts it
// or not), which tells a usable connection from a broken one.
func TryDialProbing(t testing.TB, url, transport string, auth map[string]any, probe string) (*Client, error) {
	var err error
	for range 3 {
		var c *Client
		c, err = dialOnce(t, url, transport, auth, probe)
		if err == nil {
			return c, nil
		}
		var refused *types.ExtendedError
		if errors.As(err, &refused) {
			return nil, err
		}
	}
	return nil, err
}

// connectTimeout bounds one connection attempt; a client that missed its
// transport's "open" event never connects, so the attempt is retried. It
// is generous because the race detector and a suite's parallel servers
// share two cores.
const connectTimeout = 10 * time.Second

func dialOnce(t testing.TB, url, transport string, auth map[string]any, probe string) (*Client, error) {
	t.Helper()
	opts := sioc.DefaultOptions()
	switch transport {
	case "websocket":
		opts.SetTransports(types.NewSet(sioc.WebSocket))
	case "polling":
		// The Go client's polling transport (v3.0.6) connects, then never
		// POSTs the events emitted after the connect packet (seen with a
		// logging proxy), so polling is covered by the JavaScript suite.
		return nil, fmt.Errorf("sockettest: the Go client cannot emit over polling; use the JavaScript suite")
	default:
		return nil, fmt.Errorf("sockettest: unknown transport %q", transport)
	}
	opts.SetReconnection(false)
	opts.SetForceNew(true)
	opts.SetAutoConnect(false)
	// The client's own connect timer is disarmed by the "open" handler's
	// cleanup, which can run before the timer is registered; such a leaked
	// timer closes a working connection when it fires. It is set out of
	// reach here, and the select below bounds the connect instead.
	opts.SetTimeout(24 * time.Hour)
	opts.SetAckTimeout(5 * time.Second)
	if auth != nil {
		opts.SetAuth(auth)
	}
	s, err := sioc.Connect(url, opts)
	if err != nil {
		return nil, err
	}
	c := &Client{t: t, S: s, events: map[string][]json.RawMessage{}, changed: make(chan struct{}), down: make(chan string, 4)}
	connected := make(chan error, 1)
	s.On("connect", func(...any) { connected <- nil })
	s.On("connect_error", func(a ...any) {
		if len(a) > 0 {
			if err, ok := a[0].(error); ok {
				connected <- err
				return
			}
		}
		connected <- fmt.Errorf("connect_error: %v", a)
	})
	s.On("disconnect", func(a ...any) {
		reason := ""
		if len(a) > 0 {
			reason, _ = a[0].(string)
		}
		select {
		case c.down <- reason:
		default:
		}
	})
	s.OnAny(func(a ...any) {
		if len(a) == 0 {
			return
		}
		name, _ := a[0].(string)
		c.mu.Lock()
		skip := c.ignored[name]
		c.mu.Unlock()
		if skip {
			return
		}
		var first json.RawMessage = []byte("null")
		if len(a) > 1 {
			first, _ = json.Marshal(a[1])
		}
		c.mu.Lock()
		c.events[name] = append(c.events[name], first)
		close(c.changed)
		c.changed = make(chan struct{})
		c.mu.Unlock()
	})
	s.Connect()
	select {
	case err := <-connected:
		if err != nil {
			s.Disconnect()
			return nil, err
		}
	case <-time.After(connectTimeout):
		s.Disconnect()
		return nil, fmt.Errorf("client did not connect within %s", connectTimeout)
	}
	// The Go client sometimes sends its namespace CONNECT twice, which
	// the server (like Node's) answers by closing the connection; a round
	// trip tells a usable connection from such a one.
	if _, err := c.TryEmitAck(probe, nil); err != nil {
		s.Disconnect()
		return nil, fmt.Errorf("connection unusable right after connecting: %w", err)
	}
	t.Cleanup(func() { s.Disconnect() })
	return c, nil
}

// Ignore stops recording the named events, for a client that receives
// many of them and need not remember them (a load test's sender).
func (c *Client) Ignore(events ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ignored == nil {
		c.ignored = map[string]bool{}
	}
	for _, e := range events {
		c.ignored[e] = true
	}
}

// Disconnected returns a channel that receives the reason when the client
// is disconnected.
func (c *Client) Disconnected() <-chan string { return c.down }

// EmitAck sends an event and returns its acknowledgement, decoded; it fails
// the test when none comes.
func (c *Client) EmitAck(event string, payload any) map[string]any {
	c.t.Helper()
	res, err := c.TryEmitAck(event, payload)
	if err != nil {
		c.t.Fatalf("%s: %v", event, err)
	}
	return res
}

// TryEmitAck sends an event and returns its acknowledgement or the client's
// error (a timeout, a disconnect).
func (c *Client) TryEmitAck(event string, payload any) (map[string]any, error) {
	done := make(chan map[string]any, 1)
	fail := make(chan error, 1)
	c.S.EmitWithAck(event, payload)(func(args []any, err error) {
		if err != nil {
			fail <- err
			return
		}
		if len(args) == 0 {
			fail <- fmt.Errorf("empty ack")
			return
		}
		m, _ := args[0].(map[string]any)
		done <- m
	})
	select {
	case m := <-done:
		return m, nil
	case err := <-fail:
		select {
		case reason := <-c.down:
			return nil, fmt.Errorf("%w (disconnected: %s)", err, reason)
		default:
			return nil, err
		}
	case <-time.After(25 * time.Second):
		return nil, fmt.Errorf("no ack within 25s")
	}
}

// WaitEvent waits until an event arrives whose first argument satisfies
// match (nil matches any) and returns it; it fails the test after 15s.
func (c *Client) WaitEvent(event string, match func(json.RawMessage) bool) json.RawMessage {
	c.t.Helper()
	deadline := time.After(15 * time.Second)
	seen := 0
	for {
		c.mu.Lock()
		got, ch := c.events[event], c.changed
		c.mu.Unlock()
		for ; seen < len(got); seen++ {
			if match == nil || match(got[seen]) {
				return got[seen]
			}
		}
		select {
		case <-ch:
		case <-deadline:
			c.t.Fatalf("no matching %s within 15s (got %d)", event, len(got))
		}
	}
}

// Received returns the first arguments of the events of a name received so
// far.
func (c *Client) Received(event string) []json.RawMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]json.RawMessage(nil), c.events[event]...)
}

// Profile is a userProfile payload for uid.
func Profile(uid string) map[string]any {
	return map[string]any{"uid": uid, "email": uid + "@example.com", "displayName": "User " + uid}
}
