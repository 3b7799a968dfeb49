package esdb_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auraos/realtime/internal/syncbuf"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/esdb"
	"github.com/auraos/realtime/eventstore/esdb/esdbtest"
	"github.com/auraos/realtime/eventstore/storetest"
)

// quiet keeps the client's and the store's log out of test output.
var quiet = slog.New(slog.NewTextHandler(discard{}, &slog.HandlerOptions{Level: slog.LevelError}))

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func open(t *testing.T, url string, opts esdb.Options) *esdb.Store {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	s, err := esdb.Open(ctx(t), url, opts)
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// largeAppends lets the contract's 2 MiB event through, as a KurrentDB node
// started with a larger --max-append-size would.
var largeAppends = esdbtest.Options{MaxAppendSize: 8 << 20}

func TestContract(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) eventstore.Store {
		return open(t, esdbtest.StartServer(t, largeAppends).URL(), esdb.Options{})
	})
}

// TestContractNamespaced runs the suite with every store in its own namespace
// of one shared server, as the real-server run does.
func TestContractNamespaced(t *testing.T) {
	t.Parallel()
	srv := esdbtest.StartServer(t, largeAppends)
	storetest.Run(t, func(t *testing.T) eventstore.Store {
		return open(t, srv.URL(), esdb.Options{Namespace: namespace()})
	})
}

func namespace() string {
	var b [6]byte
	rand.Read(b[:])
	return "test-" + hex.EncodeToString(b[:]) + "-"
}

// TestContractAgainstServer runs the suite against a real EventStoreDB or
// KurrentDB when AURAOS_TEST_ESDB_URL is set, each store in its own namespace.
// The node must accept 2 MiB appends (KURRENTDB_MAX_APPEND_SIZE=8388608).
func TestContractAgainstServer(t *testing.T) {
	url := os.Getenv("AURAOS_TEST_ESDB_URL")
	if url == "" {
		t.Skip("real EventStoreDB tests skipped: set AURAOS_TEST_ESDB_URL (e.g. esdb://127.0.0.1:2113?tls=false) to run them")
	}
	t.Parallel()
	probe, err := esdb.Open(ctx(t), url, esdb.Options{Logger: quiet})
	if err != nil {
		t.Fatalf("AURAOS_TEST_ESDB_URL is set but unreachable: %v", err)
	}
	probe.Close()
	storetest.Run(t, func(t *testing.T) eventstore.Store {
		return open(t, url, esdb.Options{Namespace: namespace()})
	})
}

func ev(typ, data string) eventstore.EventData {
	return eventstore.EventData{ID: eventstore.NewID(), Type: typ, Data: json.RawMessage(data)}
}

