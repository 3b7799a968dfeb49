package pgsignal_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/schema/schematest"
	"github.com/auraos/realtime/socketadapter/pgsignal"
)

func openLiveness(t *testing.T, dsn, node string) *pgsignal.Liveness {
	t.Helper()
	l, err := pgsignal.OpenLiveness(context.Background(), dsn, node, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// A running node cannot be taken over; once it has stopped it can, and it
// cannot start again while another holds its lock.
func TestTakeOverOnlyADeadNode(t *testing.T) {
	t.Parallel()
	dsn := schematest.PostgresURL(t)
	ctx := context.Background()
	a := openLiveness(t, dsn, "a")
	b := openLiveness(t, dsn, "b")

	if _, ok, err := b.TakeOver(ctx, "a"); err != nil || ok {
		t.Fatalf("took over a running node: ok=%v err=%v", ok, err)
	}
	if _, _, err := b.TakeOver(ctx, "b"); err == nil {
		t.Fatal("a node took over itself")
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	release, ok, err := b.TakeOver(ctx, "a")
	if err != nil || !ok {
		t.Fatalf("could not take over a stopped node: ok=%v err=%v", ok, err)
	}
	if _, ok, _ := b.TakeOver(ctx, "a"); ok {
		t.Fatal("two takeovers of one node at once")
	}
	started := make(chan *pgsignal.Liveness, 1)
	go func() {
		l, err := pgsignal.OpenLiveness(ctx, dsn, "a", nil)
		if err != nil {
			t.Error(err)
		}
		started <- l
	}()
	select {
	case <-started:
		t.Fatal("the node started while another held its lock")
	case <-time.After(300 * time.Millisecond):
	}
	release()
	if l := <-started; l != nil {
		l.Close()
	}
}

// A second server with a node id that a running server holds is refused at
// once, saying so, instead of waiting for the lock.
func TestSecondServerWithTheSameNodeIDFails(t *testing.T) {
	t.Parallel()
	dsn := schematest.PostgresURL(t)
	openLiveness(t, dsn, "twin")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	l, err := pgsignal.OpenLiveness(ctx, dsn, "twin", nil)
	if err == nil {
		l.Close()
		t.Fatal("two servers hold node id twin")
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("refused after %s, want within a second", took)
	}
	if !strings.Contains(err.Error(), "node id twin is held by another running server") || domain.ErrorCode(err) != domain.ECONFLICT {
		t.Errorf("error %v, want CONFLICT: node id twin is held by another running server", err)
	}
	// Another node id on the same database is no conflict.
	openLiveness(t, dsn, "other")
}
