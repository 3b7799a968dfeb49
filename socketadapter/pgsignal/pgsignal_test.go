package pgsignal_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/auraos/realtime/internal/sigbus/sigbustest"
	"github.com/auraos/realtime/schema/schematest"
	"github.com/auraos/realtime/socketadapter/pgsignal"
)

func open(t *testing.T, dsn string) *pgsignal.Bus {
	t.Helper()
	b, err := pgsignal.Open(context.Background(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// Buses on one schema hear each other (and themselves); a bus on another
// schema hears nothing of theirs.
func TestBusesShareASchema(t *testing.T) {
	t.Parallel()
	dsn := schematest.PostgresURL(t)
	other := open(t, schematest.PostgresURL(t))
	a, b := open(t, dsn), open(t, dsn)

	if !a.Publish([]byte(`{"hello":"from a"}`)) {
		t.Fatal("publish refused")
	}
	for name, bus := range map[string]*pgsignal.Bus{"a": a, "b": b} {
		if got := sigbustest.Next(t, bus.Signals()); got != `{"hello":"from a"}` {
			t.Fatalf("%s got %s", name, got)
		}
	}
	other.Publish([]byte("other"))
	if got := sigbustest.Next(t, other.Signals()); got != "other" {
		t.Fatalf("the other schema's bus got %s", got)
	}
	select {
	case p := <-b.Signals():
		t.Fatalf("a signal crossed schemas: %s", p)
	case <-time.After(300 * time.Millisecond):
	}
}

func TestPublishRefusesWhatNotifyCannotCarryAndCloseEnds(t *testing.T) {
	t.Parallel()
	b := open(t, schematest.PostgresURL(t))
	if b.Publish([]byte(strings.Repeat("x", 8000))) {
		t.Fatal("an 8000-byte signal was accepted; NOTIFY cannot carry it")
	}
	sigbustest.CloseEnds(t, b)
}

func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	_, err := pgsignal.Open(context.Background(), "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=1", nil)
	if err == nil || !strings.Contains(err.Error(), "UNAVAILABLE") {
		t.Fatalf("want an UNAVAILABLE error, got %v", err)
	}
}
