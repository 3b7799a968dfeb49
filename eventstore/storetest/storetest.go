// Package storetest is the contract suite of the eventstore port. Every
// implementation runs it from its own tests:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) eventstore.Store { return openEmptyStore(t) })
//	}
//
// The factory must return a new, empty store for each call and arrange its
// cleanup with t.Cleanup; the suite may Close a store itself, so a second
// Close must be harmless.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
)

// Factory returns a new, empty store whose cleanup is registered on t.
type Factory func(t *testing.T) eventstore.Store

// Run runs every contract test against stores made by newStore. Subtests run
// in parallel with each other, each on its own store.
func Run(t *testing.T, newStore Factory) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(*testing.T, eventstore.Store)
	}{
		{"AppendAndReadStream", testAppendAndReadStream},
		{"ExpectedVersions", testExpectedVersions},
		{"Idempotency", testIdempotency},
		{"ConcurrentIdempotentRetries", testConcurrentIdempotentRetries},
		{"InvalidAppendsStoreNothing", testInvalidAppends},
		{"ReadAll", testReadAll},
		{"Filters", testFilters},
		{"SubscribeCatchUpThenLive", testSubscribeCatchUpThenLive},
		{"SubscribeEmptyStoreCatchesUp", testSubscribeEmptyStore},
		{"SubscriptionResumesFromCheckpoint", testSubscriptionResume},
		{"FilteredSubscriptionAdvancesCheckpoint", testFilteredSubscriptionThrough},
		{"OptimisticConcurrencyRace", testOptimisticRace},
		{"OrderingUnderConcurrentWriters", testOrderingUnderConcurrentWriters},
		{"LargePayloads", testLargePayloads},
		{"Unicode", testUnicode},
		{"RecordedTimeAndMetadata", testRecordedTimeAndMetadata},
		{"ClosedStore", testClosedStore},
		{"CanceledContext", testCanceledContext},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

// ctx returns a context that ends with the test or after a generous deadline,
// so a broken store fails the test instead of hanging it.
func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func ev(typ string, data string) eventstore.EventData {
	return eventstore.EventData{ID: eventstore.NewID(), Type: typ, Data: json.RawMessage(data)}
}

func events(n int, typ string) []eventstore.EventData {
	out := make([]eventstore.EventData, n)
	for i := range out {
		out[i] = ev(typ, fmt.Sprintf(`{"n":%d}`, i))
	}
	return out
}

func mustAppend(t *testing.T, s eventstore.Store, stream string, exp eventstore.ExpectedVersion, evs ...eventstore.EventData) eventstore.AppendResult {
	t.Helper()
	res, err := s.Append(ctx(t), stream, exp, evs...)
	if err != nil {
		t.Fatalf("append to %s: %v", stream, err)
	}
	if len(res.Positions) != len(evs) {
		t.Fatalf("append to %s returned %d positions for %d events", stream, len(res.Positions), len(evs))
	}
	return res
}

func readStream(t *testing.T, s eventstore.Store, stream string, opts eventstore.ReadStreamOptions) []eventstore.RecordedEvent {
	t.Helper()
	got, err := s.ReadStream(ctx(t), stream, opts)
	if err != nil {
		t.Fatalf("read stream %s: %v", stream, err)
	}
	return got
}

func readAll(t *testing.T, s eventstore.Store, opts eventstore.ReadAllOptions) []eventstore.RecordedEvent {
	t.Helper()
	got, err := s.ReadAll(ctx(t), opts)
	if err != nil {
		t.Fatalf("read all: %v", err)
	}
	return got
}

func versions(evs []eventstore.RecordedEvent) []uint64 {
	out := make([]uint64, len(evs))
	for i, e := range evs {
		out[i] = e.Version
	}
	return out
}

func assertStrictlyIncreasing(t *testing.T, evs []eventstore.RecordedEvent) {
	t.Helper()
	for i := 1; i < len(evs); i++ {
		if !evs[i-1].Position.Less(evs[i].Position) {
			t.Fatalf("positions not strictly increasing at %d: %v then %v", i, evs[i-1].Position, evs[i].Position)
		}
	}
}

func testAppendAndReadStream(t *testing.T, s eventstore.Store) {
	in := events(5, "Counted")
	res := mustAppend(t, s, "counter-1", eventstore.NoStream, in[:3]...)
	if res.StreamVersion != 2 {
		t.Fatalf("stream version after 3 events = %d, want 2", res.StreamVersion)
	}
	res2 := mustAppend(t, s, "counter-1", eventstore.Exact(2), in[3:]...)
	if res2.StreamVersion != 4 {
		t.Fatalf("stream version after 5 events = %d, want 4", res2.StreamVersion)
	}
	if !res.LastPosition().Less(res2.Positions[0]) {
		t.Fatalf("second append's position %v not after first's %v", res2.Positions[0], res.LastPosition())
	}

	all := readStream(t, s, "counter-1", eventstore.ReadStreamOptions{})
	if len(all) != 5 {
		t.Fatalf("read %d events, want 5", len(all))
	}
	for i, e := range all {
		if e.ID != in[i].ID || e.Version != uint64(i) || e.Stream != "counter-1" || e.Type != "Counted" {
			t.Fatalf("event %d = %+v, want id %s version %d", i, e, in[i].ID, i)
		}
		if !bytes.Equal(e.Data, in[i].Data) {
			t.Fatalf("event %d data = %s, want %s", i, e.Data, in[i].Data)
		}
	}
	assertStrictlyIncreasing(t, all)
	wantPositions := append(append([]eventstore.Position{}, res.Positions...), res2.Positions...)
	for i, e := range all {
		if e.Position != wantPositions[i] {
			t.Fatalf("event %d position %v, append returned %v", i, e.Position, wantPositions[i])
		}
	}

	cases := []struct {
		name string
		opts eventstore.ReadStreamOptions
		want []uint64
	}{
		{"forwards from 2", eventstore.ReadStreamOptions{From: 2}, []uint64{2, 3, 4}},
		{"forwards limit", eventstore.ReadStreamOptions{From: 1, Limit: 2}, []uint64{1, 2}},
		{"forwards past end", eventstore.ReadStreamOptions{From: 9}, []uint64{}},
		{"backwards from end", eventstore.ReadStreamOptions{Direction: eventstore.Backwards, From: eventstore.End}, []uint64{4, 3, 2, 1, 0}},
		{"backwards from 2", eventstore.ReadStreamOptions{Direction: eventstore.Backwards, From: 2}, []uint64{2, 1, 0}},
		{"backwards limit", eventstore.ReadStreamOptions{Direction: eventstore.Backwards, From: eventstore.End, Limit: 2}, []uint64{4, 3}},
		{"backwards beyond end", eventstore.ReadStreamOptions{Direction: eventstore.Backwards, From: 100, Limit: 1}, []uint64{4}},
	}
	for _, c := range cases {
		got := versions(readStream(t, s, "counter-1", c.opts))
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s: versions %v, want %v", c.name, got, c.want)
		}
	}
	if got := readStream(t, s, "no-such-stream", eventstore.ReadStreamOptions{}); len(got) != 0 {
		t.Fatalf("missing stream read %d events", len(got))
	}
	if got := readStream(t, s, "no-such-stream", eventstore.ReadStreamOptions{Direction: eventstore.Backwards, From: eventstore.End}); len(got) != 0 {
		t.Fatalf("missing stream read backwards %d events", len(got))
	}
	head, err := s.Head(ctx(t))
	if err != nil || head != res2.LastPosition() {
		t.Fatalf("head = %v, %v; want %v", head, err, res2.LastPosition())
	}
}

