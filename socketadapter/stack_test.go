package socketadapter_test

import (
	"cmp"
	"context"
	"log/slog"
	"testing"

	"github.com/auraos/realtime/cmd/auraos/app"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/internal/syncbuf"
	"github.com/auraos/realtime/socketadapter"
)

// stack is the whole server in process, as `auraos serve` wires it: an
// app.Server on the embedded SQLite stores of a temporary directory,
// listening on a free loopback port.
type stack struct {
	URL   string
	Store eventstore.Store
	Log   *syncbuf.Buffer
}

// startStack runs the server in process with the adapter settings cfg
// until the test ends, as node cfg.NodeID (default test-node).
func startStack(t testing.TB, cfg socketadapter.Config) *stack {
	t.Helper()
	logs := &syncbuf.Buffer{}
	srv := app.New(app.Config{
		Storage: app.Storage{DataDir: t.TempDir(), EventStore: "sqlite"},
		Addr:    "127.0.0.1:0",
		NodeID:  cmp.Or(cfg.NodeID, "test-node"),
		Socket:  cfg,
		Logger:  slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err := srv.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return &stack{URL: "http://" + srv.Addr(), Store: srv.Store(), Log: logs}
}

// events returns the stored events of the given types.
func (s *stack) events(t testing.TB, types ...string) []eventstore.RecordedEvent {
	t.Helper()
	evs, err := s.Store.ReadAll(context.Background(), eventstore.ReadAllOptions{Filter: eventstore.Filter{EventTypes: types}})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}
