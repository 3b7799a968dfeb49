package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auraos/realtime/commands"
	"github.com/auraos/realtime/socketadapter/sockettest"
)

// aiEndpoint is a local chat-completions server for the end-to-end test: it
// answers "re: <last message>", fails with 500 when the last message says
// "fail", and holds the first request whose last message says "slow" until
// its client goes away.
type aiEndpoint struct {
	URL     string
	arrived chan string // last message of each request

	mu    sync.Mutex
	calls map[string]int // by last message
	auths []string
}

func newAIEndpoint(t *testing.T) *aiEndpoint {
	t.Helper()
	e := &aiEndpoint{arrived: make(chan string, 32), calls: map[string]int{}}
	stopped := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Messages []struct{ Content string } `json:"messages"`
		}
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path != "/v1/chat/completions" || json.Unmarshal(body, &req) != nil || len(req.Messages) == 0 {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		last := req.Messages[len(req.Messages)-1].Content
		e.mu.Lock()
		e.calls[last]++
		n := e.calls[last]
		e.auths = append(e.auths, r.Header.Get("Authorization"))
		e.mu.Unlock()
		e.arrived <- last
		switch {
		case strings.Contains(last, "fail"):
			http.Error(w, "model crashed", http.StatusInternalServerError)
		case strings.Contains(last, "slow") && n == 1:
			select {
			case <-r.Context().Done():
			case <-stopped:
			}
		default:
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"choices": []any{map[string]any{"message": map[string]any{"role": "assistant", "content": "re: " + last}}}})
		}
	}))
	e.URL = srv.URL + "/v1"
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stopped) })
	return e
}

func (e *aiEndpoint) callsFor(last string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.calls[last]
}

type wireMessage struct {
	ID          string `json:"id"`
	UserID      string `json:"userId"`
	UserName    string `json:"userName"`
	Message     string `json:"message"`
	MessageType string `json:"messageType"`
	IsAI        bool   `json:"isAI"`
}

func byID(id string) func(json.RawMessage) bool {
	return func(raw json.RawMessage) bool {
		var m wireMessage
		return json.Unmarshal(raw, &m) == nil && m.ID == id
	}
}