func testExpectedVersions(t *testing.T, s eventstore.Store) {
	// Successful cases append one event each, so ev-exists moves from version
	// 1 to 2 ("any on existing") and to 3 ("stream exists on existing").
	mustAppend(t, s, "ev-exists", eventstore.NoStream, events(2, "E")...)
	cases := []struct {
		name     string
		stream   string
		expected eventstore.ExpectedVersion
		ok       bool
		actual   int64
	}{
		{"any on missing", "ev-a", eventstore.Any, true, 0},
		{"any on existing", "ev-exists", eventstore.Any, true, 0},
		{"no stream on missing", "ev-b", eventstore.NoStream, true, 0},
		{"no stream on existing", "ev-exists", eventstore.NoStream, false, 2},
		{"stream exists on missing", "ev-c", eventstore.StreamExists, false, -1},
		{"stream exists on existing", "ev-exists", eventstore.StreamExists, true, 0},
		{"exact 0 on missing", "ev-d", eventstore.Exact(0), false, -1},
		{"exact stale", "ev-exists", eventstore.Exact(0), false, 3},
		{"exact ahead", "ev-exists", eventstore.Exact(7), false, 3},
	}
	for _, c := range cases {
		before := readStream(t, s, c.stream, eventstore.ReadStreamOptions{})
		_, err := s.Append(ctx(t), c.stream, c.expected, ev("E", `{}`))
		after := readStream(t, s, c.stream, eventstore.ReadStreamOptions{})
		if c.ok {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			if len(after) != len(before)+1 {
				t.Errorf("%s: stream grew from %d to %d", c.name, len(before), len(after))
			}
			continue
		}
		var wev *eventstore.WrongExpectedVersionError
		if !errors.Is(err, eventstore.ErrWrongExpectedVersion) || !errors.As(err, &wev) {
			t.Errorf("%s: err = %v, want wrong expected version", c.name, err)
			continue
		}
		if wev.Actual != c.actual || wev.Stream != c.stream || wev.Expected != c.expected {
			t.Errorf("%s: error %+v, want stream %s expected %s actual %d", c.name, wev, c.stream, c.expected, c.actual)
		}
		if domain.ErrorCode(err) != domain.ECONFLICT {
			t.Errorf("%s: code %s, want %s", c.name, domain.ErrorCode(err), domain.ECONFLICT)
		}
		if len(after) != len(before) {
			t.Errorf("%s: failed append changed the stream from %d to %d events", c.name, len(before), len(after))
		}
	}
	// Exact on the current version succeeds.
	if _, err := s.Append(ctx(t), "ev-exists", eventstore.Exact(3), ev("E", `{}`)); err != nil {
		t.Fatalf("exact on current version: %v", err)
	}
}

