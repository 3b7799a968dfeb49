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