func mustAppend(t *testing.T, s eventstore.Store, stream string, exp eventstore.ExpectedVersion, evs ...eventstore.EventData) eventstore.AppendResult {
	t.Helper()
	res, err := s.Append(ctx(t), stream, exp, evs...)
	if err != nil {
		t.Fatalf("append to %s: %v", stream, err)
	}
	return res
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

// next returns the next batch, failing the test on an error.
func next(t *testing.T, sub eventstore.Subscription) eventstore.Batch {
	t.Helper()
	b, err := sub.Next(ctx(t))
	if err != nil {
		t.Fatalf("next: %v", err)
	}
	return b
}

// collect reads batches until n events have arrived and returns them with the
// last Through.
func collect(t *testing.T, sub eventstore.Subscription, n int) ([]eventstore.RecordedEvent, eventstore.Position) {
	t.Helper()
	var out []eventstore.RecordedEvent
	var through eventstore.Position
	for len(out) < n {
		b := next(t, sub)
		out = append(out, b.Events...)
		through = b.Through
	}
	if len(out) != n {
		t.Fatalf("got %d events, want %d", len(out), n)
	}
	return out, through
}

// caughtUp reads batches until one is marked CaughtUp and checks that n events
// came with them.
func caughtUp(t *testing.T, sub eventstore.Subscription, n int) ([]eventstore.RecordedEvent, eventstore.Position) {
	t.Helper()
	var out []eventstore.RecordedEvent
	for {
		b := next(t, sub)
		out = append(out, b.Events...)
		if b.CaughtUp {
			if len(out) != n {
				t.Fatalf("caught up after %d events, want %d", len(out), n)
			}
			return out, b.Through
		}
	}
}

func positions(evs []eventstore.RecordedEvent) []eventstore.Position {
	out := make([]eventstore.Position, len(evs))
	for i, e := range evs {
		out[i] = e.Position
	}
	return out
}

// TestResubscribesAfterDrop drops the server subscription of a caught-up
// subscription, without and with a filter: the store resubscribes from the
// last position it delivered (an event's, or a filtered subscription's
// checkpoint), commit and prepare exactly, and every later event arrives once.
func TestResubscribesAfterDrop(t *testing.T) {
	t.Parallel()
	for _, filtered := range []bool{false, true} {
		t.Run(fmt.Sprintf("filtered=%v", filtered), func(t *testing.T) {
			t.Parallel()
			srv := esdbtest.StartServer(t, esdbtest.Options{})
			s := open(t, srv.URL(), esdb.Options{})
			first := mustAppend(t, s, "keep-1", eventstore.Any, ev("E", `{"n":1}`))
			var skipped []eventstore.EventData
			for i := range 40 {
				skipped = append(skipped, ev("E", fmt.Sprintf(`{"skip":%d}`, i)))
			}
			last := mustAppend(t, s, "skip-1", eventstore.Any, skipped...)

			var filter eventstore.Filter
			wantCatchUp := append([]eventstore.Position{first.Positions[0]}, last.Positions...)
			if filtered {
				filter = eventstore.Filter{StreamPrefixes: []string{"keep-"}}
				wantCatchUp = wantCatchUp[:1]
			}
			sub := subscribe(t, s, eventstore.SubscribeOptions{Filter: filter})
			got, through := caughtUp(t, sub, len(wantCatchUp))
			if fmt.Sprint(positions(got)) != fmt.Sprint(wantCatchUp) {
				t.Fatalf("catch-up delivered %v, want %v", positions(got), wantCatchUp)
			}
			if through != last.LastPosition() {
				t.Fatalf("caught-up checkpoint %v, want the last event's position %v", through, last.LastPosition())
			}

			// A filtered subscription goes on with the live window once caught up;
			// drop the subscription that is open then.
			opened := 1
			if filtered {
				opened = 2
			}
			reqs, err := srv.AwaitSubscribeRequests(ctx(t), opened)
			if err != nil {
				t.Fatal(err)
			}
			if filtered && (reqs[0].Window != 32 || reqs[1].Window != 1 || reqs[1].Commit != through.Commit || reqs[1].Prepare != through.Prepare) {
				t.Fatalf("subscription requests %+v: want a catch-up window of 32, then a live window of 1 after %v", reqs, through)
			}
			if n := srv.DropSubscriptions(); n < 1 {
				t.Fatalf("dropped %d subscriptions", n)
			}
			live := []eventstore.AppendResult{
				mustAppend(t, s, "keep-2", eventstore.Any, ev("E", `{"n":2}`)),
				mustAppend(t, s, "skip-1", eventstore.Any, ev("E", `{}`)),
				mustAppend(t, s, "keep-3", eventstore.Any, ev("E", `{"n":3}`)),
			}
			want := []eventstore.Position{live[0].Positions[0], live[1].Positions[0], live[2].Positions[0]}
			if filtered {
				want = []eventstore.Position{live[0].Positions[0], live[2].Positions[0]}
			}
			after, _ := collect(t, sub, len(want))
			if fmt.Sprint(positions(after)) != fmt.Sprint(want) {
				t.Fatalf("after the drop got %v, want %v", positions(after), want)
			}
			reqs = srv.SubscribeRequests()
			r := reqs[opened]
			if r.FromStart || r.Commit != through.Commit || r.Prepare != through.Prepare || !r.Filtered {
				t.Fatalf("resubscribed with %+v, want a filtered subscription after %v", r, through)
			}
		})
	}
}

// TestPositionsKeptExactly subscribes after a position whose parts differ: the
// server gets both parts as given, and (its records being self-committed) the
// event at the commit position lies after it and is delivered.
func TestPositionsKeptExactly(t *testing.T) {
	t.Parallel()
	srv := esdbtest.StartServer(t, esdbtest.Options{})
	s := open(t, srv.URL(), esdb.Options{})
	res := mustAppend(t, s, "p", eventstore.Any, ev("E", `{}`), ev("E", `{}`))
	p := res.Positions[1]
	if p.Commit != p.Prepare || !res.Positions[0].Less(p) {
		t.Fatalf("positions %v: want self-committed records, increasing", res.Positions)
	}
	after := eventstore.Position{Commit: p.Commit, Prepare: p.Prepare - 1}
	sub := subscribe(t, s, eventstore.SubscribeOptions{After: after})
	got, _ := collect(t, sub, 1)
	if got[0].Position != p {
		t.Fatalf("subscription after %v delivered %v first, want %v", after, got[0].Position, p)
	}
	reqs := srv.SubscribeRequests()
	if r := reqs[len(reqs)-1]; r.Commit != after.Commit || r.Prepare != after.Prepare {
		t.Fatalf("server was asked for %d/%d, want %v", r.Commit, r.Prepare, after)
	}
	all, err := s.ReadAll(ctx(t), eventstore.ReadAllOptions{From: after})
	if err != nil || len(all) != 1 || all[0].Position != p {
		t.Fatalf("read all from %v = %v, %v; want the event at %v", after, all, err, p)
	}
}

// TestSystemEventsLeftOut interleaves system events with the store's: reads,
// subscriptions and the head leave them out.
func TestSystemEventsLeftOut(t *testing.T) {
	t.Parallel()
	srv := esdbtest.StartServer(t, esdbtest.Options{})
	s := open(t, srv.URL(), esdb.Options{})
	srv.AppendSystemEvent("$stats-node", "$statsCollected")
	a := mustAppend(t, s, "a", eventstore.Any, ev("E", `{}`))
	srv.AppendSystemEvent("$scavenges", "$scavengeStarted")
	b := mustAppend(t, s, "b", eventstore.Any, ev("E", `{}`))
	srv.AppendSystemEvent("$stats-node", "$statsCollected")

	want := fmt.Sprint([]eventstore.Position{a.Positions[0], b.Positions[0]})
	all, err := s.ReadAll(ctx(t), eventstore.ReadAllOptions{})
	if err != nil || fmt.Sprint(positions(all)) != want {
		t.Fatalf("read all = %v, %v; want %s", positions(all), err, want)
	}
	typed, err := s.ReadAll(ctx(t), eventstore.ReadAllOptions{Filter: eventstore.Filter{EventTypes: []string{"E", "$statsCollected"}}})
	if err != nil || fmt.Sprint(positions(typed)) != want {
		t.Fatalf("read all by type = %v, %v; want %s", positions(typed), err, want)
	}
	sub := subscribe(t, s, eventstore.SubscribeOptions{})
	got, _ := collect(t, sub, 2)
	if fmt.Sprint(positions(got)) != want {
		t.Fatalf("subscription delivered %v, want %s", positions(got), want)
	}
	head, err := s.Head(ctx(t))
	if err != nil || head != b.Positions[0] {
		t.Fatalf("head = %v, %v; want %v (the system event after it left out)", head, err, b.Positions[0])
	}
	if raw, _ := srv.Head(); raw <= head.Commit {
		t.Fatalf("server head %d should lie past the store's head %v", raw, head)
	}
	if _, err := s.Append(ctx(t), "$mine", eventstore.Any, ev("E", `{}`)); domain.ErrorCode(err) != domain.EINVALID {
		t.Fatalf("append to a $ stream: %v, want %s", err, domain.EINVALID)
	}
}

// TestIdempotencyWithoutServerCache checks the adapter's own repeat detection
// against a node that has forgotten the ids (its cache disabled), from stores
// that did not append them (other processes).
func TestIdempotencyWithoutServerCache(t *testing.T) {
	t.Parallel()
	srv := esdbtest.StartServer(t, esdbtest.Options{IdempotencyCache: -1})
	writer := open(t, srv.URL(), esdb.Options{})
	in := []eventstore.EventData{ev("E", `{"n":0}`), ev("E", `{"n":1}`), ev("E", `{"n":2}`)}
	original := mustAppend(t, writer, "idem", eventstore.Any, in...)
	mustAppend(t, writer, "idem", eventstore.Any, ev("E", `{"later":true}`))

	retry := open(t, srv.URL(), esdb.Options{})
	for _, exp := range []eventstore.ExpectedVersion{eventstore.Any, eventstore.StreamExists, eventstore.NoStream, eventstore.Exact(3)} {
		got, err := retry.Append(ctx(t), "idem", exp, in...)
		if err != nil || fmt.Sprint(got) != fmt.Sprint(original) {
			t.Fatalf("retry with %s from another store = %+v, %v; want %+v", exp, got, err, original)
		}
	}
	partial := open(t, srv.URL(), esdb.Options{})
	if _, err := partial.Append(ctx(t), "idem", eventstore.Any, in[1], ev("E", `{}`)); !errors.Is(err, eventstore.ErrDuplicateEventID) {
		t.Fatalf("partly stored append: %v, want ErrDuplicateEventID", err)
	}
	if got, err := writer.ReadStream(ctx(t), "idem", eventstore.ReadStreamOptions{}); err != nil || len(got) != 4 {
		t.Fatalf("stream holds %d events (%v) after the retries, want 4", len(got), err)
	}

	// Without the window and the cache, the node alone stores the repeat again:
	// the checks above are the adapter's.
	bare := open(t, srv.URL(), esdb.Options{IdempotencyWindow: -1, IDCache: -1})
	mustAppend(t, bare, "idem", eventstore.Any, in...)
	if got, _ := writer.ReadStream(ctx(t), "idem", eventstore.ReadStreamOptions{}); len(got) != 7 {
		t.Fatalf("stream holds %d events, want 7: the repeat stored again", len(got))
	}
}

// TestNamespaces shares one server between two namespaces.
func TestNamespaces(t *testing.T) {
	t.Parallel()
	srv := esdbtest.StartServer(t, esdbtest.Options{})
	a := open(t, srv.URL(), esdb.Options{Namespace: "a/"})
	b := open(t, srv.URL(), esdb.Options{Namespace: "b/"})
	ra := mustAppend(t, a, "chat-1", eventstore.NoStream, ev("A", `{}`))
	rb := mustAppend(t, b, "chat-1", eventstore.NoStream, ev("B", `{}`)) // same name, other namespace
	for _, c := range []struct {
		s    *esdb.Store
		want eventstore.AppendResult
		typ  string
	}{{a, ra, "A"}, {b, rb, "B"}} {
		all, err := c.s.ReadAll(ctx(t), eventstore.ReadAllOptions{})
		if err != nil || len(all) != 1 || all[0].Type != c.typ || all[0].Stream != "chat-1" || all[0].Position != c.want.Positions[0] {
			t.Fatalf("read all = %+v, %v; want only the %s event in chat-1", all, err, c.typ)
		}
		head, err := c.s.Head(ctx(t))
		if err != nil || head != c.want.Positions[0] {
			t.Fatalf("head = %v, %v; want %v", head, err, c.want.Positions[0])
		}
		sub := subscribe(t, c.s, eventstore.SubscribeOptions{Filter: eventstore.Filter{StreamPrefixes: []string{"chat-"}}})
		if got, _ := collect(t, sub, 1); got[0].Type != c.typ {
			t.Fatalf("subscription delivered %+v, want the %s event", got[0], c.typ)
		}
	}
	if _, err := esdb.Open(ctx(t), srv.URL(), esdb.Options{Namespace: "$sys", Logger: quiet}); domain.ErrorCode(err) != domain.EINVALID {
		t.Fatalf("namespace starting with $: %v, want %s", err, domain.EINVALID)
	}
}

// TestAppendTooLarge sends an append over the node's default 1 MiB limit.
func TestAppendTooLarge(t *testing.T) {
	t.Parallel()
	srv := esdbtest.StartServer(t, esdbtest.Options{})
	s := open(t, srv.URL(), esdb.Options{})
	big := ev("Big", `{"blob":"`+strings.Repeat("x", 2<<20)+`"}`)
	if _, err := s.Append(ctx(t), "big", eventstore.Any, big); domain.ErrorCode(err) != domain.EINVALID {
		t.Fatalf("2 MiB append: %v, want %s", err, domain.EINVALID)
	}
	if got, err := s.ReadStream(ctx(t), "big", eventstore.ReadStreamOptions{}); err != nil || len(got) != 0 {
		t.Fatalf("rejected append stored %d events (%v)", len(got), err)
	}
}

// refuse listens on addr and closes every connection at once, as a stopped
// node's host does (it keeps the port from other tests meanwhile). It returns
// the address and a function that stops listening.
func refuse(t *testing.T, addr string) (string, func()) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			l.Close()
			<-done
		})
	}
	t.Cleanup(stop)
	return l.Addr().String(), stop
}