func testIdempotency(t *testing.T, s eventstore.Store) {
	in := events(3, "Posted")
	first := mustAppend(t, s, "chat-idem", eventstore.Any, in...)
	mustAppend(t, s, "chat-idem", eventstore.Any, ev("Posted", `{"later":true}`))

	// Same ids again, with Any and with the expectation of the original append.
	for _, exp := range []eventstore.ExpectedVersion{eventstore.Any, eventstore.NoStream} {
		again, err := s.Append(ctx(t), "chat-idem", exp, in...)
		if err != nil {
			t.Fatalf("idempotent retry (%s): %v", exp, err)
		}
		if again.StreamVersion != first.StreamVersion || fmt.Sprint(again.Positions) != fmt.Sprint(first.Positions) {
			t.Fatalf("retry (%s) returned %+v, want original %+v", exp, again, first)
		}
	}
	if got := readStream(t, s, "chat-idem", eventstore.ReadStreamOptions{}); len(got) != 4 {
		t.Fatalf("stream holds %d events after retries, want 4", len(got))
	}

	// A retry of only the first event of a multi-event append is a repeat too.
	one, err := s.Append(ctx(t), "chat-idem", eventstore.Any, in[0])
	if err != nil || one.Positions[0] != first.Positions[0] || one.StreamVersion != 0 {
		t.Fatalf("single-event retry = %+v, %v; want position %v version 0", one, err, first.Positions[0])
	}

	// The same ids in another stream, or mixed with new ids, are conflicts.
	_, err = s.Append(ctx(t), "chat-other", eventstore.Any, in[0])
	if !errors.Is(err, eventstore.ErrDuplicateEventID) {
		t.Fatalf("id reused in another stream: err = %v, want ErrDuplicateEventID", err)
	}
	_, err = s.Append(ctx(t), "chat-idem", eventstore.Any, in[0], ev("Posted", `{}`))
	if !errors.Is(err, eventstore.ErrDuplicateEventID) {
		t.Fatalf("partly stored append: err = %v, want ErrDuplicateEventID", err)
	}
	if got := readAll(t, s, eventstore.ReadAllOptions{}); len(got) != 4 {
		t.Fatalf("log holds %d events after conflicts, want 4", len(got))
	}
}

func testConcurrentIdempotentRetries(t *testing.T, s eventstore.Store) {
	in := events(2, "Posted")
	const n = 16
	results := make([]eventstore.AppendResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = s.Append(ctx(t), "chat-race", eventstore.Any, in...)
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("concurrent retry %d: %v", i, errs[i])
		}
		if fmt.Sprint(results[i]) != fmt.Sprint(results[0]) {
			t.Fatalf("retry %d returned %+v, retry 0 returned %+v", i, results[i], results[0])
		}
	}
	if got := readAll(t, s, eventstore.ReadAllOptions{}); len(got) != 2 {
		t.Fatalf("log holds %d events after %d concurrent identical appends, want 2", len(got), n)
	}
}

