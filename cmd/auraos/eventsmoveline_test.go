package main

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/chain"
)

// An event line reads back to the same fields through the quick parser and
// through encoding/json, whatever its strings hold; a line in another
// shape (keys reordered, spaces) takes the encoding/json path to the same
// result.
func TestEventLineRoundTrip(t *testing.T) {
	t.Parallel()
	for _, stream := range []string{"chat-general", `chat-"quoted"\back`, "chat-héllo-日本", "tab\there"} {
		e := chain.Event{Position: 42, ID: "7d0b6c3e-9f51-4d8e-8f3a-3f2f1b9b2c11", Stream: stream, Version: 7, Type: "MessagePosted",
			Data: []byte("{ \"a\" :\n 1 }"), Metadata: []byte(`{}`), Time: 1764237311123456}
		h := chain.Next(chain.Hash{}, &e)
		line := appendEventLine(nil, &e, h)
		var viaJSON, quick exportLine
		if err := json.Unmarshal(line, &viaJSON); err != nil {
			t.Fatalf("%q: the line is not JSON: %v\n%s", stream, err, line)
		}
		if err := parseEventLine(line, &quick); err != nil {
			t.Fatalf("%q: %v", stream, err)
		}
		if !reflect.DeepEqual(quick, viaJSON) {
			t.Fatalf("%q: quick %+v, encoding/json %+v", stream, quick, viaJSON)
		}
		got, err := quick.chainEvent(1)
		if err != nil || !reflect.DeepEqual(got, e) || quick.Hash != h.String() {
			t.Fatalf("%q: read back %+v (%v), want %+v", stream, got, err, e)
		}
		// Another tool's encoding of the same line.
		var generic map[string]any
		_ = json.Unmarshal(line, &generic)
		other, _ := json.MarshalIndent(generic, "", " ")
		var fallback exportLine
		if err := parseEventLine(append(other, '\n'), &fallback); err != nil || !reflect.DeepEqual(fallback, viaJSON) {
			t.Fatalf("%q: re-encoded line read as %+v (%v)", stream, fallback, err)
		}
	}
}

// ahead delivers everything in order, and a consumer that stops early stops
// its goroutine (ahead's sequence returns only after it has ended).
func TestAheadStopsWithTheConsumer(t *testing.T) {
	t.Parallel()
	const n = 10 * aheadBatch
	produced := 0
	seq := func(yield func(eventstore.RecordedEvent, error) bool) {
		for i := range n {
			produced++
			if !yield(eventstore.RecordedEvent{Version: uint64(i)}, nil) {
				return
			}
		}
	}
	got := 0
	for e, err := range ahead(seq) {
		if err != nil || e.Version != uint64(got) {
			t.Fatalf("event %d: %+v, %v", got, e, err)
		}
		got++
	}
	if got != n {
		t.Fatalf("%d events, want %d", got, n)
	}
	produced = 0
	for range ahead(seq) {
		break
	}
	if produced == n {
		t.Fatalf("the producer ran to the end after the consumer stopped")
	}
}
