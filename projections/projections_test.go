package projections_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/auraos/realtime/commands"
	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/sqlstore"
	"github.com/auraos/realtime/eventstore/sqlstore/sqlstoretest"
	"github.com/auraos/realtime/projections"
	"github.com/auraos/realtime/schema/schematest"
)

func openStore(t *testing.T) *sqlstore.Store {
	t.Helper()
	s := sqlstoretest.OpenSQLite(t, sqlstore.Options{})
	return s
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// startRunners runs every projection until the test ends.
func startRunners(t *testing.T, db *bun.DB, eventLog projections.EventLog, opts projections.RunnerOptions) map[string]*projections.Runner {
	t.Helper()
	runners, _ := startStoppableRunners(t, db, eventLog, opts)
	return runners
}

// startStoppableRunners runs every projection until stop is called or the
// test ends.
func startStoppableRunners(t *testing.T, db *bun.DB, eventLog projections.EventLog, opts projections.RunnerOptions) (map[string]*projections.Runner, func()) {
	t.Helper()
	return startRunnersWith(t, db, eventLog, func(projections.Projection) projections.RunnerOptions { return opts })
}

// startRunnersWith runs every projection, each with the options optsFor
// gives it, until stop is called (more than once is fine) or the test ends.
func startRunnersWith(t *testing.T, db *bun.DB, eventLog projections.EventLog, optsFor func(projections.Projection) projections.RunnerOptions) (map[string]*projections.Runner, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	runners := map[string]*projections.Runner{}
	for _, p := range projections.All() {
		r := projections.NewRunner(db, eventLog, p, optsFor(p))
		runners[p.Name()] = r
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.Run(ctx); err != nil {
				t.Errorf("runner %s: %v", p.Name(), err)
			}
		}()
	}
	stop := func() { cancel(); wg.Wait() }
	t.Cleanup(stop)
	return runners, stop
}

func waitAll(t *testing.T, runners map[string]*projections.Runner, p eventstore.Position) {
	t.Helper()
	for name, r := range runners {
		if err := r.WaitFor(testCtx(t), p); err != nil {
			t.Fatalf("%s did not reach %v: %v", name, p, err)
		}
	}
}

func deps(store commands.EventStore, clock func() time.Time) commands.Deps {
	return commands.Deps{Store: store, Now: clock, NewID: eventstore.NewID}
}

// steppingClock returns a clock that moves one millisecond per call.
func steppingClock() func() time.Time {
	var mu sync.Mutex
	t := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(time.Millisecond)
		return t
	}
}

func cause(uid, session, command string) commands.Cause {
	return commands.Cause{Actor: domain.Actor{UserID: uid, SessionID: session, NodeID: "node-a"}, Command: command, CorrelationID: eventstore.NewID()}
}

func profile(uid string) domain.UserProfile {
	return domain.UserProfile{UID: uid, Email: uid + "@example.com", DisplayName: "User " + uid}
}

