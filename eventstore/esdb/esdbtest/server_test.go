package esdbtest_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/auraos/realtime/eventstore/esdb/esdbtest"
)

func client(t *testing.T, url string) *esdb.Client {
	t.Helper()
	cfg, err := esdb.ParseConnectionString(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Logger = esdb.NoopLogging()
	c, err := esdb.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testCtx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func event(typ string) esdb.EventData {
	return esdb.EventData{EventID: uuid.New(), EventType: typ, ContentType: esdb.ContentTypeJson, Data: []byte(`{}`)}
}

func readStream(t *testing.T, c *esdb.Client, stream string, opts esdb.ReadStreamOptions, n uint64) ([]*esdb.ResolvedEvent, error) {
	t.Helper()
	rs, err := c.ReadStream(testCtx(t), stream, opts, n)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []*esdb.ResolvedEvent
	for {
		e, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, e)
	}
}

func isCode(err error, code esdb.ErrorCode) bool {
	var e *esdb.Error
	return errors.As(err, &e) && e.Code() == code
}

// TestAppendsAndReads checks expected revisions, idempotency and reads as the
// official client sees them.
func TestAppendsAndReads(t *testing.T) {
	t.Parallel()
	srv := esdbtest.StartServer(t, esdbtest.Options{})
	c := client(t, srv.URL())
	ctx := testCtx(t)
	e0, e1 := event("A"), event("B")
	r, err := c.AppendToStream(ctx, "s", esdb.AppendToStreamOptions{ExpectedRevision: esdb.NoStream{}}, e0, e1)
	if err != nil || r.NextExpectedVersion != 1 || r.CommitPosition == 0 || r.CommitPosition != r.PreparePosition {
		t.Fatalf("append = %+v, %v; want revision 1 at the last event's position", r, err)
	}
	// The same write again is answered with the original result.
	again, err := c.AppendToStream(ctx, "s", esdb.AppendToStreamOptions{ExpectedRevision: esdb.NoStream{}}, e0, e1)
	if err != nil || again.NextExpectedVersion != 1 {
		t.Fatalf("repeated write = %+v, %v; want the original revision 1", again, err)
	}
	again, err = c.AppendToStream(ctx, "s", esdb.AppendToStreamOptions{ExpectedRevision: esdb.Any{}}, e1)
	if err != nil || again.NextExpectedVersion != 1 {
		t.Fatalf("repeated write with Any = %+v, %v; want the original revision 1", again, err)
	}
	cases := []struct {
		exp  esdb.ExpectedRevision
		want string
	}{
		{esdb.Revision(5), "got '1'"},
		{esdb.NoStream{}, "got '1'"}, // e1 alone does not repeat the write after no stream
	}
	for _, cs := range cases {
		_, err = c.AppendToStream(ctx, "s", esdb.AppendToStreamOptions{ExpectedRevision: cs.exp}, e1)
		if !isCode(err, esdb.ErrorCodeWrongExpectedVersion) || !strings.Contains(err.Error(), cs.want) {
			t.Fatalf("append expecting %T: %v, want a wrong expected version with %q", cs.exp, err, cs.want)
		}
	}
	_, err = c.AppendToStream(ctx, "missing", esdb.AppendToStreamOptions{ExpectedRevision: esdb.StreamExists{}}, event("C"))
	if !isCode(err, esdb.ErrorCodeWrongExpectedVersion) || !strings.Contains(err.Error(), "no_stream") {
		t.Fatalf("stream exists on a missing stream: %v", err)
	}

	got, err := readStream(t, c, "s", esdb.ReadStreamOptions{}, 10)
	if err != nil || len(got) != 2 || got[0].Event.EventID != e0.EventID || got[1].Event.EventType != "B" {
		t.Fatalf("read = %v, %v", got, err)
	}
	if p0, p1 := got[0].Event.Position, got[1].Event.Position; p0.Commit != p0.Prepare || p1.Commit <= p0.Commit || p1.Commit != r.CommitPosition {
		t.Fatalf("positions %v then %v: want self-committed records, the last at %d", p0, p1, r.CommitPosition)
	}
	if time.Since(got[0].Event.CreatedDate) > time.Minute {
		t.Fatalf("created %v", got[0].Event.CreatedDate)
	}
	back, err := readStream(t, c, "s", esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.Revision(9)}, 1)
	if err != nil || len(back) != 1 || back[0].Event.EventNumber != 1 {
		t.Fatalf("backwards from past the end = %v, %v; want revision 1", back, err)
	}
	if _, err := readStream(t, c, "missing", esdb.ReadStreamOptions{}, 1); !isCode(err, esdb.ErrorCodeResourceNotFound) {
		t.Fatalf("read a missing stream: %v, want not found", err)
	}
	rs, err := c.ReadAll(ctx, esdb.ReadAllOptions{Direction: esdb.Backwards, From: esdb.End{}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	if last, err := rs.Recv(); err != nil || last.Event.EventID != e1.EventID {
		t.Fatalf("last of $all = %v, %v; want the B event", last, err)
	}
}

// TestSubscriptions checks the order of subscription messages: confirmation,
// events, checkpoints of a filtered subscription (every window and at the end
// of the catch-up), CaughtUp, live events; and dropping on demand.
func TestSubscriptions(t *testing.T) {
	t.Parallel()
	srv := esdbtest.StartServer(t, esdbtest.Options{})
	c := client(t, srv.URL())
	ctx := testCtx(t)
	for range 5 {
		if _, err := c.AppendToStream(ctx, "other", esdb.AppendToStreamOptions{}, event("X")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.AppendToStream(ctx, "keep", esdb.AppendToStreamOptions{}, event("K")); err != nil {
		t.Fatal(err)
	}
	head, _ := srv.Head()

	sub, err := c.SubscribeToAll(ctx, esdb.SubscribeToAllOptions{
		From:            esdb.Start{},
		Filter:          &esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Prefixes: []string{"keep"}},
		MaxSearchWindow: 3, CheckpointInterval: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	// 2 system events + 5 others + keep: checkpoints after 3 and 6 considered,
	// the event, the end-of-catch-up checkpoint at the head, then CaughtUp.
	var trace []string
	for len(trace) == 0 || trace[len(trace)-1] != "caught-up" {
		ev := sub.Recv()
		switch {
		case ev.CheckPointReached != nil:
			if ev.CheckPointReached.Commit == head {
				trace = append(trace, "checkpoint@head")
			} else {
				trace = append(trace, "checkpoint")
			}
		case ev.EventAppeared != nil:
			trace = append(trace, "event:"+ev.EventAppeared.Event.StreamID)
		case ev.CaughtUp != nil:
			trace = append(trace, "caught-up")
		case ev.SubscriptionDropped != nil:
			t.Fatalf("dropped: %v", ev.SubscriptionDropped.Error)
		}
	}
	want := "checkpoint checkpoint event:keep checkpoint@head caught-up"
	if strings.Join(trace, " ") != want {
		t.Fatalf("catch-up sent %q, want %q", strings.Join(trace, " "), want)
	}

	stream, err := c.SubscribeToStream(ctx, "keep", esdb.SubscribeToStreamOptions{From: esdb.Start{}})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	if ev := stream.Recv(); ev.EventAppeared == nil || ev.EventAppeared.Event.EventType != "K" {
		t.Fatalf("stream subscription's first message = %+v, want the K event", ev)
	}
	if ev := stream.Recv(); ev.CaughtUp == nil {
		t.Fatalf("then %+v, want CaughtUp", ev)
	}
	live := event("L")
	if _, err := c.AppendToStream(ctx, "keep", esdb.AppendToStreamOptions{}, live); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*esdb.Subscription{sub, stream} {
		if ev := s.Recv(); ev.EventAppeared == nil || ev.EventAppeared.Event.EventID != live.EventID {
			t.Fatalf("live message = %+v, want the L event", ev)
		}
	}

	if n := srv.DropSubscriptions(); n != 2 {
		t.Fatalf("dropped %d subscriptions, want 2", n)
	}
	for _, s := range []*esdb.Subscription{sub, stream} {
		for {
			ev := s.Recv()
			if ev.SubscriptionDropped != nil {
				break
			}
			if ev.EventAppeared != nil {
				t.Fatalf("event after the drop: %+v", ev)
			}
		}
	}
}
