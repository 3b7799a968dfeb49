package projections_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/sqlstore"
	"github.com/auraos/realtime/eventstore/sqlstore/sqlstoretest"
	"github.com/auraos/realtime/projections"
	"github.com/auraos/realtime/schema/schematest"
)

// historyRooms are the rooms randomHistory posts to.
var historyRooms = []string{"general", "random", "ops"}

// answer is everything a projection's queries say, the way `auraos query`
// asks: the online users; every message of every room (not only the last
// 50, so no row can hide); the apps and their totals.
func answer(t *testing.T, db bun.IDB, p projections.Projection) any {
	t.Helper()
	ctx := context.Background()
	var out any
	var err error
	switch p.Name() {
	case "online-users":
		out, err = projections.OnlineUsersQuery{DB: db}.Handle(ctx)
	case "chat-history":
		rooms := map[string][]projections.ChatMessage{}
		for _, room := range historyRooms {
			if rooms[room], err = (projections.ChatHistoryQuery{DB: db}).Handle(ctx, room, eventstore.Start, 1<<20); err != nil {
				break
			}
		}
		out = rooms
	case "app-status":
		var apps []projections.App
		var totals projections.AppTotals
		if apps, err = (projections.AppsQuery{DB: db}).Handle(ctx); err == nil {
			totals, err = projections.AppTotalsQuery{DB: db}.Handle(ctx)
		}
		out = struct {
			Apps   []projections.App
			Totals projections.AppTotals
		}{apps, totals}
	default:
		t.Fatalf("no answer for %s", p.Name())
	}
	if err != nil {
		t.Fatalf("answer of %s: %v", p.Name(), err)
	}
	return out
}

// snapshot is what a live runner's tables answered with its checkpoint at
// through.
type snapshot struct {
	through eventstore.Position
	answer  any
}

// recordLive runs every projection live, each recording its answer after
// every batch it commits (the runner waits meanwhile, so the answer is the
// tables at exactly that checkpoint), until stop is called.
func recordLive(t *testing.T, db bun.IDB, writer *bun.DB, store *sqlstore.Store, batch int) (runners map[string]*projections.Runner, stop func() map[string][]snapshot) {
	t.Helper()
	var mu sync.Mutex
	snaps := map[string][]snapshot{}
	runners, stopRunners := startRunnersWith(t, writer, store, func(p projections.Projection) projections.RunnerOptions {
		return projections.RunnerOptions{BatchSize: batch, OnBatch: func(_ int, through eventstore.Position, _ time.Duration) {
			a := answer(t, db, p)
			mu.Lock()
			snaps[p.Name()] = append(snaps[p.Name()], snapshot{through, a})
			mu.Unlock()
		}}
	})
	return runners, func() map[string][]snapshot {
		stopRunners()
		return snaps
	}
}

// The property of `auraos query --at-position`: for random logs and random
// cut points among the checkpoints live processing stood at, folding the log
// up to the cut into a fresh in-memory database answers exactly what the
// live tables answered then, on every kind of read database.
func TestFoldEqualsLiveAtEachCheckpoint(t *testing.T) {
	t.Parallel()
	eachRandomSetting(t, 2, func(t *testing.T, seed uint64, rng *rand.Rand, store *sqlstore.Store, rdb schematest.ReadDB) {
		ctx := testCtx(t)
		// Small random batches make the live checkpoints fall at random
		// places of the log.
		runners, stop := recordLive(t, rdb.Reader, rdb.Writer, store, 1+rng.IntN(5))
		last := randomHistory(t, rng, store, 250)
		waitAll(t, runners, last)
		snaps := stop()

		compared := 0
		for _, p := range projections.All() {
			taken := snaps[p.Name()]
			if len(taken) < 10 {
				t.Fatalf("seed %d: %s recorded only %d checkpoints", seed, p.Name(), len(taken))
			}
			// The first, the last and random ones between.
			picks := []int{0, len(taken) - 1}
			for range 10 {
				picks = append(picks, rng.IntN(len(taken)))
			}
			for _, i := range picks {
				s := taken[i]
				db, res, err := projections.FoldInMemory(ctx, store, []projections.Projection{p}, projections.AtPosition(s.through))
				if err != nil {
					t.Fatalf("seed %d: fold %s at %v: %v", seed, p.Name(), s.through, err)
				}
				got := answer(t, db, p)
				db.Close()
				if res.Through != s.through {
					t.Errorf("seed %d: fold of %s at %v says it stands at %v", seed, p.Name(), s.through, res.Through)
				}
				if !reflect.DeepEqual(got, s.answer) {
					t.Errorf("seed %d: %s at %v:\nlive %+v\nfold %+v", seed, p.Name(), s.through, s.answer, got)
				}
				compared++
			}
		}
		if compared == 0 {
			t.Fatal("nothing compared")
		}
	})
}