func TestCommandsShowUpInReadModels(t *testing.T) {
	t.Parallel()
	for _, kind := range schematest.Kinds() {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			store := openStore(t)
			rdb := schematest.OpenReadDB(t, kind)
			runners := startRunners(t, rdb.Writer, store, projections.RunnerOptions{})
			d := deps(store, steppingClock())

			join := func(uid, session string) commands.JoinedPresence {
				t.Helper()
				res, err := commands.JoinUserRoomHandler{Deps: d}.Handle(ctx, commands.JoinUserRoom{Cause: cause("", session, "join_user_room"), UserID: uid, Profile: profile(uid)})
				if err != nil {
					t.Fatal(err)
				}
				return res
			}
			a1 := join("alice", "s-a1")
			join("alice", "s-a2")
			b1 := join("bob", "s-b1")
			waitAll(t, runners, b1.Position)

			users, err := projections.OnlineUsersQuery{DB: rdb.Reader}.Handle(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(users) != 2 || users[0].ID != "alice" || users[1].ID != "bob" {
				t.Fatalf("online users: %+v", users)
			}
			if users[0].SocketID != "s-a2" || !users[0].ConnectedAt.Equal(a1.Event.At) || users[0].Profile.Email != "alice@example.com" || users[0].Status != "online" {
				t.Fatalf("alice: %+v (joined first at %v)", users[0], a1.Event.At)
			}

			// Messages: more than the history holds, in two rooms.
			var last commands.SentMessage
			for i := range 60 {
				last, err = commands.SendMessageHandler{Deps: d}.Handle(ctx, commands.SendMessage{
					Cause:            cause("alice", "s-a1", "send_message"),
					PostMessageInput: domain.PostMessageInput{RoomName: "general", Message: fmt.Sprintf("m%d", i), Profile: profile("alice")},
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			other, err := commands.SendMessageHandler{Deps: d}.Handle(ctx, commands.SendMessage{
				Cause:            cause("bob", "s-b1", "send_message"),
				PostMessageInput: domain.PostMessageInput{RoomName: "random", Message: "hi", Profile: profile("bob"), MessageType: "system", ClientMsgID: "c1"},
			})
			if err != nil {
				t.Fatal(err)
			}
			waitAll(t, runners, other.Position)
			hist, err := projections.ChatHistoryQuery{DB: rdb.Reader}.Handle(ctx, "general", eventstore.Start, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(hist) != 50 || hist[0].Message != "m10" || hist[49].Message != "m59" || hist[49].ID != last.Message.ID {
				t.Fatalf("history of general: %d messages, first %+v", len(hist), hist[0])
			}
			for i := 1; i < len(hist); i++ {
				if !hist[i-1].Position.Less(hist[i].Position) || hist[i].Timestamp.Before(hist[i-1].Timestamp) {
					t.Fatalf("history out of order at %d", i)
				}
			}
			bounded, err := projections.ChatHistoryQuery{DB: rdb.Reader}.Handle(ctx, "general", hist[9].Position, 5)
			if err != nil || len(bounded) != 5 || bounded[4].ID != hist[9].ID {
				t.Fatalf("history through %v: %+v %v", hist[9].Position, bounded, err)
			}
			rnd, err := projections.ChatHistoryQuery{DB: rdb.Reader}.Handle(ctx, "random", eventstore.Start, 0)
			if err != nil || len(rnd) != 1 || rnd[0].MessageType != "system" || rnd[0].UserName != "User bob" || rnd[0].IsAI {
				t.Fatalf("history of random: %+v %v", rnd, err)
			}
			// lastSeen follows the user's latest message.
			users, _ = projections.OnlineUsersQuery{DB: rdb.Reader}.Handle(ctx)
			if !users[0].LastSeen.Equal(last.Message.At) {
				t.Fatalf("alice last seen %v, last message at %v", users[0].LastSeen, last.Message.At)
			}

			// Apps.
			for _, u := range []struct{ app, status string }{{"a1", "active"}, {"a2", "inactive"}, {"a1", "inactive"}, {"a3", "active"}} {
				res, err := commands.UpdateAppStatusHandler{Deps: d}.Handle(ctx, commands.UpdateAppStatus{Cause: cause("bob", "s-b1", "update_app_status"), AppID: u.app, Status: u.status})
				if err != nil {
					t.Fatal(err)
				}
				waitAll(t, runners, res.Position)
			}
			totals, err := projections.AppTotalsQuery{DB: rdb.Reader}.Handle(ctx)
			if err != nil || totals != (projections.AppTotals{Total: 3, Active: 1, Inactive: 2}) {
				t.Fatalf("app totals: %+v %v", totals, err)
			}

			// Alice's first socket goes: she stays online with the second.
			ended, err := commands.EndSessionHandler{Deps: d}.Handle(ctx, commands.EndSession{Cause: cause("alice", "s-a1", "disconnect"), Presence: &a1.Event, Reason: domain.ReasonDisconnect})
			if err != nil {
				t.Fatal(err)
			}
			waitAll(t, runners, ended.Position)
			n, err := projections.UserSessionsQuery{DB: rdb.Reader}.Handle(ctx, "alice")
			if err != nil || n != 1 {
				t.Fatalf("alice sessions after one left: %d %v", n, err)
			}
		})
	}
}

// A server that crashed left sessions and chat memberships open; starting
// the node again ends them, once, however often it is retried.
func TestStartNodeEndsTheSessionsOfThePreviousRun(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	store := openStore(t)
	rdb := schematest.OpenReadDB(t, "sqlite")
	runners := startRunners(t, rdb.Writer, store, projections.RunnerOptions{})
	d := deps(store, steppingClock())
	for _, uid := range []string{"u1", "u2"} {
		res, err := commands.JoinUserRoomHandler{Deps: d}.Handle(ctx, commands.JoinUserRoom{Cause: cause("", "s-"+uid, "join_user_room"), UserID: uid, Profile: profile(uid)})
		if err != nil {
			t.Fatal(err)
		}
		ch, err := commands.JoinChatRoomHandler{Deps: d}.Handle(ctx, commands.JoinChatRoom{Cause: cause(uid, "s-"+uid, "join_chat_room"), RoomName: "general", Profile: profile(uid)})
		if err != nil {
			t.Fatal(err)
		}
		waitAll(t, runners, ch.Position)
		_ = res
	}
	// A session of another node is not this node's to end.
	other := cause("", "s-other", "join_user_room")
	other.Actor.NodeID = "node-b"
	res, err := commands.JoinUserRoomHandler{Deps: d}.Handle(ctx, commands.JoinUserRoom{Cause: other, UserID: "u3", Profile: profile("u3")})
	if err != nil {
		t.Fatal(err)
	}
	waitAll(t, runners, res.Position)

	start := commands.StartNodeHandler{Deps: d, Sessions: projections.OpenSessionsQuery{DB: rdb.Reader}}
	first, err := start.Handle(ctx, commands.StartNode{Cause: cause("", "", "server_start"), NodeID: "node-a"})
	if err != nil {
		t.Fatal(err)
	}
	if first.EndedSessions != 2 || first.EndedMemberships != 2 {
		t.Fatalf("ended %d sessions and %d memberships, want 2 and 2", first.EndedSessions, first.EndedMemberships)
	}
	waitAll(t, runners, first.Position)
	users, err := projections.OnlineUsersQuery{DB: rdb.Reader}.Handle(ctx)
	if err != nil || len(users) != 1 || users[0].ID != "u3" {
		t.Fatalf("online after restart: %+v %v", users, err)
	}
	again, err := start.Handle(ctx, commands.StartNode{Cause: cause("", "", "server_start"), NodeID: "node-a"})
	if err != nil || again.EndedSessions != 0 || again.EndedMemberships != 0 {
		t.Fatalf("second start ended %+v, %v", again, err)
	}
	left, err := store.ReadAll(ctx, eventstore.ReadAllOptions{Filter: eventstore.Filter{EventTypes: []string{domain.TypePresenceLeft, domain.TypeChatMemberLeft}}})
	if err != nil || len(left) != 4 {
		t.Fatalf("stored %d leave events, want 4 (%v)", len(left), err)
	}
	for _, e := range left {
		if !strings.Contains(string(e.Data), domain.ReasonServerRestart) || !strings.Contains(string(e.Metadata), `"command":"server_start"`) {
			t.Fatalf("leave event %s %s", e.Data, e.Metadata)
		}
	}
}

// Another server ends a lost node's sessions, and only that node's; a node
// it lists races with itself harmlessly, since the ends are idempotent.
func TestEndLostNodeEndsOnlyThatNodesSessions(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	store := openStore(t)
	rdb := schematest.OpenReadDB(t, "sqlite")
	runners := startRunners(t, rdb.Writer, store, projections.RunnerOptions{})
	d := deps(store, steppingClock())
	joins := []struct{ uid, node string }{{"u1", "lost"}, {"u2", "alive"}}
	for _, j := range joins {
		c := cause("", "s-"+j.uid, "join_user_room")
		c.Actor.NodeID = j.node
		join := commands.JoinUserRoomHandler{Deps: d}
		if _, err := join.Handle(ctx, commands.JoinUserRoom{Cause: c, UserID: j.uid, Profile: profile(j.uid)}); err != nil {
			t.Fatal(err)
		}
		c = cause(j.uid, "s-"+j.uid, "join_chat_room")
		c.Actor.NodeID = j.node
		res, err := commands.JoinChatRoomHandler{Deps: d}.Handle(ctx, commands.JoinChatRoom{Cause: c, RoomName: "general", Profile: profile(j.uid)})
		if err != nil {
			t.Fatal(err)
		}
		waitAll(t, runners, res.Position)
	}
	sessions := projections.OpenSessionsQuery{DB: rdb.Reader}
	nodes, err := sessions.NodesWithOpenSessions(ctx)
	if err != nil || !slices.Equal(nodes, []string{"alive", "lost"}) {
		t.Fatalf("nodes with open sessions: %v %v", nodes, err)
	}
	end := commands.EndLostNodeHandler{Deps: d, Sessions: sessions}
	if _, err := end.Handle(ctx, commands.EndLostNode{Cause: cause("", "", "node_down"), NodeID: ""}); err == nil {
		t.Fatal("an empty node id was accepted")
	}
	ended, err := end.Handle(ctx, commands.EndLostNode{Cause: cause("", "", "node_down"), NodeID: "lost"})
	if err != nil || ended.EndedSessions != 1 || ended.EndedMemberships != 1 {
		t.Fatalf("ended %+v, %v; want 1 session and 1 membership", ended, err)
	}
	// Before the read model has caught up, a second reaper ends them again:
	// the same event ids, nothing new stored.
	if _, err := end.Handle(ctx, commands.EndLostNode{Cause: cause("", "", "node_down"), NodeID: "lost"}); err != nil {
		t.Fatal(err)
	}
	waitAll(t, runners, ended.Position)
	users, err := projections.OnlineUsersQuery{DB: rdb.Reader}.Handle(ctx)
	if err != nil || len(users) != 1 || users[0].ID != "u2" {
		t.Fatalf("online after the node was lost: %+v %v", users, err)
	}
	if nodes, _ := sessions.NodesWithOpenSessions(ctx); !slices.Equal(nodes, []string{"alive"}) {
		t.Fatalf("nodes with open sessions after: %v", nodes)
	}
	left, err := store.ReadAll(ctx, eventstore.ReadAllOptions{Filter: eventstore.Filter{EventTypes: []string{domain.TypePresenceLeft, domain.TypeChatMemberLeft}}})
	if err != nil || len(left) != 2 {
		t.Fatalf("stored %d leave events, want 2 (%v)", len(left), err)
	}
	for _, e := range left {
		if !strings.Contains(string(e.Data), domain.ReasonNodeDown) {
			t.Fatalf("leave event without the node_down reason: %s", e.Data)
		}
	}
}

// failingProjection wraps a projection and fails the first time it is asked
// to apply a batch holding the event at a given position, after applying the
// batch: the transaction must roll back, as a crash mid-batch would leave it.
type failingProjection struct {
	projections.Projection
	mu     sync.Mutex
	at     int
	failed bool
}

func (f *failingProjection) Apply(ctx context.Context, tx bun.Tx, t projections.Tables, events []projections.Envelope) error {
	if err := f.Projection.Apply(ctx, tx, t, events); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range events {
		if int(e.Position.Commit) == f.at && !f.failed {
			f.failed = true
			return errors.New("simulated crash in the middle of a batch")
		}
	}
	return nil
}

func TestRunnerAppliesEachEventOnceAcrossFailures(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	store := openStore(t)
	rdb := schematest.OpenReadDB(t, "sqlite")
	d := deps(store, steppingClock())
	var last eventstore.Position
	for i := range 120 {
		res, err := commands.SendMessageHandler{Deps: d}.Handle(ctx, commands.SendMessage{
			Cause:            cause("u", "s", "send_message"),
			PostMessageInput: domain.PostMessageInput{RoomName: fmt.Sprintf("r%d", i%3), Message: fmt.Sprint(i), Profile: profile("u")},
		})
		if err != nil {
			t.Fatal(err)
		}
		last = res.Position
	}
	fp := &failingProjection{Projection: projections.ChatHistory{}, at: 75}
	r := projections.NewRunner(rdb.Writer, store, fp, projections.RunnerOptions{BatchSize: 16})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	if err := r.WaitFor(ctx, last); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !fp.failed {
		t.Fatal("the simulated failure never happened")
	}
	var n, distinct int
	rdb.Reader.QueryRowContext(ctx, "SELECT count(*), count(DISTINCT id) FROM chat_messages").Scan(&n, &distinct)
	if n != 120 || distinct != 120 {
		t.Fatalf("%d rows, %d distinct, want 120", n, distinct)
	}
	// Restarting from the stored checkpoint applies nothing again.
	r2 := projections.NewRunner(rdb.Writer, store, projections.ChatHistory{}, projections.RunnerOptions{})
	rctx2, cancel2 := context.WithCancel(ctx)
	go func() { done <- r2.Run(rctx2) }()
	if err := r2.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	cancel2()
	<-done
	rdb.Reader.QueryRowContext(ctx, "SELECT count(*) FROM chat_messages").Scan(&n)
	if n != 120 {
		t.Fatalf("after restart %d rows", n)
	}
}

// dump returns every row of the read-model tables, in primary-key order, as
// text.
func dump(t *testing.T, db bun.IDB) map[string][]string {
	t.Helper()
	order := map[string]string{
		"online_sessions": "session_id", "chat_members": "room_name, session_id",
		"chat_messages": "commit_position, prepare_position", "app_status": "app_id",
	}
	out := map[string][]string{}
	for table, by := range order {
		rows, err := db.QueryContext(context.Background(), "SELECT * FROM "+table+" ORDER BY "+by)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			for i, v := range vals {
				if bs, ok := v.([]byte); ok {
					v = string(bs)
				}
				fmt.Fprintf(&b, "%s=%v;", cols[i], v)
			}
			out[table] = append(out[table], b.String())
		}
		rows.Close()
	}
	return out
}

// randomHistory appends a random but plausible sequence of events through
// the command handlers, in random concurrent bursts, while the caller's
// runners process them live.
func randomHistory(t *testing.T, rng *rand.Rand, store commands.EventStore, n int) eventstore.Position {
	t.Helper()
	ctx := testCtx(t)
	d := deps(store, steppingClock())
	type session struct {
		presence *domain.PresenceJoined
		chats    []domain.ChatMemberJoined
		uid      string
	}
	var live []*session
	var last eventstore.Position
	users := []string{"ana", "bo", "chen", "dee", "eli"}
	rooms := []string{"general", "random", "ops"}
	note := func(p eventstore.Position, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if last.Less(p) {
			last = p
		}
	}
	for i := 0; i < n; i++ {
		switch k := rng.IntN(10); {
		case k < 2 || len(live) == 0:
			uid := users[rng.IntN(len(users))]
			sid := fmt.Sprintf("sock-%d", i)
			res, err := commands.JoinUserRoomHandler{Deps: d}.Handle(ctx, commands.JoinUserRoom{Cause: cause("", sid, "join_user_room"), UserID: uid, Profile: profile(uid)})
			note(res.Position, err)
			ev := res.Event
			live = append(live, &session{presence: &ev, uid: uid})
		case k < 4:
			s := live[rng.IntN(len(live))]
			res, err := commands.JoinChatRoomHandler{Deps: d}.Handle(ctx, commands.JoinChatRoom{Cause: cause(s.uid, s.presence.SessionID, "join_chat_room"), RoomName: rooms[rng.IntN(len(rooms))], Profile: profile(s.uid)})
			note(res.Position, err)
			s.chats = append(s.chats, res.Event)
		case k < 7:
			s := live[rng.IntN(len(live))]
			res, err := commands.SendMessageHandler{Deps: d}.Handle(ctx, commands.SendMessage{
				Cause:            cause(s.uid, s.presence.SessionID, "send_message"),
				PostMessageInput: domain.PostMessageInput{RoomName: rooms[rng.IntN(len(rooms))], Message: fmt.Sprintf("msg %d ✓", i), Profile: profile(s.uid)},
			})
			note(res.Position, err)
		case k < 8:
			res, err := commands.UpdateAppStatusHandler{Deps: d}.Handle(ctx, commands.UpdateAppStatus{Cause: cause("ana", "x", "update_app_status"), AppID: fmt.Sprintf("app-%d", rng.IntN(4)), Status: []string{"active", "inactive"}[rng.IntN(2)]})
			note(res.Position, err)
		default:
			idx := rng.IntN(len(live))
			s := live[idx]
			res, err := commands.EndSessionHandler{Deps: d}.Handle(ctx, commands.EndSession{Cause: cause(s.uid, s.presence.SessionID, "disconnect"), Presence: s.presence, Chats: s.chats, Reason: domain.ReasonDisconnect})
			note(res.Position, err)
			live = append(live[:idx], live[idx+1:]...)
		}
	}
	return last
}

// eachRandomSetting runs check for every read-database kind (the kinds in
// parallel) and seeds 1 to seeds, each with a fresh event store and read
// database and a random source of its own.
func eachRandomSetting(t *testing.T, seeds uint64, check func(t *testing.T, seed uint64, rng *rand.Rand, store *sqlstore.Store, rdb schematest.ReadDB)) {
	t.Helper()
	for _, kind := range schematest.Kinds() {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			for seed := uint64(1); seed <= seeds; seed++ {
				check(t, seed, rand.New(rand.NewPCG(seed, seed*7919)), openStore(t), schematest.OpenReadDB(t, kind))
			}
		})
	}
}