func testInvalidAppends(t *testing.T, s eventstore.Store) {
	good := ev("E", `{}`)
	dup := ev("E", `{}`)
	cases := []struct {
		name   string
		stream string
		events []eventstore.EventData
	}{
		{"empty stream name", "", []eventstore.EventData{good}},
		{"control character in stream", "a\nb", []eventstore.EventData{good}},
		{"overlong stream", strings.Repeat("s", eventstore.MaxStreamLength+1), []eventstore.EventData{good}},
		{"system stream", "$all", []eventstore.EventData{good}},
		{"no events", "x", nil},
		{"empty type", "x", []eventstore.EventData{{ID: eventstore.NewID(), Data: json.RawMessage(`{}`)}}},
		{"invalid data", "x", []eventstore.EventData{{ID: eventstore.NewID(), Type: "E", Data: json.RawMessage(`{"a":`)}}},
		{"empty data", "x", []eventstore.EventData{{ID: eventstore.NewID(), Type: "E"}}},
		{"invalid metadata", "x", []eventstore.EventData{{ID: eventstore.NewID(), Type: "E", Data: json.RawMessage(`1`), Metadata: json.RawMessage(`nope`)}}},
		{"id not a uuid", "x", []eventstore.EventData{{ID: "msg-1", Type: "E", Data: json.RawMessage(`{}`)}}},
		{"upper-case uuid", "x", []eventstore.EventData{{ID: strings.ToUpper(eventstore.NewID()), Type: "E", Data: json.RawMessage(`{}`)}}},
		{"id twice in one append", "x", []eventstore.EventData{dup, dup}},
		{"valid then invalid", "x", []eventstore.EventData{ev("E", `{}`), {ID: eventstore.NewID(), Type: "E", Data: json.RawMessage(`[`)}}},
	}
	for _, c := range cases {
		_, err := s.Append(ctx(t), c.stream, eventstore.Any, c.events...)
		if domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("%s: err = %v, want code %s", c.name, err, domain.EINVALID)
		}
	}
	if got := readAll(t, s, eventstore.ReadAllOptions{}); len(got) != 0 {
		t.Fatalf("invalid appends stored %d events", len(got))
	}
	// An empty id is filled in by the store with a UUID.
	res := mustAppend(t, s, "x", eventstore.Any, eventstore.EventData{Type: "E", Data: json.RawMessage(`{}`)})
	got := readAll(t, s, eventstore.ReadAllOptions{})
	if len(got) != 1 || !eventstore.IsUUID(got[0].ID) || got[0].Position != res.Positions[0] {
		t.Fatalf("generated id event = %+v", got)
	}
}

func testReadAll(t *testing.T, s eventstore.Store) {
	if got := readAll(t, s, eventstore.ReadAllOptions{}); len(got) != 0 {
		t.Fatalf("empty store read %d events", len(got))
	}
	if head, err := s.Head(ctx(t)); err != nil || !head.IsZero() {
		t.Fatalf("empty store head = %v, %v", head, err)
	}
	var want []eventstore.Position
	for i := range 10 {
		res := mustAppend(t, s, fmt.Sprintf("s-%d", i%3), eventstore.Any, events(2, "E")...)
		want = append(want, res.Positions...)
	}
	all := readAll(t, s, eventstore.ReadAllOptions{})
	if len(all) != 20 {
		t.Fatalf("read %d events, want 20", len(all))
	}
	for i, e := range all {
		if e.Position != want[i] {
			t.Fatalf("event %d at %v, want %v", i, e.Position, want[i])
		}
	}
	from := readAll(t, s, eventstore.ReadAllOptions{From: want[5], Limit: 4})
	if len(from) != 4 || from[0].Position != want[5] || from[3].Position != want[8] {
		t.Fatalf("from %v limit 4 read %d events starting %v", want[5], len(from), from)
	}
	past := readAll(t, s, eventstore.ReadAllOptions{From: eventstore.Position{Commit: want[19].Commit + 1, Prepare: want[19].Prepare + 1}})
	if len(past) != 0 {
		t.Fatalf("read past head returned %d events", len(past))
	}
}