func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	addr, _ := refuse(t, "127.0.0.1:0")
	for _, url := range []string{
		"esdb://" + addr + "?tls=false&maxDiscoverAttempts=1&discoveryInterval=1",
		"esdb+discover://" + addr + "?tls=false&maxDiscoverAttempts=1&discoveryInterval=1",
	} {
		_, err := esdb.Open(ctx(t), url, esdb.Options{Logger: quiet})
		if domain.ErrorCode(err) != domain.EUNAVAILABLE {
			t.Fatalf("open %s: %v, want %s", url, err, domain.EUNAVAILABLE)
		}
	}
	_, err := esdb.Open(ctx(t), "http://admin:s3cret@localhost:2113", esdb.Options{Logger: quiet})
	if domain.ErrorCode(err) != domain.EINVALID || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("open with a bad scheme: %v, want %s without the password", err, domain.EINVALID)
	}
}

// TestReconnectsAfterFailedDiscovery stops the node: calls fail with
// EUNAVAILABLE, the client's failed discovery closes it for good, and once the
// node is back (on the same address, data kept) the store works again with a
// new client.
func TestReconnectsAfterFailedDiscovery(t *testing.T) {
	t.Parallel()
	srv := esdbtest.StartServer(t, esdbtest.Options{})
	url := srv.URL() + "&maxDiscoverAttempts=1&discoveryInterval=1"
	s := open(t, url, esdb.Options{ResubscribeTimeout: 100 * time.Millisecond})
	mustAppend(t, s, "r", eventstore.NoStream, ev("E", `{"n":0}`))
	sub := subscribe(t, s, eventstore.SubscribeOptions{})
	caughtUp(t, sub, 1)

	srv.Stop()
	_, restart := refuse(t, srv.Addr())
	for i := range 3 { // the lost connection, the failed discovery, the dead client
		if _, err := s.Append(ctx(t), "r", eventstore.Exact(0), ev("E", `{}`)); domain.ErrorCode(err) != domain.EUNAVAILABLE {
			t.Fatalf("append %d with the node down: %v, want %s", i, err, domain.EUNAVAILABLE)
		}
	}
	if _, err := sub.Next(ctx(t)); domain.ErrorCode(err) != domain.EUNAVAILABLE {
		t.Fatalf("next with the node down: %v, want %s", err, domain.EUNAVAILABLE)
	}

	restart()
	if err := srv.Listen(srv.Addr()); err != nil {
		t.Fatalf("restart the node: %v", err)
	}
	res, err := s.Append(ctx(t), "r", eventstore.Exact(0), ev("E", `{"n":1}`))
	if err != nil || res.StreamVersion != 1 {
		t.Fatalf("append after the restart = %+v, %v; want version 1", res, err)
	}
}

