package main

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	sioc "github.com/zishang520/socket.io/clients/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// client is a Go Socket.IO client that records every event it receives.
type client struct {
	t *testing.T
	s *sioc.Socket

	mu      sync.Mutex
	events  map[string][]json.RawMessage // first argument of each event, as JSON
	changed chan struct{}
	down    chan string // disconnect reasons
}

// dial connects a client over one transport and waits until it is connected.
func dial(t *testing.T, url, transport string, auth map[string]any) *client {
	t.Helper()
	opts := sioc.DefaultOptions()
	if transport == "polling" {
		opts.SetTransports(types.NewSet(sioc.Polling))
	} else {
		opts.SetTransports(types.NewSet(sioc.WebSocket))
	}
	opts.SetReconnection(false)
	opts.SetForceNew(true)
	opts.SetAutoConnect(false)
	opts.SetTimeout(5 * time.Second)
	opts.SetAckTimeout(5 * time.Second)
	if auth != nil {
		opts.SetAuth(auth)
	}
	s, err := sioc.Connect(url, opts)
	if err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, s: s, events: map[string][]json.RawMessage{}, changed: make(chan struct{}), down: make(chan string, 4)}
	connected := make(chan error, 1)
	s.On("connect", func(...any) { connected <- nil })
	s.On("connect_error", func(a ...any) { connected <- fmt.Errorf("connect_error: %v", a) })
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
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("client did not connect")
	}
	t.Cleanup(func() { s.Disconnect() })
	return c
}

// emitAck sends an event and returns its acknowledgement, decoded.
func (c *client) emitAck(event string, payload any) map[string]any {
	c.t.Helper()
	res, err := c.tryEmitAck(event, payload)
	if err != nil {
		c.t.Fatalf("%s: %v", event, err)
	}
	return res
}

func (c *client) tryEmitAck(event string, payload any) (map[string]any, error) {
	done := make(chan map[string]any, 1)
	fail := make(chan error, 1)
	c.s.EmitWithAck(event, payload)(func(args []any, err error) {
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
		return nil, err
	case <-time.After(25 * time.Second):
		return nil, fmt.Errorf("no ack within 25s")
	}
}

// waitEvent waits until an event arrives whose first argument satisfies
// match (nil matches any) and returns it.
func (c *client) waitEvent(event string, match func(json.RawMessage) bool) json.RawMessage {
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

// received returns the events of a name received so far.
func (c *client) received(event string) []json.RawMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]json.RawMessage(nil), c.events[event]...)
}

func profileOf(uid string) map[string]any {
	return map[string]any{"uid": uid, "email": uid + "@example.com", "displayName": "User " + uid}
}
