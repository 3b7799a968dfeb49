package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/sqlstore"
	"github.com/auraos/realtime/schema/schematest"
	"github.com/auraos/realtime/socketadapter/sockettest"
)

// runServeOnce runs a serve that is expected to fail, and returns its exit
// code, its output and how long it ran.
func runServeOnce(t *testing.T, env []string, args ...string) (int, string, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, auraosBin, append([]string{"serve"}, args...)...)
	cmd.Env = append(append(os.Environ(), "AURAOS_EVENT_STORE=", "AURAOS_READ_DB="), env...)
	started := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(started)
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("serve: %v\n%s", err, out)
	}
	return code, string(out), took
}

// countEvents counts the stored events of a type in a data directory
// nobody serves any more.
func countEvents(t *testing.T, dir, eventType string) int {
	t.Helper()
	s, err := sqlstore.OpenSQLite(context.Background(), dir, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	evs, err := s.ReadAll(context.Background(), eventstore.ReadAllOptions{Filter: eventstore.Filter{EventTypes: []string{eventType}}})
	if err != nil {
		t.Fatal(err)
	}
	return len(evs)
}

// A second serve on a data directory in use is refused at once, whatever
// its port, and the first server's users notice nothing.
func TestOpsSecondServerOnOneDataDirIsRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first := startServer(t, dir)
	c := sockettest.Dial(t, first.URL, "websocket", nil)
	if ack := c.EmitAck("join_user_room", map[string]any{"userId": "alice", "userProfile": sockettest.Profile("alice")}); ack["ok"] != true {
		t.Fatalf("join: %v", ack)
	}
	firstAddr := strings.TrimPrefix(first.URL, "http://")
	for _, addr := range []string{firstAddr, freeAddr(t)} {
		code, out, took := runServeOnce(t, nil, "--addr", addr, "--data-dir", dir, "--node-id", "e2e-node")
		want := fmt.Sprintf("auraos: data directory %s is in use by another auraos (pid %d)", dir, first.cmd.Process.Pid)
		if code != 1 || !strings.Contains(out, want) {
			t.Fatalf("second serve on %s exited %d with\n%s\nwant exit 1 and %q", addr, code, out, want)
		}
		if took > 5*time.Second {
			t.Errorf("the second serve took %s to be refused; want at once", took)
		}
	}
	// alice is still online on the first server, and nobody saw her leave.
	if ack := c.EmitAck("request_system_status", nil); ack["ok"] != true {
		t.Fatalf("the first server stopped answering: %v", ack)
	}
	if left := c.Received("user_left"); len(left) != 0 {
		t.Fatalf("alice's client saw user_left %s", left)
	}
	first.stop()
	if n := countEvents(t, dir, domain.TypeNodeStarted); n != 1 {
		t.Fatalf("%d NodeStarted events in the log, want only the first server's", n)
	}
}

// A serve whose address is taken fails before it appends anything.
func TestOpsServeBindsBeforeItAppends(t *testing.T) {
	t.Parallel()
	busy := startServer(t, t.TempDir())
	dir := t.TempDir()
	code, out, _ := runServeOnce(t, nil, "--addr", strings.TrimPrefix(busy.URL, "http://"), "--data-dir", dir, "--node-id", "other")
	if code != 1 || !strings.Contains(out, "listen on") {
		t.Fatalf("serve on a taken address exited %d with\n%s\nwant exit 1 saying it could not listen", code, out)
	}
	if n := countEvents(t, dir, domain.TypeNodeStarted); n != 0 {
		t.Fatalf("the refused serve appended %d NodeStarted events", n)
	}
}

// On PostgreSQL a second server with a node id in use fails within a
// second, saying so.
func TestOpsSecondServerWithTheSameNodeIDOnPostgresFails(t *testing.T) {
	t.Parallel()
	url := schematest.PostgresURL(t) // skips without AURAOS_TEST_POSTGRES_URL
	startServer(t, t.TempDir(), "--event-store", url, "--read-db", url)
	code, out, took := runServeOnce(t, nil, "--addr", freeAddr(t), "--data-dir", t.TempDir(), "--event-store", url, "--read-db", url, "--node-id", "e2e-node")
	if code != 1 || !strings.Contains(out, "node id e2e-node is held by another running server") {
		t.Fatalf("second serve exited %d with\n%s\nwant exit 1 naming the node id", code, out)
	}
	if took > 10*time.Second {
		t.Errorf("the second serve took %s to fail", took)
	}
}