// Live processing and a rebuild give identical rows, for random histories.
func TestLiveEqualsRebuild(t *testing.T) {
	t.Parallel()
	eachRandomSetting(t, 3, func(t *testing.T, seed uint64, rng *rand.Rand, store *sqlstore.Store, rdb schematest.ReadDB) {
		ctx := testCtx(t)
		// Small, random batch sizes make live processing cut the log
		// differently from the rebuild.
		runners := startRunners(t, rdb.Writer, store, projections.RunnerOptions{BatchSize: 1 + rng.IntN(7)})
		last := randomHistory(t, rng, store, 300)
		waitAll(t, runners, last)
		live := dump(t, rdb.Reader)

		if len(live["chat_messages"]) == 0 || len(live["app_status"]) == 0 {
			t.Fatalf("seed %d: the history made no rows: %v", seed, live)
		}

		// One projection at a time, and all of them from one read.
		oneByOne := schematest.OpenReadDB(t, rdb.Name)
		for _, p := range projections.All() {
			if _, err := projections.Rebuild(ctx, oneByOne.Writer, store, p, projections.RebuildOptions{BatchSize: 50}); err != nil {
				t.Fatal(err)
			}
		}
		together := schematest.OpenReadDB(t, rdb.Name)
		if _, err := projections.RebuildAll(ctx, together.Writer, store, projections.All(), projections.RebuildOptions{BatchSize: 1 + rng.IntN(60)}); err != nil {
			t.Fatal(err)
		}
		for name, rebuilt := range map[string]map[string][]string{"one by one": dump(t, oneByOne.Reader), "together": dump(t, together.Reader)} {
			for table := range live {
				if !reflect.DeepEqual(live[table], rebuilt[table]) {
					t.Errorf("seed %d, rebuilt %s: %s differs:\nlive    %v\nrebuilt %v", seed, name, table, live[table], rebuilt[table])
				}
			}
		}
	})
}

