package sqlstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/sqlstore"
	"github.com/auraos/realtime/schema"
)

func event(data string) eventstore.EventData {
	return eventstore.EventData{ID: eventstore.NewID(), Type: "E", Data: json.RawMessage(data)}
}

// checkGapSafety runs writers on each of the writer stores at once while a
// subscriber on another store reads the log live, and checks that the
// subscriber sees every acknowledged event exactly once, in strictly
// increasing position order.
func checkGapSafety(t *testing.T, writers []*sqlstore.Store, reader *sqlstore.Store, perStore, perWriter int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	total := len(writers) * perStore * perWriter
	sub, err := reader.Subscribe(ctx, eventstore.SubscribeOptions{BatchSize: 50})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	delivered := make(chan []eventstore.RecordedEvent, 1)
	go func() {
		var got []eventstore.RecordedEvent
		for len(got) < total {
			b, err := sub.Next(ctx)
			if err != nil {
				t.Errorf("subscriber: %v after %d events", err, len(got))
				break
			}
			got = append(got, b.Events...)
		}
		delivered <- got
	}()
	var acked sync.Map
	var wg sync.WaitGroup
	for si, s := range writers {
		for w := range perStore {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perWriter {
					res, err := s.Append(ctx, fmt.Sprintf("p%d-w%d", si, w%3), eventstore.Any, event(fmt.Sprintf(`{"i":%d}`, i)))
					if err != nil {
						t.Errorf("append: %v", err)
						return
					}
					acked.Store(res.Positions[0], true)
				}
			}()
		}
	}
	wg.Wait()
	got := <-delivered
	seen := map[eventstore.Position]bool{}
	for i, e := range got {
		if i > 0 && !got[i-1].Position.Less(e.Position) {
			t.Fatalf("subscriber saw %v after %v", e.Position, got[i-1].Position)
		}
		seen[e.Position] = true
	}
	n := 0
	acked.Range(func(k, _ any) bool {
		n++
		if !seen[k.(eventstore.Position)] {
			t.Errorf("acknowledged %v never delivered", k)
		}
		return true
	})
	if n != total || len(got) != total {
		t.Fatalf("acked %d, delivered %d, want %d", n, len(got), total)
	}
}

func TestPostgresGapSafetyAcrossProcesses(t *testing.T) {
	t.Parallel()
	dsn := postgresURL(t)
	// Separate stores have separate connection pools, writer goroutines and
	// listeners, exactly as separate server processes would.
	a, b, reader := openPostgres(t, dsn), openPostgres(t, dsn), openPostgres(t, dsn)
	checkGapSafety(t, []*sqlstore.Store{a, b}, reader, 8, 25)
}

func TestSQLiteGapSafetyAcrossProcesses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	open := func() *sqlstore.Store {
		return openSQLiteWith(t, dir, sqlstore.Options{CrossProcessPoll: 10 * time.Millisecond})
	}
	a, b, reader := open(), open(), open()
	checkGapSafety(t, []*sqlstore.Store{a, b}, reader, 8, 25)
}