func wire(t *testing.T, raw json.RawMessage) wireMessage {
	t.Helper()
	var m wireMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func joinChat(t *testing.T, c *sockettest.Client, uid, room string) {
	t.Helper()
	if ack := c.EmitAck("join_chat_room", map[string]any{"roomName": room, "userProfile": sockettest.Profile(uid)}); ack["ok"] != true {
		t.Fatalf("join_chat_room: %v", ack)
	}
}

func say(t *testing.T, c *sockettest.Client, uid, room, text string) string {
	t.Helper()
	ack := c.EmitAck("send_message", map[string]any{"roomName": room, "message": text, "userProfile": sockettest.Profile(uid)})
	id, _ := ack["id"].(string)
	if ack["ok"] != true || id == "" {
		t.Fatalf("send_message %q: %v", text, ack)
	}
	return id
}

// countFromAssistant counts the new_message events from the assistant a
// client received.
func countFromAssistant(t *testing.T, c *sockettest.Client) int {
	t.Helper()
	n := 0
	for _, raw := range c.Received("new_message") {
		if wire(t, raw).UserID == commands.DefaultAssistantID {
			n++
		}
	}
	return n
}

// With an endpoint configured, "@ai …" in a room gives every member one
// stored reply and the assistant's typing; a failing endpoint gives one
// system message and the room keeps working; a crash in the middle of a
// request is answered after the restart, and nothing is answered twice.
func TestAIAssistantEndToEnd(t *testing.T) {
	t.Parallel()
	const room, key = "ai-room", "sk-e2e-never-logged-7788"
	ai := newAIEndpoint(t)
	dir := t.TempDir()
	flags := []string{"--ai-url", ai.URL, "--ai-model", "test-model", "--ai-key", key, "--ai-concurrency", "1"}
	srv := startServer(t, dir, flags...)

	alice := sockettest.Dial(t, srv.URL, "websocket", nil)
	bob := sockettest.Dial(t, srv.URL, "websocket", nil)
	joinChat(t, alice, "alice", room)
	joinChat(t, bob, "bob", room)

	hello := say(t, alice, "alice", room, "@ai hello")
	for _, c := range []*sockettest.Client{alice, bob} {
		m := wire(t, c.WaitEvent("new_message", byID(commands.AIReplyID(hello))))
		if !m.IsAI || m.MessageType != "ai_response" || m.UserID != commands.DefaultAssistantID || m.UserName != "AI Assistant" || m.Message != "re: User alice: @ai hello" {
			t.Fatalf("reply: %+v", m)
		}
		c.WaitEvent("user_typing", func(raw json.RawMessage) bool { return strings.Contains(string(raw), `"isTyping":false`) })
		var typing []string
		for _, raw := range c.Received("user_typing") {
			var p struct {
				UserID, UserName string
				IsTyping         bool
			}
			_ = json.Unmarshal(raw, &p)
			if p.UserID == commands.DefaultAssistantID && p.UserName == "AI Assistant" {
				typing = append(typing, map[bool]string{true: "typing", false: "stopped"}[p.IsTyping])
			}
		}
		if strings.Join(typing, ",") != "typing,stopped" {
			t.Fatalf("user_typing from the assistant: %v", typing)
		}
	}

	// A failing endpoint: one system message, and the room keeps working.
	failing := say(t, bob, "bob", room, "@ai please fail")
	for _, c := range []*sockettest.Client{alice, bob} {
		m := wire(t, c.WaitEvent("new_message", byID(commands.AIReplyID(failing))))
		if m.IsAI || m.MessageType != "system" || m.UserID != commands.DefaultAssistantID || !strings.Contains(m.Message, "could not answer") {
			t.Fatalf("failure notice: %+v", m)
		}
	}
	after := say(t, bob, "bob", room, "still working")
	alice.WaitEvent("new_message", byID(after))
	if n := countFromAssistant(t, alice); n != 2 {
		t.Fatalf("alice got %d messages from the assistant, want 2", n)
	}

	// A crash while a request runs: the restarted server answers it once.
	slow := say(t, alice, "alice", room, "@ai slow one")
	for last := ""; !strings.Contains(last, "slow one"); {
		select {
		case last = <-ai.arrived:
		case <-time.After(30 * time.Second):
			t.Fatal("the endpoint got no request for the slow trigger")
		}
	}
	srv.kill()
	first := srv
	srv = startServer(t, dir, flags...)
	carol := sockettest.Dial(t, srv.URL, "websocket", nil)
	joinChat(t, carol, "carol", room)
	history := carol.WaitEvent("chat_history", nil)
	if !bytes.Contains(history, []byte(commands.AIReplyID(slow))) {
		carol.WaitEvent("new_message", byID(commands.AIReplyID(slow)))
	}
	again := say(t, carol, "carol", room, "@ai after restart")
	if m := wire(t, carol.WaitEvent("new_message", byID(commands.AIReplyID(again)))); m.Message != "re: User carol: @ai after restart" {
		t.Fatalf("reply after the restart: %+v", m)
	}
	srv.stop()

	// The log holds exactly one answer per trigger; the endpoint was asked
	// again only for the request the crash cut off.
	out, err := exec.Command(auraosBin, "events", "read", "--data-dir", dir, "--type", "MessagePosted").CombinedOutput()
	if err != nil {
		t.Fatalf("events read: %v\n%s", err, out)
	}
	answers := map[string][]string{} // trigger → message types of its answers
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var l auditLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		var m struct {
			InReplyTo, MessageType string
		}
		var md struct {
			Command, CausationID string
		}
		_ = json.Unmarshal(l.Data, &m)
		_ = json.Unmarshal(l.Metadata, &md)
		if m.InReplyTo != "" {
			if md.Command != "ai_reply" || md.CausationID != m.InReplyTo || l.ID != commands.AIReplyID(m.InReplyTo) {
				t.Fatalf("answer %s: metadata %s", l.ID, l.Metadata)
			}
			answers[m.InReplyTo] = append(answers[m.InReplyTo], m.MessageType)
		}
	}
	want := map[string]string{hello: "ai_response", failing: "system", slow: "ai_response", again: "ai_response"}
	if len(answers) != len(want) {
		t.Fatalf("answers %v, want one for each of %v", answers, want)
	}
	for trigger, typ := range want {
		if got := answers[trigger]; len(got) != 1 || got[0] != typ {
			t.Fatalf("answers to %s: %v, want one %s", trigger, got, typ)
		}
	}
	for last, n := range map[string]int{"User alice: @ai hello": 1, "User bob: @ai please fail": 1, "User alice: @ai slow one": 2, "User carol: @ai after restart": 1} {
		if got := ai.callsFor(last); got != n {
			t.Errorf("endpoint asked %d times for %q, want %d", got, last, n)
		}
	}
	ai.mu.Lock()
	for _, a := range ai.auths {
		if a != "Bearer "+key {
			t.Errorf("Authorization %q", a)
		}
	}
	ai.mu.Unlock()
	if strings.Contains(first.out.String()+srv.out.String(), key) {
		t.Fatal("the server logged the AI key")
	}
}
