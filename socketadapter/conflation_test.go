package socketadapter_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/auraos/realtime/socketadapter"
	"github.com/auraos/realtime/socketadapter/sockettest"
)

// pollingClient is a raw Engine.IO polling client: it polls only when the
// test says so, so the server queues what it sends meanwhile.
type pollingClient struct {
	t   *testing.T
	url string
}

func dialPolling(t *testing.T, base string, auth map[string]any) *pollingClient {
	t.Helper()
	open := httpDo(t, "GET", base+"/socket.io/?EIO=4&transport=polling", "")
	if !strings.HasPrefix(open, "0{") {
		t.Fatalf("open packet: %q", open)
	}
	var hs struct{ Sid string }
	if err := json.Unmarshal([]byte(open[1:]), &hs); err != nil {
		t.Fatal(err)
	}
	p := &pollingClient{t: t, url: base + "/socket.io/?EIO=4&transport=polling&sid=" + hs.Sid}
	connect := "40"
	if auth != nil {
		b, _ := json.Marshal(auth)
		connect += string(b)
	}
	p.post(connect)
	if got := p.poll(); !strings.Contains(strings.Join(got, "|"), "40{") {
		t.Fatalf("connect: %q", got)
	}
	return p
}

func httpDo(t *testing.T, method, url, body string) string {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%s %s: %d %q %v", method, url, resp.StatusCode, b, err)
	}
	return string(b)
}

func (p *pollingClient) post(packet string) { httpDo(p.t, "POST", p.url, packet) }

// poll returns the packets of one poll.
func (p *pollingClient) poll() []string {
	return strings.Split(httpDo(p.t, "GET", p.url, ""), "\x1e")
}

// events returns the payloads of the named event among packets.
func events(packets []string, name string) []json.RawMessage {
	var out []json.RawMessage
	prefix := `42["` + name + `",`
	for _, pkt := range packets {
		if rest, ok := strings.CutPrefix(pkt, prefix); ok {
			var args []json.RawMessage
			if json.Unmarshal([]byte("["+rest), &args) == nil && len(args) > 0 {
				out = append(out, args[0])
			}
		}
	}
	return out
}

func listIDs(t *testing.T, raw json.RawMessage) []string {
	t.Helper()
	var users []struct{ ID string }
	if err := json.Unmarshal(raw, &users); err != nil {
		t.Fatalf("online_users %s: %v", raw, err)
	}
	ids := make([]string, len(users))
	for i, u := range users {
		ids[i] = u.ID
	}
	return ids
}

// joinUsers joins users from to n-1 over websocket, one after another,
// each seen in a list before the next, and returns their clients.
func joinUsers(t *testing.T, url string, from, n int) []*sockettest.Client {
	t.Helper()
	var out []*sockettest.Client
	for i := from; i < n; i++ {
		c := sockettest.Dial(t, url, "websocket", nil)
		uid := fmt.Sprintf("user%02d", i)
		if ack := c.EmitAck("join_user_room", map[string]any{"userId": uid, "userProfile": sockettest.Profile(uid)}); ack["ok"] != true {
			t.Fatalf("join %s: %v", uid, ack)
		}
		c.WaitEvent("online_users", func(raw json.RawMessage) bool { return len(listIDs(t, raw)) == i+1 })
		out = append(out, c)
	}
	return out
}

// A socket that does not take its packets never gets two online_users
// lists back to back where the first was still unsent when the second
// superseded it: it gets only the newest.
func TestAQueuedListIsReplacedByTheNewerOne(t *testing.T) {
	t.Parallel()
	st := startStack(t, socketadapter.Config{PingInterval: time.Minute, PingTimeout: time.Minute})
	watcher := dialPolling(t, st.URL, nil)
	const users = 12
	joinUsers(t, st.URL, 0, users) // the watcher does not poll meanwhile
	got := events(watcher.poll(), "online_users")
	if len(got) != 1 {
		t.Fatalf("the idle socket got %d online_users lists in one poll, want only the newest", len(got))
	}
	if ids := listIDs(t, got[0]); len(ids) != users {
		t.Fatalf("its list has %d users, want all %d", len(ids), users)
	}
}

// A list larger than the outbound queue's bound does not make its socket a
// slow consumer: a socket holds at most one list, so lists do not count
// towards the bound (the list of ten thousand users is megabytes, more
// than the default bound, and its clients are not slow).
func TestAListLargerThanTheQueueBoundIsNoSlowConsumer(t *testing.T) {
	t.Parallel()
	const queueMax = 2 << 10
	st := startStack(t, socketadapter.Config{ClientQueueMax: queueMax, PingInterval: time.Minute, PingTimeout: time.Minute})
	watcher := dialPolling(t, st.URL, nil)
	const users = 16
	joinUsers(t, st.URL, 0, users) // every list they wait for is larger than the bound
	got := events(watcher.poll(), "online_users")
	if len(got) != 1 {
		t.Fatalf("the idle socket got %d online_users lists in one poll, want the newest", len(got))
	}
	if len(got[0]) <= queueMax {
		t.Fatalf("the list is %d bytes, not larger than the %d-byte bound: the test proves nothing", len(got[0]), queueMax)
	}
	if ids := listIDs(t, got[0]); len(ids) != users {
		t.Fatalf("its list has %d users, want all %d", len(ids), users)
	}
	if strings.Contains(st.Log.String(), "slow consumer") {
		t.Fatalf("a socket was disconnected as a slow consumer:\n%s", st.Log.String())
	}
}

// A diff client gets one full list, then online_users_diff for a change.
func TestPresenceDiffClients(t *testing.T) {
	t.Parallel()
	st := startStack(t, socketadapter.Config{PingInterval: time.Minute, PingTimeout: time.Minute})
	watcher := dialPolling(t, st.URL, map[string]any{"presence": "diff"})
	joinUsers(t, st.URL, 0, 1)
	first := watcher.poll()
	if lists := events(first, "online_users"); len(lists) != 1 || len(listIDs(t, lists[0])) != 1 {
		t.Fatalf("first poll: %q; want one full list of one user", first)
	}
	// One change while the watcher polls: a diff.
	joinUsers(t, st.URL, 1, 2)
	deadline := time.Now().Add(10 * time.Second)
	var diffs []json.RawMessage
	for len(diffs) == 0 && time.Now().Before(deadline) {
		pkts := watcher.poll()
		if len(events(pkts, "online_users")) > 0 {
			t.Fatalf("a diff client in step got a full list: %q", pkts)
		}
		diffs = events(pkts, "online_users_diff")
	}
	if len(diffs) != 1 {
		t.Fatalf("got %d diffs, want one", len(diffs))
	}
	var d struct{ Joins, Leaves []struct{ ID string } }
	if err := json.Unmarshal(diffs[0], &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Joins) != 1 || d.Joins[0].ID != "user01" || len(d.Leaves) != 0 {
		t.Fatalf("diff %s: want user01 joining and nobody leaving", diffs[0])
	}
}
