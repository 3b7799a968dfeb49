package natssignal

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/socketadapter/natssignal/natstest"
)

func openLiveness(t *testing.T, c *Conn, prefix, node string, ttl time.Duration) *Liveness {
	t.Helper()
	l, err := OpenLiveness(context.Background(), c, LivenessOptions{Prefix: prefix, Node: node, TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// waitFor waits, generously, for something the test expects to happen.
func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s", what)
		}
	}
}

// crash makes a server's process disappear without giving up its lease:
// its connection closes, so nobody answers for it, and the lease stays
// until it expires.
func crash(c *Conn) { c.nc.Close() }

// value reads node's key through l's connection: its value, whether it is
// there, and the error when the read failed (say, while reconnecting).
func value(l *Liveness, node string) (leaseValue, bool, error) {
	e, err := l.kv.Get(context.Background(), key(node))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return leaseValue{}, false, nil
	}
	if err != nil {
		return leaseValue{}, false, err
	}
	return parseValue(e.Value()), true, nil
}

// A second server with the node id of a running one fails at once; once
// the first is gone (a crash: its lease still there, for an hour), the next
// server with that id takes the lease over at once.
func TestNodeIDHeldByARunningServer(t *testing.T) {
	t.Parallel()
	url, prefix := natstest.URL(t), natstest.Prefix(t)
	first := connect(t, Options{URL: url})
	openLiveness(t, first, prefix, "n1", time.Hour)

	_, err := OpenLiveness(context.Background(), connect(t, Options{URL: url}), LivenessOptions{Prefix: prefix, Node: "n1", TTL: time.Hour})
	if err == nil || !strings.Contains(err.Error(), "node id n1 is held by another running server") || domain.ErrorCode(err) != domain.ECONFLICT {
		t.Fatalf("want CONFLICT: node id n1 is held by another running server, got %v", err)
	}

	crash(first)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second) // far below the hour the lease would live
	defer cancel()
	l, err := OpenLiveness(ctx, connect(t, Options{URL: url}), LivenessOptions{Prefix: prefix, Node: "n1", TTL: time.Hour})
	if err != nil {
		t.Fatalf("the restart after a crash did not take the lease over: %v", err)
	}
	l.Close()
}

