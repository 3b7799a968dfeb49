package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/auraos/realtime/cmd/auraos/app"
	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/sqlstore"
	"github.com/auraos/realtime/schema/schematest"
)

// benchLogSize is the number of events of the moved log.
const benchLogSize = 200000

// BenchmarkEventsMove reports the events per second of verify, export and
// import (on SQLite, and on PostgreSQL when configured) on a log of
// benchLogSize chat messages.
func BenchmarkEventsMove(b *testing.B) {
	ctx := context.Background()
	src := b.TempDir()
	s, err := sqlstore.OpenSQLite(ctx, src, sqlstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	versions := map[string]uint64{}
	synthetic := func(yield func(eventstore.RecordedEvent, error) bool) {
		for i := range benchLogSize {
			stream := fmt.Sprintf("chat-%d", i%100)
			e := eventstore.RecordedEvent{ID: eventstore.NewID(), Stream: stream, Version: versions[stream], Type: domain.TypeMessagePosted,
				Time:     start.Add(time.Duration(i) * time.Millisecond),
				Data:     []byte(fmt.Sprintf(`{"roomName":"general_chat","userId":"user_%d","message":"Hello everyone, this is a chat message of typical length.","messageType":"text"}`, i%50)),
				Metadata: []byte(`{"userId":"user_1","command":"send_message","correlationId":"6f1c1f36-2b54-4a8e-9d59-1c8d1a0f0f01"}`)}
			versions[stream]++
			if !yield(e, nil) {
				return
			}
		}
	}
	if _, err := s.Import(ctx, synthetic, nil); err != nil {
		b.Fatal(err)
	}
	s.Close()
	storage := app.Storage{DataDir: src, EventStore: "sqlite"}
	file := filepath.Join(b.TempDir(), "log.jsonl")
	if err := runEventsExport(ctx, io.Discard, io.Discard, storage, file); err != nil {
		b.Fatal(err)
	}
	report := func(b *testing.B, took time.Duration) {
		b.ReportMetric(float64(benchLogSize)/took.Seconds(), "events/s")
	}
	// verify and export read the SQLite log, and a PostgreSQL copy of it
	// when configured.
	sources := map[string]app.Storage{"sqlite": storage}
	if os.Getenv(schematest.PostgresEnv) != "" {
		pg := app.Storage{DataDir: b.TempDir(), EventStore: schematest.PostgresURL(b)}
		if err := runEventsImport(ctx, io.Discard, io.Discard, nil, pg, file); err != nil {
			b.Fatal(err)
		}
		sources["postgres"] = pg
	}
	for name, from := range sources {
		b.Run("verify/"+name, func(b *testing.B) {
			for b.Loop() {
				t0 := time.Now()
				if err := runEventsVerify(ctx, io.Discard, eventsChainOptions{storage: from, format: "table"}); err != nil {
					b.Fatal(err)
				}
				report(b, time.Since(t0))
			}
		})
		b.Run("export/"+name, func(b *testing.B) {
			for b.Loop() {
				t0 := time.Now()
				if err := runEventsExport(ctx, io.Discard, io.Discard, from, file+".again"); err != nil {
					b.Fatal(err)
				}
				report(b, time.Since(t0))
			}
		})
	}
	targets := map[string]func(b *testing.B) app.Storage{
		"sqlite": func(b *testing.B) app.Storage { return app.Storage{DataDir: b.TempDir(), EventStore: "sqlite"} },
	}
	if os.Getenv(schematest.PostgresEnv) != "" {
		targets["postgres"] = func(b *testing.B) app.Storage {
			return app.Storage{DataDir: b.TempDir(), EventStore: schematest.PostgresURL(b)}
		}
	}
	for name, target := range targets {
		b.Run("import/"+name, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				to := target(b)
				b.StartTimer()
				t0 := time.Now()
				if err := runEventsImport(ctx, io.Discard, io.Discard, nil, to, file); err != nil {
					b.Fatal(err)
				}
				report(b, time.Since(t0))
			}
		})
	}
}
