package sqlstore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/sqlstore"
)

// Each benchmark reports durable events per second; every append has
// returned, so every counted event is committed and synced.
func BenchmarkSQLite(b *testing.B) {
	benchStore(b, func(b *testing.B) *sqlstore.Store {
		s, err := sqlstore.OpenSQLite(context.Background(), b.TempDir(), sqlstore.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	})
}

func BenchmarkPostgres(b *testing.B) {
	dsn := postgresURL(b)
	benchStore(b, func(b *testing.B) *sqlstore.Store {
		s, err := sqlstore.OpenPostgres(context.Background(), dsn, sqlstore.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	})
}

func benchStore(b *testing.B, open func(*testing.B) *sqlstore.Store) {
	payload := `{"roomName":"general_chat","userId":"user_123","message":"Hello everyone, this is a chat message of typical length.","messageType":"text"}`
	for _, writers := range []int{1, 16} {
		b.Run(fmt.Sprintf("append/writers=%d", writers), func(b *testing.B) {
			s := open(b)
			benchAppend(b, s, writers, 1, payload)
		})
	}
	b.Run("append/batch=100", func(b *testing.B) {
		s := open(b)
		benchAppend(b, s, 1, 100, payload)
	})
	b.Run("readall", func(b *testing.B) {
		s := open(b)
		const n = 100000
		ctx := context.Background()
		batch := make([]eventstore.EventData, 0, 1000)
		for i := 0; i < n; i++ {
			batch = append(batch, eventstore.EventData{Type: "MessagePosted", Data: []byte(payload)})
			if len(batch) == cap(batch) {
				if _, err := s.Append(ctx, fmt.Sprintf("chat-%d", i%100), eventstore.Any, batch...); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
		b.ResetTimer()
		start := time.Now()
		read := 0
		for b.Loop() {
			from := eventstore.Start
			for {
				evs, err := s.ReadAll(ctx, eventstore.ReadAllOptions{From: from, Limit: 5000})
				if err != nil {
					b.Fatal(err)
				}
				read += len(evs)
				if len(evs) < 5000 {
					break
				}
				last := evs[len(evs)-1].Position
				from = eventstore.Pos(last.Commit + 1)
			}
		}
		b.ReportMetric(float64(read)/time.Since(start).Seconds(), "events/s")
	})
}

func benchAppend(b *testing.B, s *sqlstore.Store, writers, perAppend int, payload string) {
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	per := (b.N + writers - 1) / writers
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			evs := make([]eventstore.EventData, perAppend)
			for i := 0; i < per; i++ {
				for j := range evs {
					evs[j] = eventstore.EventData{Type: "MessagePosted", Data: []byte(payload)}
				}
				if _, err := s.Append(ctx, fmt.Sprintf("chat-%d", (w+i)%50), eventstore.Any, evs...); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(per*writers*perAppend)/time.Since(start).Seconds(), "events/s")
}