func testFilters(t *testing.T, s eventstore.Store) {
	mustAppend(t, s, "chat-a", eventstore.Any, ev("MessagePosted", `{}`), ev("ChatMemberJoined", `{}`))
	mustAppend(t, s, "presence-u1", eventstore.Any, ev("SessionStarted", `{}`))
	mustAppend(t, s, "chat-b", eventstore.Any, ev("MessagePosted", `{}`))
	mustAppend(t, s, "chatter-x", eventstore.Any, ev("MessagePosted", `{}`))
	mustAppend(t, s, "app-1", eventstore.Any, ev("AppStatusChanged", `{}`))
	cases := []struct {
		name   string
		filter eventstore.Filter
		want   int
	}{
		{"none", eventstore.Filter{}, 6},
		{"prefix chat-", eventstore.Filter{StreamPrefixes: []string{"chat-"}}, 3},
		{"prefix chat", eventstore.Filter{StreamPrefixes: []string{"chat"}}, 4},
		{"two prefixes", eventstore.Filter{StreamPrefixes: []string{"chat-", "app-"}}, 4},
		{"type", eventstore.Filter{EventTypes: []string{"MessagePosted"}}, 3},
		{"two types", eventstore.Filter{EventTypes: []string{"SessionStarted", "AppStatusChanged"}}, 2},
		{"prefix and type", eventstore.Filter{StreamPrefixes: []string{"chat-"}, EventTypes: []string{"MessagePosted"}}, 2},
		{"nothing matches", eventstore.Filter{EventTypes: []string{"Nope"}}, 0},
	}
	for _, c := range cases {
		got := readAll(t, s, eventstore.ReadAllOptions{Filter: c.filter})
		if len(got) != c.want {
			t.Errorf("%s: read %d events, want %d", c.name, len(got), c.want)
		}
		for _, e := range got {
			if !c.filter.Match(e.Stream, e.Type) {
				t.Errorf("%s: %s/%s does not match the filter", c.name, e.Stream, e.Type)
			}
		}
		assertStrictlyIncreasing(t, got)
		sub := subscribe(t, s, eventstore.SubscribeOptions{Filter: c.filter})
		live := collectUntilCaughtUp(t, sub)
		if len(live) != c.want {
			t.Errorf("%s: subscription delivered %d events, want %d", c.name, len(live), c.want)
		}
	}
	limited := readAll(t, s, eventstore.ReadAllOptions{Filter: eventstore.Filter{EventTypes: []string{"MessagePosted"}}, Limit: 2})
	if len(limited) != 2 || limited[1].Stream != "chat-b" {
		t.Fatalf("filtered read with limit 2 = %+v", limited)
	}
}

func subscribe(t *testing.T, s eventstore.Store, opts eventstore.SubscribeOptions) eventstore.Subscription {
	t.Helper()
	sub, err := s.Subscribe(ctx(t), opts)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	t.Cleanup(func() { sub.Close() })
	return sub
}

// collectUntilCaughtUp reads batches until one is marked CaughtUp.
func collectUntilCaughtUp(t *testing.T, sub eventstore.Subscription) []eventstore.RecordedEvent {
	t.Helper()
	var out []eventstore.RecordedEvent
	for {
		b, err := sub.Next(ctx(t))
		if err != nil {
			t.Fatalf("subscription next: %v", err)
		}
		out = append(out, b.Events...)
		if b.CaughtUp {
			return out
		}
	}
}

// collect reads batches until n events have arrived.
func collect(t *testing.T, sub eventstore.Subscription, n int) ([]eventstore.RecordedEvent, eventstore.Position) {
	t.Helper()
	var out []eventstore.RecordedEvent
	var through eventstore.Position
	for len(out) < n {
		b, err := sub.Next(ctx(t))
		if err != nil {
			t.Fatalf("subscription next after %d of %d events: %v", len(out), n, err)
		}
		if len(b.Events) > 0 && b.Through.Less(b.Events[len(b.Events)-1].Position) {
			t.Fatalf("batch through %v lies before its last event %v", b.Through, b.Events[len(b.Events)-1].Position)
		}
		out = append(out, b.Events...)
		through = b.Through
	}
	if len(out) != n {
		t.Fatalf("subscription delivered %d events, want %d", len(out), n)
	}
	return out, through
}

func testSubscribeCatchUpThenLive(t *testing.T, s eventstore.Store) {
	stored := mustAppend(t, s, "sub-1", eventstore.Any, events(5, "E")...)
	sub := subscribe(t, s, eventstore.SubscribeOptions{})
	got := collectUntilCaughtUp(t, sub)
	if len(got) != 5 || got[4].Position != stored.LastPosition() {
		t.Fatalf("catch-up delivered %d events ending %v", len(got), got)
	}

	// A live event wakes the waiting subscriber.
	done := make(chan []eventstore.RecordedEvent, 1)
	go func() {
		b, err := sub.Next(ctx(t))
		if err != nil {
			t.Errorf("live next: %v", err)
		}
		done <- b.Events
	}()
	live := mustAppend(t, s, "sub-2", eventstore.Any, ev("Live", `{"x":1}`))
	select {
	case evs := <-done:
		if len(evs) != 1 || evs[0].Position != live.Positions[0] || evs[0].Type != "Live" {
			t.Fatalf("live batch = %+v, want the Live event at %v", evs, live.Positions[0])
		}
	case <-time.After(30 * time.Second):
		t.Fatal("live subscriber was not woken by a commit")
	}
}