// A rebuild swaps in beside a running runner: the runner carries on from the
// swapped-in checkpoint and the rows equal a fresh rebuild.
func TestRebuildBesideARunningRunner(t *testing.T) {
	t.Parallel()
	for _, kind := range schematest.Kinds() {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			store := openStore(t)
			rdb := schematest.OpenReadDB(t, kind)
			runners, stop := startStoppableRunners(t, rdb.Writer, store, projections.RunnerOptions{})
			rng := rand.New(rand.NewPCG(42, 43))
			randomHistory(t, rng, store, 150)

			var wg sync.WaitGroup
			wg.Add(1)
			go func() { // more events while the rebuild runs
				defer wg.Done()
				randomHistory(t, rand.New(rand.NewPCG(7, 8)), store, 100)
			}()
			var progressed bool
			sum, err := projections.RebuildAll(ctx, rdb.Writer, store, projections.All(), projections.RebuildOptions{BatchSize: 20, Progress: func(_, _ eventstore.Position) { progressed = true }})
			if err != nil {
				t.Fatalf("rebuild: %v", err)
			}
			if !progressed || sum.Read == 0 || len(sum.Projections) != len(projections.All()) {
				t.Fatalf("rebuild: progressed %v, %+v", progressed, sum)
			}
			for _, res := range sum.Projections {
				if res.Through.IsZero() || res.Events == 0 {
					t.Fatalf("rebuild %s: %+v", res.Projection, res)
				}
			}
			wg.Wait()
			last := randomHistory(t, rand.New(rand.NewPCG(9, 10)), store, 50)
			waitAll(t, runners, last)
			stop() // a stopping runner writes down how far it has read

			fresh := schematest.OpenReadDB(t, kind)
			for _, p := range projections.All() {
				if _, err := projections.Rebuild(ctx, fresh.Writer, store, p, projections.RebuildOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			got, want := dump(t, rdb.Reader), dump(t, fresh.Reader)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("rows after a rebuild beside the runner differ from a fresh rebuild:\n%v\n%v", got, want)
			}
			// The swapped tables keep their indexes.
			st, err := projections.StatusQuery{DB: rdb.Reader, EventLog: store}.Handle(ctx, projections.All())
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range st {
				if s.Lag != 0 || s.NeedsRebuild || s.RebuildInProgress || !s.Started {
					t.Fatalf("status after rebuild: %+v", s)
				}
			}
		})
	}
}

