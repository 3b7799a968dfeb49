package socketadapter_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/auraos/realtime/internal/syncbuf"

	"github.com/auraos/realtime/commands"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/sqlstore"
	"github.com/auraos/realtime/projections"
	"github.com/auraos/realtime/schema/schematest"
	"github.com/auraos/realtime/socketadapter"
)

// stack is the whole server in process: a SQLite event store, the read
// models and their runners, the command handlers and the adapter, served by
// an httptest server.
type stack struct {
	URL   string
	Store *sqlstore.Store
	Log   *syncbuf.Buffer
}

// startStack runs the server in process with cfg (NodeID, Logger and the
// like are filled in) until the test ends.
func startStack(t testing.TB, cfg socketadapter.Config) *stack {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	store, err := sqlstore.OpenSQLite(ctx, t.TempDir(), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rdb := schematest.OpenReadDB(t, "sqlite")
	logs := &syncbuf.Buffer{}
	var wg sync.WaitGroup
	runners := map[string]*projections.Runner{}
	for _, p := range projections.All() {
		r := projections.NewRunner(rdb.Writer, store, p, projections.RunnerOptions{})
		runners[p.Name()] = r
		wg.Add(1)
		go func() { defer wg.Done(); _ = r.Run(ctx) }()
	}
	deps := commands.Deps{Store: store, Now: time.Now, NewID: eventstore.NewID}
	if cfg.NodeID == "" {
		cfg.NodeID = "test-node"
	}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	adapter := socketadapter.New(cfg, socketadapter.HandlersFor(deps), socketadapter.Queries{
		OnlineUsers:  projections.OnlineUsersQuery{DB: rdb.Reader},
		UserSessions: projections.UserSessionsQuery{DB: rdb.Reader},
		ChatHistory:  projections.ChatHistoryQuery{DB: rdb.Reader},
		AppTotals:    projections.AppTotalsQuery{DB: rdb.Reader},
	}, socketadapter.ReadModels{
		OnlineUsers: runners["online-users"], ChatHistory: runners["chat-history"], AppStatus: runners["app-status"],
	}, store)
	if err := adapter.Run(ctx); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", adapter.Handler())
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		if err := adapter.Shutdown(sctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		hs.Close()
		cancel()
		wg.Wait()
		store.Close()
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return &stack{URL: hs.URL, Store: store, Log: logs}
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