// Several servers notice a dead node at the same moment: exactly one claims
// it. While it ends the sessions the node cannot start; afterwards the
// others still leave it alone (the ended marker), and the node can start
// at once.
func TestClaimExactlyOnceUnderConcurrency(t *testing.T) {
	t.Parallel()
	url, prefix := natstest.URL(t), natstest.Prefix(t)
	const ttl = 2 * time.Second
	var reapers []*Liveness
	for i := range 6 {
		reapers = append(reapers, openLiveness(t, connect(t, Options{URL: url}), prefix, fmt.Sprintf("reaper-%d", i), ttl))
	}
	ghostConn := connect(t, Options{URL: url})
	ghost := openLiveness(t, ghostConn, prefix, "ghost", ttl)
	if _, ok, err := reapers[0].TakeOver(context.Background(), "ghost"); ok || err != nil {
		t.Fatalf("took over a running node: ok=%v err=%v", ok, err)
	}
	if _, _, err := ghost.TakeOver(context.Background(), "ghost"); err == nil {
		t.Fatal("a node took itself over")
	}
	crash(ghostConn)
	waitFor(t, "the dead node's lease expires", func() bool {
		_, held, err := value(reapers[0], "ghost")
		return err == nil && !held
	})
	waitFor(t, "every reaper's own lease is steady", func() bool {
		for _, r := range reapers {
			if !r.steady() {
				return false
			}
		}
		return true
	})

	var wg sync.WaitGroup
	start := make(chan struct{})
	releases := make(chan func(), len(reapers))
	for _, r := range reapers {
		wg.Go(func() {
			<-start
			release, ok, err := r.TakeOver(context.Background(), "ghost")
			if err != nil {
				t.Error(err)
			}
			if ok {
				releases <- release
			}
		})
	}
	close(start)
	wg.Wait()
	close(releases)
	var won []func()
	for r := range releases {
		won = append(won, r)
	}
	if len(won) != 1 {
		t.Fatalf("%d servers claimed the dead node, want exactly 1", len(won))
	}

	started := make(chan error, 1)
	restart := connect(t, Options{URL: url})
	go func() {
		l, err := OpenLiveness(context.Background(), restart, LivenessOptions{Prefix: prefix, Node: "ghost", TTL: ttl})
		if err == nil {
			l.Close()
		}
		started <- err
	}()
	select {
	case err := <-started:
		t.Fatalf("the node started while another server was ending its sessions: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	won[0]()
	if v, _, err := value(reapers[0], "ghost"); err != nil || v.Kind != kindEnded && v.Kind != kindRunning {
		t.Fatalf("after release the key holds %+v (%v)", v, err)
	}
	for _, r := range reapers {
		if _, ok, _ := r.TakeOver(context.Background(), "ghost"); ok {
			t.Fatal("a dead node was claimed again right after its sessions were ended")
		}
	}
	if err := <-started; err != nil {
		t.Fatalf("the node could not start after its sessions were ended: %v", err)
	}
}

// A broker restart that outlasts the leases: the servers take theirs
// again by themselves, and none takes the others' missing leases for
// deaths meanwhile.
func TestLeasesComeBackAfterABrokerOutage(t *testing.T) {
	t.Parallel()
	srv, prefix := natstest.Start(t), natstest.Prefix(t)
	const ttl = 2 * time.Second
	a := openLiveness(t, connect(t, Options{URL: srv.URL}), prefix, "a", ttl)
	b := openLiveness(t, connect(t, Options{URL: srv.URL}), prefix, "b", ttl)
	waitFor(t, "b's lease is steady", b.steady)

	srv.Stop()
	time.Sleep(ttl + time.Second) // the outage outlasts every lease
	srv.Start()
	if _, ok, _ := b.TakeOver(context.Background(), "a"); ok {
		t.Fatal("right after the outage, a node was taken for dead")
	}
	waitFor(t, "a holds its lease again", func() bool {
		v, held, err := value(b, "a")
		return err == nil && held && v.Instance == a.instance && v.Kind == kindRunning
	})
	waitFor(t, "b's lease is steady again", b.steady)
	if _, ok, err := b.TakeOver(context.Background(), "a"); ok || err != nil {
		t.Fatalf("a running node was taken over after the outage: ok=%v err=%v", ok, err)
	}
}

// A server that gives up its lease (a clean stop) can start again at once.
func TestCloseGivesTheLeaseUp(t *testing.T) {
	t.Parallel()
	url, prefix := natstest.URL(t), natstest.Prefix(t)
	c := connect(t, Options{URL: url})
	l := openLiveness(t, c, prefix, "node with spaces/and slashes", time.Hour)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	again, err := OpenLiveness(ctx, c, LivenessOptions{Prefix: prefix, Node: "node with spaces/and slashes", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	again.Close()
	if _, err := OpenLiveness(ctx, c, LivenessOptions{Prefix: prefix, Node: "x", TTL: 10 * time.Millisecond}); domain.ErrorCode(err) != domain.EINVALID {
		t.Fatalf("a 10ms TTL: want INVALID_PAYLOAD, got %v", err)
	}
}

// A broker that comes back without its storage (the bucket gone): the
// server creates the bucket again and takes its lease again.
func TestLeaseComesBackWhenTheBucketIsLost(t *testing.T) {
	t.Parallel()
	url, prefix := natstest.URL(t), natstest.Prefix(t)
	l := openLiveness(t, connect(t, Options{URL: url}), prefix, "a", 2*time.Second)
	if err := l.js.DeleteKeyValue(context.Background(), l.bucket); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the lease is held again in a new bucket", func() bool {
		v, held, err := value(l, "a")
		return err == nil && held && v.Instance == l.instance
	})
}