// A live runner touches a projection's tables in event order, so it can
// hold one table the swap needs while it waits for one the swap holds. The
// swap gives way instead of deadlocking, and succeeds once the runner's
// transaction is done.
func TestRebuildSwapGivesWayToATransactionHoldingOneLiveTable(t *testing.T) {
	t.Parallel()
	if os.Getenv(schematest.PostgresEnv) == "" {
		t.Skip("PostgreSQL only: SQLite has one writer and no table locks")
	}
	ctx := testCtx(t)
	store := openStore(t)
	rdb := schematest.OpenReadDB(t, "postgres")
	randomHistory(t, rand.New(rand.NewPCG(3, 4)), store, 30)

	holder, err := rdb.Writer.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback()
	if _, err := holder.ExecContext(ctx, "LOCK TABLE chat_members IN ROW EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	rebuilt := make(chan error, 1)
	go func() {
		_, err := projections.RebuildAll(ctx, rdb.Writer, store, []projections.Projection{projections.OnlineUsers{}}, projections.RebuildOptions{})
		rebuilt <- err
	}()
	// Wait until the swap holds online_sessions and waits for chat_members.
	for {
		var waiting int
		err := rdb.Reader.NewRaw(`SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
			WHERE l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
			AND c.relnamespace = current_schema()::regnamespace AND c.relname = 'chat_members'
			AND l.mode = 'AccessExclusiveLock' AND NOT l.granted`).Scan(ctx, &waiting)
		if err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		select {
		case err := <-rebuilt:
			t.Fatalf("rebuild ended before it waited for the held table: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	// The holder now needs the table the swap holds: a cycle, unless the
	// swap gives way.
	if _, err := holder.ExecContext(ctx, "LOCK TABLE online_sessions IN ROW EXCLUSIVE MODE"); err != nil {
		t.Fatalf("the holder's second lock: %v", err)
	}
	if err := holder.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-rebuilt; err != nil {
		t.Fatalf("rebuild beside the holder: %v", err)
	}
}

type bumped struct{ projections.ChatHistory }

func (bumped) Version() int { return 99 }

func TestVersionChangeNeedsRebuild(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	store := openStore(t)
	rdb := schematest.OpenReadDB(t, "sqlite")
	if err := projections.Prepare(ctx, rdb.Writer, projections.ChatHistory{}); err != nil {
		t.Fatal(err)
	}
	r := projections.NewRunner(rdb.Writer, store, bumped{}, projections.RunnerOptions{})
	if err := r.Run(ctx); !errors.Is(err, projections.ErrNeedsRebuild) {
		t.Fatalf("run with a new version: %v", err)
	}
	st, err := projections.StatusQuery{DB: rdb.Reader, EventLog: store}.Handle(ctx, []projections.Projection{bumped{}})
	if err != nil || !st[0].NeedsRebuild || st[0].StoredVersion != 1 || st[0].Version != 99 {
		t.Fatalf("status: %+v %v", st, err)
	}
	if _, err := projections.Rebuild(ctx, rdb.Writer, store, bumped{}, projections.RebuildOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := projections.Prepare(ctx, rdb.Writer, bumped{}); err != nil {
		t.Fatalf("after rebuild: %v", err)
	}
}

func TestByName(t *testing.T) {
	t.Parallel()
	ps, err := projections.ByName("chat-history", "app-status")
	if err != nil || len(ps) != 2 || ps[0].Name() != "chat-history" {
		t.Fatalf("%v %v", ps, err)
	}
	if _, err := projections.ByName("nope"); domain.ErrorCode(err) != domain.EINVALID {
		t.Fatalf("unknown: %v", err)
	}
}
