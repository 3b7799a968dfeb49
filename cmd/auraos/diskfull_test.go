package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/auraos/realtime/socketadapter/sockettest"
)

// smallDisk mounts a tmpfs of size at a fresh directory for the test, or
// skips the test where mounting is not allowed (not root).
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("disk-full test skipped: cannot mount a small tmpfs here (%v: %s)", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

// fill writes a file until the disk is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return
			}
			t.Fatal(err)
		}
	}
}

// With the disk full, /readyz turns 503 while appends fail, the end of a
// session that cannot be stored is kept and retried, and once there is
// room again both recover by themselves: the user who left is seen to
// leave and nobody stays online who has gone.
func TestOpsDiskFullSessionEndsAreRetried(t *testing.T) {
	t.Parallel()
	disk := smallDisk(t, "24m")
	dir := filepath.Join(disk, "data")
	s := startServer(t, dir)
	alice := sockettest.Dial(t, s.URL, "websocket", nil)
	bob := sockettest.Dial(t, s.URL, "websocket", nil)
	for c, uid := range map[*sockettest.Client]string{alice: "alice", bob: "bob"} {
		if ack := c.EmitAck("join_user_room", map[string]any{"userId": uid, "userProfile": sockettest.Profile(uid)}); ack["ok"] != true {
			t.Fatalf("join %s: %v", uid, ack)
		}
		if ack := c.EmitAck("join_chat_room", map[string]any{"roomName": "lobby", "userProfile": sockettest.Profile(uid)}); ack["ok"] != true {
			t.Fatalf("%s joins the room: %v", uid, ack)
		}
	}
	filler := filepath.Join(disk, "filler")
	fill(t, filler)
	// Appends fail once what SQLite had reserved is used up.
	text := strings.Repeat("x", 1000)
	refused := false
	for i := 0; i < 2000 && !refused; i++ {
		ack, err := bob.TryEmitAck("send_message", map[string]any{"roomName": "lobby", "message": text, "userProfile": sockettest.Profile("bob")})
		if err != nil {
			t.Fatal(err)
		}
		if ack["ok"] != true {
			raw := string(mustJSON(t, ack))
			if !strings.Contains(raw, "UNAVAILABLE") {
				t.Fatalf("send_message on a full disk: %v, want UNAVAILABLE", ack)
			}
			// Only the append's own refusal is what this test is about; on
			// a loaded machine a step before it (a read, a deadline) may
			// give up first, and the next message tries again.
			refused = strings.Contains(raw, "full")
		}
	}
	if !refused {
		t.Fatal("appends kept succeeding on a full disk")
	}
	if code, body := getStatus(t, s.URL+"/readyz"); code != 503 || !strings.Contains(strings.Join(asStrings(body["reasons"]), " "), "appends are failing") {
		t.Fatalf("/readyz on a full disk: %d %v, want 503 saying appends are failing", code, body)
	}

	alice.S.Disconnect() // she leaves; her leave cannot be stored yet
	deadline := time.Now().Add(10 * time.Second)
	for scrape(t, s.URL)["auraos_session_end_backlog"] < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the end of alice's session was not queued for a retry")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	bob.WaitEvent("user_left", func(raw json.RawMessage) bool { return string(raw) == `"alice"` })
	bob.WaitEvent("user_left_chat", func(raw json.RawMessage) bool { return strings.Contains(string(raw), `"alice"`) })
	deadline = time.Now().Add(20 * time.Second)
	for {
		code, body := getStatus(t, s.URL+"/readyz")
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz did not recover once the disk had room: %d %v", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := scrape(t, s.URL)["auraos_session_end_backlog"]; n != 0 {
		t.Fatalf("session end backlog %v after the disk had room, want 0", n)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func asStrings(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}
