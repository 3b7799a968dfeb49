package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/auraos/realtime/socketadapter/sockettest"
)

type ackedMessage struct {
	ID       string
	Position float64
}

// A burst of acknowledged messages, then kill -9 in the middle of it, then a
// restart on the same data: every acknowledged message is in its room's
// chat_history, in order, and nobody from before is online.
func TestAcknowledgedMessagesSurviveKill9(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := startServer(t, dir)

	const senders, perSender, inFlight = 5, 45, 4
	var mu sync.Mutex
	acked := map[string][]ackedMessage{} // room → acks
	total := 0
	killAt := 100
	killed := make(chan struct{})
	var killOnce sync.Once

	clients := make([]*sockettest.Client, senders)
	for i := range senders {
		uid, room := fmt.Sprintf("burst-%d", i), fmt.Sprintf("burst-room-%d", i)
		clients[i] = sockettest.Dial(t, srv.URL, "websocket", nil)
		clients[i].EmitAck("join_user_room", map[string]any{"userId": uid, "userProfile": sockettest.Profile(uid)})
		clients[i].EmitAck("join_chat_room", map[string]any{"roomName": room, "userProfile": sockettest.Profile(uid)})
	}
	var wg sync.WaitGroup
	for i, c := range clients {
		uid, room := fmt.Sprintf("burst-%d", i), fmt.Sprintf("burst-room-%d", i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem := make(chan struct{}, inFlight)
			var inner sync.WaitGroup
			for n := range perSender {
				select {
				case <-killed:
				case sem <- struct{}{}:
				}
				select {
				case <-killed:
					inner.Wait()
					return
				default:
				}
				inner.Add(1)
				go func() {
					defer inner.Done()
					defer func() { <-sem }()
					ack, err := c.TryEmitAck("send_message", map[string]any{"roomName": room, "message": fmt.Sprintf("burst %d", n), "userProfile": sockettest.Profile(uid)})
					if err != nil || ack["ok"] != true {
						return // the server died before acknowledging: not promised
					}
					mu.Lock()
					acked[room] = append(acked[room], ackedMessage{ID: ack["id"].(string), Position: ack["position"].(float64)})
					total++
					reached := total >= killAt
					mu.Unlock()
					if reached {
						killOnce.Do(func() { srv.kill(); close(killed) })
					}
				}()
			}
			inner.Wait()
		}()
	}
	wg.Wait()
	killOnce.Do(func() { srv.kill(); close(killed) })
	mu.Lock()
	defer mu.Unlock()
	if total < killAt {
		t.Fatalf("only %d messages were acknowledged before the kill", total)
	}

	// Restart on the same data: once the presence grace has passed (the
	// killed server's clients could have recovered within it), nobody from
	// before is online.
	srv2 := startServer(t, dir, "--presence-grace", "1s")
	obs := sockettest.Dial(t, srv2.URL, "websocket", nil)
	obs.EmitAck("join_user_room", map[string]any{"userId": "observer", "userProfile": sockettest.Profile("observer")})
	obs.WaitEvent("online_users", func(raw json.RawMessage) bool {
		var users []struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(raw, &users); err != nil {
			t.Fatal(err)
		}
		return len(users) == 1 && users[0].ID == "observer"
	})
	checked := 0
	for room, msgs := range acked {
		sort.Slice(msgs, func(i, j int) bool { return msgs[i].Position < msgs[j].Position })
		obs.EmitAck("join_chat_room", map[string]any{"roomName": room, "userProfile": sockettest.Profile("observer")})
		raw := obs.WaitEvent("chat_history", func(raw json.RawMessage) bool {
			return bytes.Contains(raw, []byte(room)) || string(raw) == "[]"
		})
		var history []struct {
			ID       string `json:"id"`
			RoomName string `json:"roomName"`
		}
		if err := json.Unmarshal(raw, &history); err != nil {
			t.Fatal(err)
		}
		index := map[string]int{}
		for i, h := range history {
			index[h.ID] = i
		}
		last := -1
		for _, m := range msgs {
			i, ok := index[m.ID]
			if !ok {
				t.Fatalf("acknowledged message %s (position %v) of %s is missing from chat_history after kill -9", m.ID, m.Position, room)
			}
			if i <= last {
				t.Fatalf("acknowledged messages of %s are out of order in chat_history", room)
			}
			last = i
			checked++
		}
	}
	if checked != total {
		t.Fatalf("checked %d of %d acknowledged messages", checked, total)
	}

	// The log records that the crashed run's sessions ended with the restart.
	out, err := exec.Command(auraosBin, "events", "read", "--data-dir", dir, "--type", "PresenceLeft").CombinedOutput()
	if err != nil {
		t.Fatalf("events read: %v\n%s", err, out)
	}
	if n := strings.Count(string(out), `"reason":"server_restart"`); n != senders {
		t.Fatalf("%d sessions ended by the restart, want %d:\n%s", n, senders, out)
	}
	srv2.stop()
}