// TestContextBoundsDiscovery points the store at a node that accepts
// connections and never answers, as a partitioned host behind a firewall may:
// the client's discovery then lasts until its connection attempt times out
// (20 s) and does not heed contexts, but the store's calls return when their
// context ends.
func TestContextBoundsDiscovery(t *testing.T) {
	t.Parallel()
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	accepting := make(chan struct{})
	go func() {
		defer close(accepting)
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	defer func() { // ends the background discovery
		silent.Close()
		<-accepting
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	}()

	short, cancel := context.WithTimeout(ctx(t), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = esdb.Open(short, "esdb://"+silent.Addr().String()+"?tls=false&maxDiscoverAttempts=1&gossipTimeout=60", esdb.Options{Logger: quiet})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("open during a hanging discovery: %v, want the context's deadline", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("open returned after %v, long after its context ended", took)
	}
}

// TestClusterConnectionStrings connects through gossip: DNS discovery and a
// list of seeds.
func TestClusterConnectionStrings(t *testing.T) {
	t.Parallel()
	srv := esdbtest.StartServer(t, esdbtest.Options{})
	for i, url := range []string{
		"esdb+discover://" + srv.Addr() + "?tls=false",
		"esdb://" + srv.Addr() + "," + srv.Addr() + "?tls=false",
	} {
		s := open(t, url, esdb.Options{})
		exp := eventstore.NoStream
		if i > 0 {
			exp = eventstore.Exact(uint64(i - 1))
		}
		mustAppend(t, s, "cluster", exp, ev("E", `{}`))
		if got, err := s.ReadStream(ctx(t), "cluster", eventstore.ReadStreamOptions{}); err != nil || len(got) != i+1 {
			t.Fatalf("%s: read %d events (%v), want %d", url, len(got), err, i+1)
		}
	}
}

// TestCredentialsDroppedWithoutTLS documents the client's behaviour: with
// tls=false the credentials of the connection string never reach the server,
// and Open warns about it.
func TestCredentialsDroppedWithoutTLS(t *testing.T) {
	t.Parallel()
	srv := esdbtest.StartServer(t, esdbtest.Options{})
	var logs syncbuf.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s := open(t, "esdb://admin:changeit@"+srv.Addr()+"?tls=false", esdb.Options{Logger: logger})
	mustAppend(t, s, "c", eventstore.Any, ev("E", `{}`))
	if n := srv.CredentialsSeen(); n != 0 {
		t.Fatalf("the server saw credentials on %d calls; the client should drop them without TLS", n)
	}
	if !strings.Contains(logs.String(), "credentials") || strings.Contains(logs.String(), "changeit") {
		t.Fatalf("log = %q, want a warning about dropped credentials without the password", logs.String())
	}
}