func TestGroupCommitSharesTransactions(t *testing.T) {
	t.Parallel()
	var commits, appends, events atomic.Int64
	s, err := sqlstore.OpenSQLite(context.Background(), t.TempDir(), sqlstore.Options{OnCommit: func(a, e int, _ time.Duration) {
		commits.Add(1)
		appends.Add(int64(a))
		events.Add(int64(e))
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 200
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if _, err := s.Append(context.Background(), fmt.Sprintf("g-%d", i%10), eventstore.Any, event(`{}`)); err != nil {
				t.Error(err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if appends.Load() != n || events.Load() != n {
		t.Fatalf("commits held %d appends and %d events, want %d", appends.Load(), events.Load(), n)
	}
	if commits.Load() >= n {
		t.Fatalf("%d concurrent appends took %d transactions; group commit shares none", n, commits.Load())
	}
}

// A batch in which one append fails in the database is retried append by
// append, so the others still commit and the failing one stores nothing.
func TestSQLiteDiskFull(t *testing.T) {
	t.Parallel()
	s := openSQLite(t, t.TempDir())
	ctx := context.Background()
	if _, err := s.Append(ctx, "before", eventstore.Any, event(`{"ok":true}`)); err != nil {
		t.Fatal(err)
	}
	pages, err := sqlstore.PageCount(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := sqlstore.LimitSQLitePages(s, pages+2); err != nil {
		t.Fatal(err)
	}
	big := event(`{"blob":"` + strings.Repeat("x", 1<<20) + `"}`)
	_, err = s.Append(ctx, "big", eventstore.Any, big, event(`{}`))
	if domain.ErrorCode(err) != domain.EUNAVAILABLE || !strings.Contains(err.Error(), "full") {
		t.Fatalf("append to a full database: %v; want %s saying the disk is full", err, domain.EUNAVAILABLE)
	}
	got, err := s.ReadStream(ctx, "big", eventstore.ReadStreamOptions{})
	if err != nil || len(got) != 0 {
		t.Fatalf("failed append left %d events (%v)", len(got), err)
	}
	// Space again: the store carries on, and the retry stores the events once.
	if err := sqlstore.LimitSQLitePages(s, 1<<30); err != nil {
		t.Fatal(err)
	}
	res, err := s.Append(ctx, "big", eventstore.Any, big, event(`{}`))
	if err != nil || res.StreamVersion != 1 {
		t.Fatalf("append after freeing space: %+v, %v", res, err)
	}
}

func TestPostgresLostConnection(t *testing.T) {
	t.Parallel()
	dsn := postgresURL(t)
	u, _ := url.Parse(dsn)
	q := u.Query()
	app := "auraos_lost_" + strings.ReplaceAll(eventstore.NewID()[:8], "-", "")
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	s := openPostgres(t, u.String())
	ctx := context.Background()
	if _, err := s.Append(ctx, "x", eventstore.Any, event(`{}`)); err != nil {
		t.Fatal(err)
	}
	sub, err := s.Subscribe(ctx, eventstore.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if b, err := sub.Next(ctx); err != nil || len(b.Events) != 1 {
		t.Fatalf("first batch: %+v %v", b, err)
	}

	admin, err := schema.OpenPostgres(ctx, dsn, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var killed int
	if err := admin.QueryRowContext(ctx, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = ?", app).Scan(&killed); err != nil || killed == 0 {
		t.Fatalf("terminate the store's connections: %d, %v", killed, err)
	}
	// The store reconnects: an append made after the loss either succeeds or
	// says clearly that the database was unreachable; a retry succeeds and is
	// stored once.
	ev := event(`{"after":"loss"}`)
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := s.Append(ctx, "x", eventstore.Any, ev)
		if err == nil {
			break
		}
		if domain.ErrorCode(err) != domain.EUNAVAILABLE {
			t.Fatalf("append after losing the connection: %v; want success or %s", err, domain.EUNAVAILABLE)
		}
		if time.Now().After(deadline) {
			t.Fatalf("store did not reconnect: %v", err)
		}
	}
	nctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		b, err := sub.Next(nctx)
		if err != nil {
			if domain.ErrorCode(err) == domain.EUNAVAILABLE && nctx.Err() == nil {
				continue // the read hit a dead connection; the next one reconnects
			}
			t.Fatalf("subscription after reconnect: %v", err)
		}
		if len(b.Events) > 0 {
			if b.Events[0].ID != ev.ID {
				t.Fatalf("subscription resumed with %s, want %s", b.Events[0].ID, ev.ID)
			}
			break
		}
	}
	all, err := s.ReadStream(ctx, "x", eventstore.ReadStreamOptions{})
	if err != nil || len(all) != 2 {
		t.Fatalf("stream holds %d events (%v), want 2", len(all), err)
	}
}

func TestPostgresUnreachable(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := sqlstore.OpenPostgres(ctx, "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=2", sqlstore.Options{})
	if domain.ErrorCode(err) != domain.EUNAVAILABLE {
		t.Fatalf("open an unreachable database: %v; want %s", err, domain.EUNAVAILABLE)
	}
	if strings.Contains(fmt.Sprint(err), "password") {
		t.Fatalf("error mentions a password: %v", err)
	}
}

func TestReopenKeepsTheLog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	s, err := sqlstore.OpenSQLite(ctx, dir, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Append(ctx, "keep", eventstore.NoStream, event(`{"n":1}`), event(`{"n":2}`))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2 := openSQLite(t, dir)
	got, err := s2.ReadAll(ctx, eventstore.ReadAllOptions{})
	if err != nil || len(got) != 2 || got[1].Position != res.Positions[1] {
		t.Fatalf("reopened log: %+v, %v", got, err)
	}
	if _, err := s2.Append(ctx, "keep", eventstore.NoStream, event(`{}`)); !errors.Is(err, eventstore.ErrWrongExpectedVersion) {
		t.Fatalf("version check after reopen: %v", err)
	}
	res3, err := s2.Append(ctx, "keep", eventstore.Exact(1), event(`{}`))
	if err != nil || !res.Positions[1].Less(res3.Positions[0]) {
		t.Fatalf("append after reopen: %+v %v", res3, err)
	}
}

// Appends submitted one after another are stored in that order, while
// several are in flight at once.
func TestSubmitKeepsOrder(t *testing.T) {
	t.Parallel()
	s := openSQLite(t, t.TempDir())
	ctx := context.Background()
	var pending []*eventstore.Pending
	for i := range 200 {
		pending = append(pending, s.Submit(ctx, "ordered", eventstore.Any, event(fmt.Sprintf(`{"i":%d}`, i))))
	}
	for i, p := range pending {
		res, err := p.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if res.StreamVersion != uint64(i) {
			t.Fatalf("submission %d stored at version %d", i, res.StreamVersion)
		}
	}
	s.Close()
	if _, err := s.Submit(ctx, "ordered", eventstore.Any, event(`{}`)).Wait(ctx); domain.ErrorCode(err) != domain.EUNAVAILABLE {
		t.Fatalf("submit after close: %v", err)
	}
}

// A subscriber on a store that writes too reads its own commits from memory
// and the other process's from the database, without missing or doubling
// any, in order.
func TestSubscriberOnAWriterAcrossProcesses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	open := func() *sqlstore.Store {
		return openSQLiteWith(t, dir, sqlstore.Options{CrossProcessPoll: 10 * time.Millisecond})
	}
	a, b := open(), open()
	checkGapSafety(t, []*sqlstore.Store{a, b}, a, 6, 30)
}

// A subscriber caught up with its own process's commits is handed each new
// one from memory: it does not ask the database after every commit whether
// there is anything more.
func TestCaughtUpSubscriberDoesNotAskTheDatabaseAfterOwnCommits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := sqlstore.OpenSQLite(ctx, t.TempDir(), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sub, err := s.Subscribe(ctx, eventstore.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	// The subscriber waits in Next while each commit is made, as a live
	// projection does, and asks for more as soon as it has a batch.
	delivered := make(chan eventstore.Position)
	go func() {
		for {
			b, err := sub.Next(ctx)
			if err != nil {
				close(delivered)
				return
			}
			for _, e := range b.Events {
				delivered <- e.Position
			}
		}
	}()
	const commits = 50
	for i := range commits {
		res, err := s.Append(ctx, "own", eventstore.Any, event(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		if got := <-delivered; got != res.Positions[0] {
			t.Fatalf("commit %d: delivered %v, want %v", i, got, res.Positions[0])
		}
	}
	// The first read asks the database (the tail does not know what was
	// there before); the commits after it are the tail's.
	if n := sqlstore.SubscriptionDatabaseReads(s); n > 2 {
		t.Fatalf("the subscriber asked the database %d times over %d commits", n, commits)
	}
}

func TestPostgresSubscriberOnAWriter(t *testing.T) {
	t.Parallel()
	dsn := postgresURL(t)
	a, b := openPostgres(t, dsn), openPostgres(t, dsn)
	checkGapSafety(t, []*sqlstore.Store{a, b}, b, 6, 30)
}

// A subscription that catches up on a long log with a filter that matches
// rarely reads it in windows of positions: it delivers every matching
// event once, in order, its Through never passes the head, and only the
// batch that reaches the head says it caught up.
func TestSubscriptionCatchesUpInWindows(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	w, err := sqlstore.OpenSQLite(ctx, dir, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var want []eventstore.Position
	for b := range 20 {
		batch := make([]eventstore.EventData, 500)
		for i := range batch {
			batch[i] = event(`{}`)
			if (b*500+i)%3001 == 7 {
				batch[i].Type = "Wanted"
			}
		}
		res, err := w.Append(ctx, fmt.Sprintf("s%d", b), eventstore.NoStream, batch...)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range batch {
			if e.Type == "Wanted" {
				want = append(want, res.Positions[i])
			}
		}
	}
	head, _ := w.Head(ctx)
	w.Close()
	s := openSQLite(t, dir) // a fresh process: nothing in the in-memory tail
	sub, err := s.Subscribe(ctx, eventstore.SubscribeOptions{Filter: eventstore.Filter{EventTypes: []string{"Wanted"}}, BatchSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var got []eventstore.Position
	through := eventstore.Start
	for reads := 0; ; reads++ {
		if reads > 100 {
			t.Fatalf("no catch-up after %d reads (through %v, head %v)", reads, through, head)
		}
		b, err := sub.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !through.Less(b.Through) || head.Less(b.Through) {
			t.Fatalf("batch through %v after %v (head %v)", b.Through, through, head)
		}
		through = b.Through
		for _, e := range b.Events {
			got = append(got, e.Position)
		}
		if b.CaughtUp != (through == head) {
			t.Fatalf("batch through %v says caught up %v (head %v)", through, b.CaughtUp, head)
		}
		if b.CaughtUp {
			break
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
}

// On PostgreSQL a writer that knows where the log ends commits in one
// statement; when another process has appended since, it writes nothing
// there and commits in a transaction instead, so positions, versions and the
// chain continue exactly as if every commit had taken the long way.
func TestPostgresCommitsAtTheKnownHead(t *testing.T) {
	t.Parallel()
	dsn := postgresURL(t)
	a, b := openPostgres(t, dsn), openPostgres(t, dsn)
	ctx := context.Background()
	appendTo := func(s *sqlstore.Store, stream string, expected eventstore.ExpectedVersion, evs ...eventstore.EventData) eventstore.AppendResult {
		t.Helper()
		res, err := s.Append(ctx, stream, expected, evs...)
		if err != nil {
			t.Fatalf("append to %s: %v", stream, err)
		}
		return res
	}
	appendTo(a, "room", eventstore.NoStream, event(`{"i":0}`)) // a stream a has not seen: the long way
	before := sqlstore.HeadCommits(a)
	second := appendTo(a, "room", eventstore.Exact(0), event(`{"i":1}`), event(`{"i":2}`))
	if got := sqlstore.HeadCommits(a); got != before+1 {
		t.Fatalf("head commits went from %d to %d, want one more", before, got)
	}
	if second.StreamVersion != 2 || second.Positions[1].Commit != second.Positions[0].Commit+1 {
		t.Fatalf("second append: %+v", second)
	}
	other := appendTo(b, "elsewhere", eventstore.Any, event(`{"other":true}`))
	third := appendTo(a, "room", eventstore.Exact(2), event(`{"i":3}`))
	if !other.Positions[0].Less(third.Positions[0]) || third.StreamVersion != 3 {
		t.Fatalf("after another writer at %v, a appended at %+v", other.Positions[0], third)
	}
	// A stale expected version and a retried append are decided as ever.
	if _, err := a.Append(ctx, "room", eventstore.Exact(2), event(`{"late":true}`)); !errors.As(err, new(*eventstore.WrongExpectedVersionError)) {
		t.Fatalf("append at a stale version: %v, want a wrong expected version", err)
	}
	retry := event(`{"i":4}`)
	first := appendTo(a, "room", eventstore.Any, retry)
	again := appendTo(a, "room", eventstore.Any, retry)
	if again.Positions[0] != first.Positions[0] || again.StreamVersion != first.StreamVersion {
		t.Fatalf("retried append got %+v, first %+v", again, first)
	}
	if v, err := verifyLog(t, a); err != nil || v.Count() != 6 {
		t.Fatalf("verify: %v, %d events", err, v.Count())
	}
}