func testSubscribeEmptyStore(t *testing.T, s eventstore.Store) {
	sub := subscribe(t, s, eventstore.SubscribeOptions{})
	b, err := sub.Next(ctx(t))
	if err != nil || !b.CaughtUp || len(b.Events) != 0 {
		t.Fatalf("first batch on an empty store = %+v, %v; want an empty caught-up batch", b, err)
	}
	// Nothing more until something is appended: Next waits.
	short, cancel := context.WithTimeout(ctx(t), 100*time.Millisecond)
	defer cancel()
	if b, err := sub.Next(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("next on an idle store = %+v, %v; want the context's deadline", b, err)
	}
	res := mustAppend(t, s, "x", eventstore.Any, ev("E", `{}`))
	got, _ := collect(t, sub, 1)
	if got[0].Position != res.Positions[0] {
		t.Fatalf("got %v, want %v", got[0].Position, res.Positions[0])
	}
}

func testSubscriptionResume(t *testing.T, s eventstore.Store) {
	var all []eventstore.Position
	for i := range 10 {
		res := mustAppend(t, s, fmt.Sprintf("r-%d", i), eventstore.Any, ev("E", fmt.Sprintf(`{"i":%d}`, i)))
		all = append(all, res.Positions...)
	}
	sub := subscribe(t, s, eventstore.SubscribeOptions{BatchSize: 3})
	first, through := collect(t, sub, 3)
	if first[2].Position != all[2] {
		t.Fatalf("first three end at %v, want %v", first[2].Position, all[2])
	}
	sub.Close()

	// Resume from the checkpoint: the rest, each exactly once.
	resumed := subscribe(t, s, eventstore.SubscribeOptions{After: through, BatchSize: 3})
	rest, _ := collect(t, resumed, 7)
	for i, e := range rest {
		if e.Position != all[i+3] {
			t.Fatalf("resumed event %d at %v, want %v", i, e.Position, all[i+3])
		}
	}
	// Appends after the resume point arrive live.
	res := mustAppend(t, s, "r-live", eventstore.Any, ev("E", `{}`))
	more, _ := collect(t, resumed, 1)
	if more[0].Position != res.Positions[0] {
		t.Fatalf("live after resume at %v, want %v", more[0].Position, res.Positions[0])
	}
	// Close is idempotent: the second call must succeed too.
	err1, err2 := sub.Close(), sub.Close()
	if err1 != nil || err2 != nil {
		t.Fatal("closing a subscription twice failed")
	}
}

func testFilteredSubscriptionThrough(t *testing.T, s eventstore.Store) {
	mustAppend(t, s, "keep-1", eventstore.Any, ev("E", `{}`))
	last := mustAppend(t, s, "skip-1", eventstore.Any, events(20, "E")...)
	sub := subscribe(t, s, eventstore.SubscribeOptions{Filter: eventstore.Filter{StreamPrefixes: []string{"keep-"}}})
	var through eventstore.Position
	var n int
	for {
		b, err := sub.Next(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		n += len(b.Events)
		through = b.Through
		if b.CaughtUp {
			break
		}
	}
	if n != 1 {
		t.Fatalf("filtered subscription delivered %d events, want 1", n)
	}
	if through.Less(last.LastPosition()) {
		t.Fatalf("caught-up checkpoint %v lies before the head %v", through, last.LastPosition())
	}
	// A live event the filter leaves out still moves the checkpoint, with an
	// empty batch, so a consumer waiting for that position is not stuck.
	skipped := mustAppend(t, s, "skip-1", eventstore.Any, ev("E", `{}`))
	for through.Less(skipped.LastPosition()) {
		b, err := sub.Next(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Events) != 0 {
			t.Fatalf("filtered subscription delivered %+v", b.Events)
		}
		through = b.Through
	}
	kept := mustAppend(t, s, "keep-2", eventstore.Any, ev("E", `{}`))
	got, _ := collect(t, sub, 1)
	if got[0].Position != kept.LastPosition() {
		t.Fatalf("next kept event at %v, want %v", got[0].Position, kept.LastPosition())
	}
}

func testOptimisticRace(t *testing.T, s eventstore.Store) {
	mustAppend(t, s, "race", eventstore.NoStream, ev("E", `{}`))
	const writers = 16
	var wins, conflicts int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Append(ctx(t), "race", eventstore.Exact(0), ev("E", `{}`))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, eventstore.ErrWrongExpectedVersion):
				conflicts++
			default:
				t.Errorf("racing append: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 || conflicts != writers-1 {
		t.Fatalf("%d writers expecting version 0: %d won, %d conflicted; want 1 and %d", writers, wins, conflicts, writers-1)
	}
	if got := readStream(t, s, "race", eventstore.ReadStreamOptions{}); len(got) != 2 {
		t.Fatalf("stream holds %d events, want 2", len(got))
	}
}

