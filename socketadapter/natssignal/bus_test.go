package natssignal

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auraos/realtime/internal/sigbus/sigbustest"
	"github.com/auraos/realtime/socketadapter/natssignal/natstest"
)

// records is a slog handler that keeps the messages logged through it.
type records struct {
	mu   sync.Mutex
	msgs []string
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.msgs = append(r.msgs, rec.Level.String()+" "+rec.Message)
	r.mu.Unlock()
	return nil
}
func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *records) WithGroup(string) slog.Handler      { return r }

// count returns how many messages contain s.
func (r *records) count(s string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.msgs {
		if strings.Contains(m, s) {
			n++
		}
	}
	return n
}

func connect(t *testing.T, opts Options) *Conn {
	t.Helper()
	c, err := Connect(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func openBus(t *testing.T, c *Conn, prefix string) *Bus {
	t.Helper()
	b, err := OpenBus(c, prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// A server's own signals never come back to it, and servers on another
// prefix hear nothing of them. The checks are causal, not timed: a signal
// published after another was received is delivered after it, so what is
// received first shows what was (not) delivered before.
func TestBusDeliversToOthersOnlyAndKeepsPrefixesApart(t *testing.T) {
	t.Parallel()
	url := natstest.URL(t)
	prefix, otherPrefix := natstest.Prefix(t), natstest.Prefix(t)
	a := openBus(t, connect(t, Options{URL: url}), prefix)
	b := openBus(t, connect(t, Options{URL: url}), prefix)
	other := openBus(t, connect(t, Options{URL: url}), otherPrefix)
	otherPeer := openBus(t, connect(t, Options{URL: url}), otherPrefix)

	if !a.Publish([]byte("from a")) {
		t.Fatal("publish refused")
	}
	if got := sigbustest.Next(t, b.Signals()); got != "from a" {
		t.Fatalf("b got %q", got)
	}
	b.Publish([]byte("from b"))
	if got := sigbustest.Next(t, a.Signals()); got != "from b" {
		t.Fatalf("a's first signal is %q: its own came back to it", got)
	}
	otherPeer.Publish([]byte("other installation"))
	if got := sigbustest.Next(t, other.Signals()); got != "other installation" {
		t.Fatalf("a signal crossed prefixes: %q", got)
	}
}

// The broker going away loses the signals of that moment only: each
// connection logs the outage once, reconnects by itself, counts the
// reconnection, and signals cross again afterwards; one published while
// the broker was away is not delivered late.
func TestBusSurvivesABrokerRestart(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	prefix := natstest.Prefix(t)
	var logs records
	var reconnects atomic.Int32
	back := make(chan struct{}, 2)
	opts := Options{URL: srv.URL, Logger: slog.New(&logs), OnReconnect: func() { reconnects.Add(1); back <- struct{}{} }}
	a := openBus(t, connect(t, opts), prefix)
	b := openBus(t, connect(t, opts), prefix)
	a.Publish([]byte("before"))
	if got := sigbustest.Next(t, b.Signals()); got != "before" {
		t.Fatalf("b got %q", got)
	}

	srv.Stop()
	for deadline := time.Now().Add(30 * time.Second); a.nc.IsConnected(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the connection did not notice the broker was gone within 30s")
		}
	}
	if a.Publish([]byte("during")) {
		t.Fatal("a signal was accepted while the broker was away; it would arrive late")
	}
	srv.Start()
	for range 2 {
		select {
		case <-back:
		case <-time.After(30 * time.Second):
			t.Fatalf("not reconnected within 30s; logs: %v", logs.msgs)
		}
	}
	a.Publish([]byte("after"))
	if got := sigbustest.Next(t, b.Signals()); got != "after" {
		t.Fatalf("b's first signal after the restart is %q", got)
	}
	if n := reconnects.Load(); n != 2 {
		t.Fatalf("%d reconnections counted for two connections and one outage", n)
	}
	if n := logs.count("lost the connection to NATS"); n != 2 {
		t.Fatalf("the outage was logged %d times for two connections; logs: %v", n, logs.msgs)
	}
}

func TestBusRefusesWhatTheBrokerCannotCarryAndCloseEnds(t *testing.T) {
	t.Parallel()
	c := connect(t, Options{URL: natstest.URL(t)})
	b := openBus(t, c, natstest.Prefix(t))
	if b.Publish(make([]byte, c.nc.MaxPayload()+1)) {
		t.Fatal("a signal larger than the broker's max_payload was accepted")
	}
	sigbustest.CloseEnds(t, b)
}

func TestConnectRefusesBadURLsAndUnreachableBrokers(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"", "http://127.0.0.1:4222", "nats://a:1,redis://b:2", "127.0.0.1:4222"} {
		if err := CheckURL(u); err == nil || !strings.Contains(err.Error(), "INVALID_PAYLOAD") {
			t.Errorf("CheckURL(%q) = %v, want INVALID_PAYLOAD", u, err)
		}
	}
	if err := CheckURL("nats://127.0.0.1:4222,tls://user:pw@b:4222"); err != nil {
		t.Errorf("a list of URLs refused: %v", err)
	}
	_, err := Connect(Options{URL: "nats://nobody:secret@127.0.0.1:1"})
	if err == nil || !strings.Contains(err.Error(), "UNAVAILABLE") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("want an UNAVAILABLE error without the password, got %v", err)
	}
	for _, p := range []string{"", "a.b", "a b", "*", strings.Repeat("x", 65)} {
		if CheckPrefix(p) == nil {
			t.Errorf("prefix %q accepted", p)
		}
	}
}