// fixedClockStore is a SQLite event store whose commits are stamped by a
// clock that moves a minute per commit from 10:00 UTC, so moments between
// commits are known.
func fixedClockStore(t *testing.T) *sqlstore.Store {
	t.Helper()
	var mu sync.Mutex
	now := time.Date(2026, 11, 27, 9, 59, 0, 0, time.UTC)
	return sqlstoretest.OpenSQLite(t, sqlstore.Options{Now: func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(time.Minute)
		return now
	}})
}

// appendApp appends one AppStatusChanged as its own commit.
func appendApp(t *testing.T, store *sqlstore.Store, app, status string) eventstore.Position {
	t.Helper()
	e := domain.AppStatusChanged{SchemaVersion: domain.SchemaVersion, AppID: app, Status: domain.AppStatus(status), By: "u", At: time.Unix(0, 0).UTC()}
	res, err := store.Append(context.Background(), e.Stream(), eventstore.Any, eventstore.EventData{
		Type: e.EventType(), Data: []byte(fmt.Sprintf(`{"schemaVersion":1,"appId":%q,"status":%q,"by":"u","at":"1970-01-01T00:00:00Z"}`, app, status)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return res.LastPosition()
}

// Where each kind of cut ends, and what Through says: before the first
// event, between commits, exactly at a commit, past the head; a time cut
// stops at the first event after the moment even when other event types
// (which app-status does not read) come first.
func TestFoldCuts(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	store := fixedClockStore(t)
	// 10:00 a1 active, 10:01 a note (not an app event), 10:02 a2 active,
	// 10:03 a1 inactive.
	p1 := appendApp(t, store, "a1", "active")
	note, err := store.Append(ctx, "notify-u", eventstore.Any, eventstore.EventData{Type: domain.TypeNotificationSent,
		Data: []byte(`{"schemaVersion":1,"to":"u","from":"v","title":"t","message":"m","type":"info","at":"1970-01-01T00:00:00Z"}`)})
	if err != nil {
		t.Fatal(err)
	}
	p2 := appendApp(t, store, "a2", "active")
	p3 := appendApp(t, store, "a1", "inactive")
	at := func(hhmm string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339, "2026-11-27T"+hhmm+":00Z")
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	cases := []struct {
		name    string
		cut     projections.Cut
		through eventstore.Position
		apps    string
	}{
		{"position before the first event", projections.AtPosition(eventstore.Start), eventstore.Start, ""},
		{"position of the first event", projections.AtPosition(p1), p1, "a1=active"},
		{"position of an event app-status does not read", projections.AtPosition(note.LastPosition()), note.LastPosition(), "a1=active"},
		{"position of the second app", projections.AtPosition(p2), p2, "a1=active a2=active"},
		{"position past the head", projections.AtPosition(eventstore.Pos(p3.Commit + 10)), p3, "a1=inactive a2=active"},
		{"time before the first event", projections.AtTime(at("09:00")), eventstore.Start, ""},
		{"time exactly at the first commit", projections.AtTime(at("10:00")), p1, "a1=active"},
		{"time between commits, in another zone", projections.AtTime(at("10:01").Add(30 * time.Second).In(time.FixedZone("X", -5*3600))), note.LastPosition(), "a1=active"},
		{"time one microsecond before a commit", projections.AtTime(at("10:02").Add(-time.Microsecond)), note.LastPosition(), "a1=active"},
		{"time after the last event", projections.AtTime(at("12:00")), p3, "a1=inactive a2=active"},
	}
	for _, c := range cases {
		db, res, err := projections.FoldInMemory(ctx, store, []projections.Projection{projections.AppStatus{}}, c.cut)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		apps, err := projections.AppsQuery{DB: db}.Handle(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cp, ok, err := projections.CheckpointQuery{DB: db}.Handle(ctx, projections.AppStatus{})
		db.Close()
		if err != nil || !ok || cp.Position != c.through || cp.Version != (projections.AppStatus{}).Version() {
			t.Errorf("%s: checkpoint %+v %v %v, want at %v", c.name, cp, ok, err, c.through)
		}
		got := ""
		for i, a := range apps {
			if i > 0 {
				got += " "
			}
			got += a.AppID + "=" + a.Status
		}
		if res.Through != c.through || got != c.apps {
			t.Errorf("%s (%v): through %v apps %q, want %v %q", c.name, c.cut, res.Through, got, c.through, c.apps)
		}
	}
}