func testOrderingUnderConcurrentWriters(t *testing.T, s eventstore.Store) {
	const writers, perWriter = 16, 40
	total := writers * perWriter
	sub := subscribe(t, s, eventstore.SubscribeOptions{BatchSize: 64})

	type delivery struct {
		events []eventstore.RecordedEvent
		err    error
	}
	got := make(chan delivery, 1)
	go func() {
		var out []eventstore.RecordedEvent
		for len(out) < total {
			b, err := sub.Next(ctx(t))
			if err != nil {
				got <- delivery{out, err}
				return
			}
			out = append(out, b.Events...)
		}
		got <- delivery{out, nil}
	}()

	acked := make(chan eventstore.Position, total)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				stream := fmt.Sprintf("w-%d", w)
				if i%4 == 3 {
					stream = "shared" // some streams see contention from every writer
				}
				res, err := s.Append(ctx(t), stream, eventstore.Any, ev("E", fmt.Sprintf(`{"w":%d,"i":%d}`, w, i)))
				if err != nil {
					t.Errorf("writer %d append %d: %v", w, i, err)
					return
				}
				acked <- res.Positions[0]
			}
		}()
	}
	wg.Wait()
	close(acked)
	d := <-got
	if d.err != nil {
		t.Fatalf("subscriber failed after %d events: %v", len(d.events), d.err)
	}
	assertStrictlyIncreasing(t, d.events)
	seen := make(map[eventstore.Position]bool, total)
	for _, e := range d.events {
		if seen[e.Position] {
			t.Fatalf("event at %v delivered twice", e.Position)
		}
		seen[e.Position] = true
	}
	for p := range acked {
		if !seen[p] {
			t.Fatalf("acknowledged event at %v never delivered", p)
		}
	}
	if len(seen) != total {
		t.Fatalf("delivered %d distinct events, want %d", len(seen), total)
	}
	// Every stream's versions are contiguous from 0.
	for _, stream := range []string{"shared", "w-0", "w-15"} {
		for i, e := range readStream(t, s, stream, eventstore.ReadStreamOptions{}) {
			if e.Version != uint64(i) {
				t.Fatalf("%s: event %d has version %d", stream, i, e.Version)
			}
		}
	}
	// The log read in one go agrees with the subscription.
	all := readAll(t, s, eventstore.ReadAllOptions{})
	if len(all) != total {
		t.Fatalf("read all returned %d events, want %d", len(all), total)
	}
	for i := range all {
		if all[i].ID != d.events[i].ID {
			t.Fatalf("read all and subscription differ at %d", i)
		}
	}
}

func testLargePayloads(t *testing.T, s eventstore.Store) {
	big := `{"blob":"` + strings.Repeat("x", 2<<20) + `"}`
	meta := `{"note":"` + strings.Repeat("m", 64<<10) + `"}`
	in := eventstore.EventData{ID: eventstore.NewID(), Type: "Big", Data: json.RawMessage(big), Metadata: json.RawMessage(meta)}
	many := events(500, "Small")
	mustAppend(t, s, "big", eventstore.Any, in)
	res := mustAppend(t, s, "many", eventstore.Any, many...)
	if res.StreamVersion != 499 {
		t.Fatalf("500-event append ends at version %d", res.StreamVersion)
	}
	got := readStream(t, s, "big", eventstore.ReadStreamOptions{})
	if len(got) != 1 || !bytes.Equal(got[0].Data, in.Data) || !bytes.Equal(got[0].Metadata, in.Metadata) {
		t.Fatalf("2 MiB event did not round-trip (got %d bytes)", len(got[0].Data))
	}
	if got := readStream(t, s, "many", eventstore.ReadStreamOptions{}); len(got) != 500 {
		t.Fatalf("500-event stream read %d", len(got))
	}
}

