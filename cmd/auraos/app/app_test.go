package app_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/auraos/realtime/cmd/auraos/app"
)

// A clean stop reports nothing, however the listener's close races the HTTP
// server's shutdown (it used to say, now and then, that the HTTP server did
// not stop in time: use of closed network connection).
func TestCloseAfterServingIsClean(t *testing.T) {
	t.Parallel()
	for i := range 15 {
		srv := app.New(app.Config{
			Storage: app.Storage{DataDir: t.TempDir(), EventStore: "sqlite"},
			Addr:    "127.0.0.1:0",
			NodeID:  "test-node",
			Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err := srv.Open(context.Background()); err != nil {
			t.Fatal(err)
		}
		res, err := http.Get("http://" + srv.Addr() + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if err := srv.Close(); err != nil {
			t.Fatalf("stop %d: %v", i, err)
		}
	}
}
