package projections_test

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/shred"
	"github.com/auraos/realtime/eventstore/sqlstore"
	"github.com/auraos/realtime/projections"
	"github.com/auraos/realtime/schema/schematest"
)

// openShred wraps store with the key table in rdb, as one process does.
func openShred(t *testing.T, store eventstore.Store, rdb schematest.ReadDB) *shred.Store {
	t.Helper()
	keys, err := shred.OpenSQLKeys(testCtx(t), rdb.Writer, rdb.Reader, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := shred.New(testCtx(t), store, keys)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// forget erases uid as `auraos users forget` does, through cli: keys
// deleted, the UserForgotten appended, the live rows rewritten.
func forget(t *testing.T, cli *shred.Store, rdb schematest.ReadDB, uid string) eventstore.Position {
	t.Helper()
	ctx := testCtx(t)
	if _, err := cli.Forget(ctx, uid); err != nil {
		t.Fatal(err)
	}
	e, err := domain.ForgetUser(uid, "asked", "ops", steppingClock()())
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(e)
	res, err := cli.Append(ctx, e.Stream(), eventstore.Any, eventstore.EventData{Type: e.EventType(), Data: data})
	if err != nil {
		t.Fatal(err)
	}
	if err := projections.ForgetUser(ctx, rdb.Writer, uid); err != nil {
		t.Fatal(err)
	}
	return res.LastPosition()
}

// Live processing and a rebuild give identical rows when users are
// forgotten along the way: some of whose events predate encryption, some
// forgotten twice, some coming back as new people; the server's runners
// learn of each forget from the UserForgotten event another process
// appended.
func TestLiveEqualsRebuildWithForgottenUsers(t *testing.T) {
	t.Parallel()
	eachRandomSetting(t, 2, func(t *testing.T, seed uint64, rng *rand.Rand, store *sqlstore.Store, rdb schematest.ReadDB) {
		ctx := testCtx(t)
		// Before the upgrade: events in clear.
		randomHistory(t, rng, store, 80)
		server := openShred(t, store, rdb)
		cli := openShred(t, store, rdb)
		runners := startRunners(t, rdb.Writer, server, projections.RunnerOptions{BatchSize: 1 + rng.IntN(7)})
		randomHistory(t, rng, server, 120)
		forget(t, cli, rdb, "ana")
		randomHistory(t, rng, server, 80)
		forget(t, cli, rdb, "bo")
		forget(t, cli, rdb, "ana")
		last := randomHistory(t, rng, server, 60)
		if p := forget(t, cli, rdb, "chen"); last.Less(p) {
			last = p
		}
		waitAll(t, runners, last)
		live := dump(t, rdb.Reader)

		fresh := schematest.OpenReadDB(t, rdb.Name)
		rebuildFrom := openShred(t, store, rdb) // a process started after the forgets
		for _, p := range projections.All() {
			if _, err := projections.Rebuild(ctx, fresh.Writer, rebuildFrom, p, projections.RebuildOptions{BatchSize: 50}); err != nil {
				t.Fatal(err)
			}
		}
		rebuilt := dump(t, fresh.Reader)
		if !strings.Contains(strings.Join(live["chat_messages"], "\n"), domain.PlaceholderText) {
			t.Fatalf("seed %d: no message was forgotten: %v", seed, live["chat_messages"])
		}
		// chen was forgotten last: nothing of theirs is left (the others
		// may have come back as new people).
		for table, rows := range live {
			for _, r := range rows {
				if strings.Contains(r, "chen@example.com") || strings.Contains(r, "User chen") {
					t.Errorf("seed %d: %s still holds chen's profile: %s", seed, table, r)
				}
			}
		}
		if !reflect.DeepEqual(live, rebuilt) {
			for table := range live {
				if !reflect.DeepEqual(live[table], rebuilt[table]) {
					t.Errorf("seed %d: %s differs:\nlive    %v\nrebuilt %v", seed, table, live[table], rebuilt[table])
				}
			}
		}
	})
}

// Forgetting a user rewrites the profiles their recoverable sessions hold
// and leaves the rest of each state, and other users' sessions, alone.
func TestRecoverySessionsForgetUser(t *testing.T) {
	t.Parallel()
	for _, kind := range schematest.Kinds() {
		t.Run(kind, func(t *testing.T) {
			ctx := testCtx(t)
			rdb := schematest.OpenReadDB(t, kind)
			rs := projections.RecoverySessions{DB: rdb.Writer}
			state := func(uid string) string {
				b, _ := json.Marshal(map[string]any{
					"userId":   uid,
					"profile":  profile(uid),
					"presence": map[string]any{"sessionId": "s-" + uid, "profile": profile(uid)},
					"chats":    []any{map[string]any{"roomName": "lobby", "profile": profile(uid)}},
				})
				return string(b)
			}
			for _, uid := range []string{"ana", "bo"} {
				if err := rs.Save(ctx, projections.RecoverySession{PIDHash: "h-" + uid, SessionID: "s-" + uid, NodeID: "n", Generation: 1, Revision: 1, UserID: uid, State: state(uid)}); err != nil {
					t.Fatal(err)
				}
			}
			n, err := rs.ForgetUser(ctx, "ana")
			if err != nil || n != 1 {
				t.Fatalf("ForgetUser = %d, %v; want 1 row", n, err)
			}
			got := map[string]string{}
			rows, err := rdb.Reader.QueryContext(ctx, "SELECT user_id, state FROM recovery_sessions")
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			for rows.Next() {
				var uid, st string
				if err := rows.Scan(&uid, &st); err != nil {
					t.Fatal(err)
				}
				got[uid] = st
			}
			if strings.Contains(got["ana"], "ana@example.com") || strings.Count(got["ana"], domain.PlaceholderName) != 3 || !strings.Contains(got["ana"], `"roomName":"lobby"`) {
				t.Errorf("ana's state after the forget: %s", got["ana"])
			}
			if got["bo"] != state("bo") {
				t.Errorf("bo's state changed: %s", got["bo"])
			}
		})
	}
}