func testUnicode(t *testing.T, s eventstore.Store) {
	stream := "chat-日本語-émoji-😀-עברית"
	data := `{"message":"héllo wörld 👋🏽 مرحبا \u0000 \"quoted\" \\ back","name":"Zoë"}`
	in := eventstore.EventData{ID: eventstore.NewID(), Type: "MessagePosted·v1", Data: json.RawMessage(data), Metadata: json.RawMessage(`{"by":"ユーザー"}`)}
	mustAppend(t, s, stream, eventstore.NoStream, in)
	got := readStream(t, s, stream, eventstore.ReadStreamOptions{})
	if len(got) != 1 || got[0].Stream != stream || got[0].Type != in.Type || !bytes.Equal(got[0].Data, in.Data) || !bytes.Equal(got[0].Metadata, in.Metadata) {
		t.Fatalf("unicode event round-tripped as %+v", got)
	}
	byPrefix := readAll(t, s, eventstore.ReadAllOptions{Filter: eventstore.Filter{StreamPrefixes: []string{"chat-日本"}}})
	if len(byPrefix) != 1 {
		t.Fatalf("unicode prefix filter found %d events", len(byPrefix))
	}
	var decoded map[string]string
	if err := json.Unmarshal(got[0].Data, &decoded); err != nil || decoded["name"] != "Zoë" {
		t.Fatalf("stored data does not decode: %v %v", decoded, err)
	}
}

func testRecordedTimeAndMetadata(t *testing.T, s eventstore.Store) {
	before := time.Now().Add(-time.Second)
	mustAppend(t, s, "t", eventstore.Any, ev("E", `{}`), eventstore.EventData{ID: eventstore.NewID(), Type: "E", Data: json.RawMessage(`[1,2]`), Metadata: json.RawMessage(`{"userId":"u1","command":"send_message"}`)})
	after := time.Now().Add(time.Second)
	got := readStream(t, s, "t", eventstore.ReadStreamOptions{})
	for _, e := range got {
		if e.Time.Before(before) || e.Time.After(after) || e.Time.Location() != time.UTC {
			t.Fatalf("recorded time %v (%v) outside [%v, %v] or not UTC", e.Time, e.Time.Location(), before, after)
		}
	}
	var meta map[string]any
	if err := json.Unmarshal(got[0].Metadata, &meta); err != nil || len(meta) != 0 {
		t.Fatalf("default metadata = %s, want {}", got[0].Metadata)
	}
	if string(got[1].Metadata) != `{"userId":"u1","command":"send_message"}` {
		t.Fatalf("metadata = %s", got[1].Metadata)
	}
}

func testClosedStore(t *testing.T, s eventstore.Store) {
	mustAppend(t, s, "c", eventstore.Any, ev("E", `{}`))
	sub := subscribe(t, s, eventstore.SubscribeOptions{})
	collectUntilCaughtUp(t, sub)
	waiting := make(chan error, 1)
	go func() {
		_, err := sub.Next(ctx(t))
		waiting <- err
	}()
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	select {
	case err := <-waiting:
		if domain.ErrorCode(err) != domain.EUNAVAILABLE {
			t.Fatalf("waiting subscriber got %v, want %s", err, domain.EUNAVAILABLE)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("closing the store did not end a waiting subscription")
	}
	if _, err := s.Append(ctx(t), "c", eventstore.Any, ev("E", `{}`)); domain.ErrorCode(err) != domain.EUNAVAILABLE {
		t.Fatalf("append on closed store: %v, want %s", err, domain.EUNAVAILABLE)
	}
	if _, err := s.ReadAll(ctx(t), eventstore.ReadAllOptions{}); domain.ErrorCode(err) != domain.EUNAVAILABLE {
		t.Fatalf("read on closed store: %v, want %s", err, domain.EUNAVAILABLE)
	}
	if _, err := s.Subscribe(ctx(t), eventstore.SubscribeOptions{}); domain.ErrorCode(err) != domain.EUNAVAILABLE {
		t.Fatalf("subscribe on closed store: %v, want %s", err, domain.EUNAVAILABLE)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

func testCanceledContext(t *testing.T, s eventstore.Store) {
	c, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Append(c, "x", eventstore.Any, ev("E", `{}`)); !errors.Is(err, context.Canceled) {
		t.Fatalf("append with a canceled context: %v", err)
	}
	if got := readAll(t, s, eventstore.ReadAllOptions{}); len(got) != 0 {
		t.Fatalf("canceled append stored %d events", len(got))
	}
}
