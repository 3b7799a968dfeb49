package shred_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
)

// benchMessages returns n chat messages of 500 users.
func benchMessages(b *testing.B, n int) []eventstore.EventData {
	b.Helper()
	out := make([]eventstore.EventData, n)
	for i := range out {
		uid := fmt.Sprintf("user-%d", i%500)
		data, err := json.Marshal(domain.MessagePosted{SchemaVersion: 1, ID: eventstore.NewID(), RoomName: "lobby", UserID: uid, UserName: "Name of " + uid,
			Message: "A chat message of a typical length, with a few words in it.", MessageType: domain.MessageText, At: at})
		if err != nil {
			b.Fatal(err)
		}
		out[i] = eventstore.EventData{Type: domain.TypeMessagePosted, Data: data}
	}
	return out
}

// BenchmarkAppend appends batches of 100 messages to the SQLite store, in
// clear and through shred.Store (keys warm), in one run so they compare.
func BenchmarkAppend(b *testing.B) {
	for _, mode := range []string{"clear", "encrypted"} {
		b.Run(mode, func(b *testing.B) {
			f := newFixture(b)
			var s eventstore.Store = f.raw
			if mode == "encrypted" {
				s = f.open(b, nil)
			}
			evs := benchMessages(b, 100)
			if _, err := s.Append(context.Background(), "warm", eventstore.Any, evs...); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := s.Append(context.Background(), "chat-lobby", eventstore.Any, evs...); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(evs))/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkReadAndDecode reads 1,000 messages and decodes them as a
// projection does, in clear and through shred.Store, whose key cache starts
// cold on every read (the worst case: a rebuild after a restart).
func BenchmarkReadAndDecode(b *testing.B) {
	for _, mode := range []string{"clear", "encrypted"} {
		b.Run(mode, func(b *testing.B) {
			f := newFixture(b)
			var w eventstore.Store = f.raw
			if mode == "encrypted" {
				w = f.open(b, nil)
			}
			if _, err := w.Append(context.Background(), "chat-lobby", eventstore.Any, benchMessages(b, 1000)...); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				var r eventstore.Store = f.raw
				if mode == "encrypted" {
					r = f.open(b, nil)
				}
				evs, err := r.ReadAll(context.Background(), eventstore.ReadAllOptions{})
				if err != nil {
					b.Fatal(err)
				}
				for _, e := range evs {
					if _, err := domain.Decode(e.Type, e.Data); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
