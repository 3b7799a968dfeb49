package projections_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/shred"
	"github.com/auraos/realtime/eventstore/sqlstore"
	"github.com/auraos/realtime/projections"
	"github.com/auraos/realtime/schema/schematest"
)

// benchEvents is the size of the rebuild benchmark's log (default 1,000,000
// messages over 1,000 rooms; AURAOS_BENCH_EVENTS overrides it).
func benchEvents() int {
	if n, err := strconv.Atoi(os.Getenv("AURAOS_BENCH_EVENTS")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}

// fillChatLog appends n MessagePosted events over 1,000 rooms, in batches.
func fillChatLog(b *testing.B, s eventstore.Appender, n int) {
	b.Helper()
	ctx := context.Background()
	at := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	const batch = 1000
	evs := make([]eventstore.EventData, 0, batch)
	for i := 0; i < n; i++ {
		room := fmt.Sprintf("room-%d", i%1000)
		id := eventstore.NewID()
		data, _ := json.Marshal(domain.MessagePosted{
			SchemaVersion: 1, ID: id, RoomName: room, UserID: fmt.Sprintf("user-%d", i%5000), UserName: "A user",
			Message: "A chat message of a typical length, with a few words in it.", MessageType: domain.MessageText,
			At: at.Add(time.Duration(i) * time.Millisecond),
		})
		evs = append(evs, eventstore.EventData{ID: id, Type: domain.TypeMessagePosted, Data: data})
		if len(evs) == batch || i == n-1 {
			// One stream per batch keeps the fill fast; the rebuild reads
			// the log in global order regardless of streams.
			if _, err := s.Append(ctx, domain.ChatStream(room), eventstore.Any, evs...); err != nil {
				b.Fatal(err)
			}
			evs = evs[:0]
		}
	}
}

// BenchmarkRebuildChatHistory rebuilds chat history from a log of chat
// messages, swap included, and reports events per second.
func BenchmarkRebuildChatHistory(b *testing.B) {
	n := benchEvents()
	s, err := sqlstore.OpenSQLite(context.Background(), b.TempDir(), sqlstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	fillChatLog(b, s, n)
	benchRebuild(b, s, n)
}

// BenchmarkRebuildChatHistoryShred is BenchmarkRebuildChatHistory with and
// without personal fields encrypted (5,000 users, so 5,000 keys), in one
// run so the two compare: clear is the plain store; encrypted reads a log
// written through shred.Store, through a fresh shred.Store (its key cache
// starts cold, as after a restart).
func BenchmarkRebuildChatHistoryShred(b *testing.B) {
	n := benchEvents()
	for _, mode := range []string{"clear", "encrypted"} {
		b.Run(mode, func(b *testing.B) {
			raw, err := sqlstore.OpenSQLite(context.Background(), b.TempDir(), sqlstore.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer raw.Close()
			if mode == "clear" {
				fillChatLog(b, raw, n)
				benchRebuild(b, raw, n)
				return
			}
			keyDB := schematest.OpenReadDB(b, "sqlite")
			writer := openShredDB(b, raw, keyDB)
			fillChatLog(b, writer, n)
			benchRebuild(b, openShredDB(b, raw, keyDB), n)
		})
	}
}

// openShredDB wraps store with the key table in rdb.
func openShredDB(b *testing.B, store eventstore.Store, rdb schematest.ReadDB) *shred.Store {
	b.Helper()
	keys, err := shred.OpenSQLKeys(context.Background(), rdb.Writer, rdb.Reader, nil)
	if err != nil {
		b.Fatal(err)
	}
	s, err := shred.New(context.Background(), store, keys)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// benchRebuild rebuilds chat history from s, whose log holds n messages,
// into a fresh read database of each kind, and reports events per second.
func benchRebuild(b *testing.B, s projections.EventLog, n int) {
	b.Helper()
	for _, kind := range schematest.Kinds() {
		b.Run(kind, func(b *testing.B) {
			var total, cpu time.Duration
			runs := 0
			for b.Loop() {
				b.StopTimer()
				rdb := schematest.OpenReadDB(b, kind)
				b.StartTimer()
				before := processCPU(b)
				res, err := projections.Rebuild(context.Background(), rdb.Writer, s, projections.ChatHistory{}, projections.RebuildOptions{})
				cpu += processCPU(b) - before
				if err != nil {
					b.Fatal(err)
				}
				if res.Events != n {
					b.Fatalf("rebuilt %d events, want %d", res.Events, n)
				}
				total += res.Took
				runs++
			}
			b.ReportMetric(float64(n*runs)/total.Seconds(), "events/s")
			// CPU time per event depends far less than wall time on what
			// else the machine runs: compare clear and encrypted by it.
			b.ReportMetric(float64(cpu.Microseconds())/float64(n*runs), "cpu-µs/event")
		})
	}
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
