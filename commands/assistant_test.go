package commands_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auraos/realtime/internal/syncbuf"

	"github.com/auraos/realtime/commands"
	"github.com/auraos/realtime/commands/openai"
	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/sqlstore"
	"github.com/auraos/realtime/eventstore/sqlstore/sqlstoretest"
)

const aiKey = "sk-assistant-test-key-4242"

// chatRequest is a chat-completions request as the fake endpoint decodes it.
type chatRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role, Content, Name string
	} `json:"messages"`
}

func (r chatRequest) last() string { return r.Messages[len(r.Messages)-1].Content }

// endpoint is a local server speaking the chat-completions format; behave
// answers each request (after it is recorded and announced on arrived).
type endpoint struct {
	URL     string
	arrived chan chatRequest
	stopped chan struct{} // closed when the test ends: releases blocked handlers

	mu    sync.Mutex
	reqs  []chatRequest
	auths []string
}

func newEndpoint(t *testing.T, behave func(w http.ResponseWriter, r *http.Request, req chatRequest, e *endpoint)) *endpoint {
	t.Helper()
	e := &endpoint{arrived: make(chan chatRequest, 64), stopped: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req chatRequest
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path != "/v1/chat/completions" || json.Unmarshal(body, &req) != nil || len(req.Messages) == 0 {
			http.Error(w, "bad request: "+r.URL.Path, http.StatusBadRequest)
			return
		}
		e.mu.Lock()
		e.reqs = append(e.reqs, req)
		e.auths = append(e.auths, r.Header.Get("Authorization"))
		e.mu.Unlock()
		e.arrived <- req
		behave(w, r, req, e)
	}))
	e.URL = srv.URL + "/v1"
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(e.stopped) }) // runs first
	return e
}

func (e *endpoint) requests() []chatRequest {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]chatRequest(nil), e.reqs...)
}

// complete writes a chat completion answering text.
func complete(w http.ResponseWriter, text string) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"object":  "chat.completion",
		"choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": text}, "finish_reason": "stop"}},
	})
}

// answerWith answers every request with the same text.
func answerWith(text string) func(http.ResponseWriter, *http.Request, chatRequest, *endpoint) {
	return func(w http.ResponseWriter, _ *http.Request, _ chatRequest, _ *endpoint) { complete(w, text) }
}

// memCheckpoints is an in-memory reactor checkpoint store. While frozen,
// saves are dropped, as if the process died before writing them; onSave
// sees every save that is kept.
type memCheckpoints struct {
	mu     sync.Mutex
	pos    map[string]eventstore.Position
	frozen bool
	onSave func(eventstore.Position)
	saved  chan struct{} // closed and replaced at each kept save
}

func (m *memCheckpoints) Load(_ context.Context, name string) (eventstore.Position, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.pos[name]
	return p, ok, nil
}

func (m *memCheckpoints) Save(_ context.Context, name string, p eventstore.Position) error {
	m.mu.Lock()
	frozen, hook := m.frozen, m.onSave
	m.mu.Unlock()
	if frozen {
		return nil
	}
	if hook != nil {
		hook(p)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pos == nil {
		m.pos = map[string]eventstore.Position{}
	}
	m.pos[name] = p
	if m.saved != nil {
		close(m.saved)
	}
	m.saved = make(chan struct{})
	return nil
}

// waitPast waits until the assistant's checkpoint is at or after p.
func (m *memCheckpoints) waitPast(t *testing.T, p eventstore.Position) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		m.mu.Lock()
		cp, ch := m.pos["ai-assistant"], m.saved
		if ch == nil {
			ch = make(chan struct{})
			m.saved = ch
		}
		m.mu.Unlock()
		if !cp.Less(p) {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("checkpoint %v did not reach %v", cp, p)
		}
	}
}

func (m *memCheckpoints) freeze(f bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.frozen = f
}

// typingCall is one AssistantTyping call.
type typingCall struct {
	room, userID, userName string
	isTyping               bool
}

type typingLog struct {
	mu    sync.Mutex
	calls []typingCall
}

func (l *typingLog) AssistantTyping(room, userID, userName string, isTyping bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, typingCall{room, userID, userName, isTyping})
}

func (l *typingLog) get() []typingCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]typingCall(nil), l.calls...)
}

// aiRig is an event store with the assistant's collaborators.
type aiRig struct {
	t      *testing.T
	store  *sqlstore.Store
	deps   commands.Deps
	cps    *memCheckpoints
	typing *typingLog
	logs   *syncbuf.Buffer
}

func newAIRig(t *testing.T) *aiRig {
	t.Helper()
	s := sqlstoretest.OpenSQLite(t, sqlstore.Options{})
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	return &aiRig{t: t, store: s, deps: commands.Deps{Store: s, Now: func() time.Time { return now }, NewID: eventstore.NewID},
		cps: &memCheckpoints{}, typing: &typingLog{}, logs: &syncbuf.Buffer{}}
}

// start runs an assistant against url until the returned stop (or the end
// of the test); its checkpoint exists when start returns.
func (r *aiRig) start(url string, cfg commands.AssistantConfig, timeout time.Duration) (stop func()) {
	r.t.Helper()
	client, err := openai.New(openai.Config{URL: url, Model: "test-model", Key: aiKey, Timeout: timeout})
	if err != nil {
		r.t.Fatal(err)
	}
	if cfg.NodeID == "" {
		cfg.NodeID = "node-1"
	}
	cfg.Logger = slog.New(slog.NewTextHandler(r.logs, nil))
	a := &commands.Assistant{Deps: r.deps, EventLog: r.store, Completer: client, Checkpoints: r.cps, Typing: r.typing, Config: cfg}
	if _, err := a.Prepare(context.Background()); err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				r.t.Errorf("Run returned %v", err)
			}
		})
	}
	r.t.Cleanup(stop)
	return stop
}

// post stores a user's message, as send_message does.
func (r *aiRig) post(uid, room, text string) commands.SentMessage {
	r.t.Helper()
	c := commands.Cause{Actor: domain.Actor{UserID: uid, SessionID: "sock-" + uid, NodeID: "node-1"}, Command: "send_message", CorrelationID: eventstore.NewID()}
	res, err := commands.SendMessageHandler{Deps: r.deps}.Handle(context.Background(), commands.SendMessage{Cause: c,
		PostMessageInput: domain.PostMessageInput{RoomName: room, Message: text, Profile: domain.UserProfile{UID: uid, Email: uid + "@example.com", DisplayName: "User " + uid}}})
	if err != nil {
		r.t.Fatal(err)
	}
	return res
}

// answer is a stored message of the assistant with its record.
type answer struct {
	rec eventstore.RecordedEvent
	msg domain.MessagePosted
	md  domain.Metadata
}

// waitAnswer follows the log until the answer to trigger is stored.
func (r *aiRig) waitAnswer(trigger string) answer {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sub, err := r.store.Subscribe(ctx, eventstore.SubscribeOptions{Filter: eventstore.Filter{EventTypes: []string{domain.TypeMessagePosted}}})
	if err != nil {
		r.t.Fatal(err)
	}
	defer sub.Close()
	for {
		b, err := sub.Next(ctx)
		if err != nil {
			r.t.Fatalf("no answer to %s: %v\nlogs:\n%s", trigger, err, r.logs.String())
		}
		for _, rec := range b.Events {
			if a, ok := decodeAnswer(r.t, rec); ok && a.msg.InReplyTo == trigger {
				return a
			}
		}
	}
}

func decodeAnswer(t *testing.T, rec eventstore.RecordedEvent) (answer, bool) {
	t.Helper()
	var a answer
	a.rec = rec
	if err := json.Unmarshal(rec.Data, &a.msg); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(rec.Metadata, &a.md); err != nil {
		t.Fatal(err)
	}
	return a, a.msg.InReplyTo != ""
}

// answers returns every stored answer to trigger.
func (r *aiRig) answers(trigger string) []answer {
	r.t.Helper()
	evs, err := r.store.ReadAll(context.Background(), eventstore.ReadAllOptions{Filter: eventstore.Filter{EventTypes: []string{domain.TypeMessagePosted}}})
	if err != nil {
		r.t.Fatal(err)
	}
	var out []answer
	for _, rec := range evs {
		if a, ok := decodeAnswer(r.t, rec); ok && a.msg.InReplyTo == trigger {
			out = append(out, a)
		}
	}
	return out
}

// exactlyOne checks that trigger has one stored answer, with the derived id,
// from the assistant, and returns it.
func (r *aiRig) exactlyOne(trigger string) answer {
	r.t.Helper()
	as := r.answers(trigger)
	if len(as) != 1 {
		r.t.Fatalf("%d answers to %s, want 1", len(as), trigger)
	}
	a := as[0]
	if a.rec.ID != commands.AIReplyID(trigger) || a.msg.ID != a.rec.ID || a.msg.UserID != commands.DefaultAssistantID {
		r.t.Fatalf("answer id %s (message id %s, user %s), want %s from %s", a.rec.ID, a.msg.ID, a.msg.UserID, commands.AIReplyID(trigger), commands.DefaultAssistantID)
	}
	return a
}

func TestAssistantAnswersOnceWithTheRoomsRecentMessages(t *testing.T) {
	t.Parallel()
	r := newAIRig(t)
	ai := newEndpoint(t, answerWith("  Hello from the model.  "))
	stop := r.start(ai.URL, commands.AssistantConfig{ContextMessages: 3}, 5*time.Second)

	r.post("u1", "general", "first")
	if _, err := (commands.JoinChatRoomHandler{Deps: r.deps}).Handle(context.Background(), commands.JoinChatRoom{
		Cause:    commands.Cause{Actor: domain.Actor{SessionID: "sock-u2", NodeID: "node-1"}, Command: "join_chat_room", CorrelationID: eventstore.NewID()},
		RoomName: "general", Profile: domain.UserProfile{UID: "u2", Email: "u2@example.com", DisplayName: "User u2"},
	}); err != nil {
		t.Fatal(err)
	}
	r.post("u2", "general", "second")
	r.post("u1", "general", "third")
	r.post("u1", "random", "elsewhere")
	trigger := r.post("u2", "general", "Hey @AI, what's up?")
	r.post("u1", "general", "later")

	got := r.waitAnswer(trigger.Message.ID)
	stop()
	a := r.exactlyOne(trigger.Message.ID)
	if a.rec.Position != got.rec.Position || a.rec.Stream != domain.ChatStream("general") {
		t.Fatalf("answer at %v in %s", a.rec.Position, a.rec.Stream)
	}
	m := a.msg
	if !m.IsAI || m.MessageType != domain.MessageAIResponse || m.UserName != commands.DefaultAssistantName ||
		m.RoomName != "general" || m.Message != "Hello from the model." {
		t.Fatalf("answer: %+v", m)
	}
	if a.md.Command != commands.CommandAIReply || a.md.CausationID != trigger.Message.ID || a.md.UserID != commands.DefaultAssistantID ||
		a.md.NodeID != "node-1" || a.md.CorrelationID == "" {
		t.Fatalf("metadata: %+v", a.md)
	}
	var trigMD domain.Metadata
	evs, _ := r.store.ReadStream(context.Background(), domain.ChatStream("general"), eventstore.ReadStreamOptions{})
	for _, e := range evs {
		if e.ID == trigger.Message.ID {
			_ = json.Unmarshal(e.Metadata, &trigMD)
		}
	}
	if a.md.CorrelationID != trigMD.CorrelationID {
		t.Fatalf("correlation id %q, the trigger's is %q", a.md.CorrelationID, trigMD.CorrelationID)
	}

	reqs := ai.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	req := reqs[0]
	var got2 []string
	for _, msg := range req.Messages {
		got2 = append(got2, msg.Role+"|"+msg.Content)
	}
	want := []string{"user|User u2: second", "user|User u1: third", "user|User u2: Hey @AI, what's up?"}
	if req.Model != "test-model" || len(got2) != 4 || req.Messages[0].Role != "system" ||
		!strings.Contains(req.Messages[0].Content, commands.DefaultAssistantName) || strings.Join(got2[1:], "\n") != strings.Join(want, "\n") {
		t.Fatalf("request (model %s):\n%s\nwant a system prompt, then:\n%s", req.Model, strings.Join(got2, "\n"), strings.Join(want, "\n"))
	}
	if ai.auths[0] != "Bearer "+aiKey {
		t.Fatalf("Authorization %q", ai.auths[0])
	}

	wantTyping := []typingCall{{"general", commands.DefaultAssistantID, commands.DefaultAssistantName, true}, {"general", commands.DefaultAssistantID, commands.DefaultAssistantName, false}}
	if tc := r.typing.get(); fmt.Sprint(tc) != fmt.Sprint(wantTyping) {
		t.Fatalf("typing %v, want %v", tc, wantTyping)
	}
	if strings.Contains(r.logs.String(), aiKey) {
		t.Fatalf("the key is in the logs:\n%s", r.logs.String())
	}
}

func TestAssistantFailuresStoreOneSystemMessage(t *testing.T) {
	t.Parallel()
	refused := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return "http://" + ln.Addr().String() + "/v1"
	}()
	cases := []struct {
		name  string
		url   string // set: no endpoint
		serve func(w http.ResponseWriter, r *http.Request, e *endpoint)
		cause string // in the log
	}{
		{name: "slow", cause: "timed out", serve: func(w http.ResponseWriter, r *http.Request, e *endpoint) {
			select {
			case <-r.Context().Done():
			case <-e.stopped:
			}
		}},
		{name: "500", cause: "status 500", serve: func(w http.ResponseWriter, _ *http.Request, _ *endpoint) {
			http.Error(w, "upstream exploded", 500)
		}},
		{name: "400", cause: "status 400", serve: func(w http.ResponseWriter, _ *http.Request, _ *endpoint) {
			http.Error(w, `{"error":{"message":"model 'test-model' not found"}}`, 400)
		}},
		{name: "connection refused", url: refused, cause: "refused the connection"},
		{name: "malformed JSON", cause: "malformed answer", serve: func(w http.ResponseWriter, _ *http.Request, _ *endpoint) {
			fmt.Fprint(w, `{"choices": [`)
		}},
		{name: "empty choices", cause: "no choices", serve: func(w http.ResponseWriter, _ *http.Request, _ *endpoint) {
			fmt.Fprint(w, `{"choices": []}`)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := newAIRig(t)
			url := c.url
			if c.serve != nil {
				url = newEndpoint(t, func(w http.ResponseWriter, req *http.Request, _ chatRequest, e *endpoint) { c.serve(w, req, e) }).URL
			}
			r.start(url, commands.AssistantConfig{}, 300*time.Millisecond)
			trigger := r.post("u1", "ops", "@ai status?")
			r.waitAnswer(trigger.Message.ID)
			r.post("u1", "ops", "still here") // the room keeps working
			a := r.exactlyOne(trigger.Message.ID)
			if a.msg.IsAI || a.msg.MessageType != domain.MessageSystem || a.msg.RoomName != "ops" ||
				!strings.Contains(a.msg.Message, "could not answer") || a.md.CausationID != trigger.Message.ID {
				t.Fatalf("answer: %+v %+v", a.msg, a.md)
			}
			logs := r.logs.String()
			if !strings.Contains(logs, "AI assistant could not answer") || !strings.Contains(logs, c.cause) || strings.Contains(logs, aiKey) {
				t.Fatalf("logs do not name the cause %q (or show the key):\n%s", c.cause, logs)
			}
			if tc := r.typing.get(); len(tc) != 2 || !tc[0].isTyping || tc[1].isTyping {
				t.Fatalf("typing %v, want true then false", tc)
			}
		})
	}
}

func TestAssistantAnswersOnlyNewMentionsFromUsers(t *testing.T) {
	t.Parallel()
	r := newAIRig(t)
	var n atomic.Int32
	ai := newEndpoint(t, func(w http.ResponseWriter, _ *http.Request, _ chatRequest, _ *endpoint) {
		complete(w, fmt.Sprintf("answer %d: ask @ai again anytime", n.Add(1)))
	})
	old := r.post("u1", "lobby", "@ai this was asked before the assistant started")
	r.start(ai.URL, commands.AssistantConfig{Concurrency: 1}, 5*time.Second)
	for _, text := range []string{"hello", "mail me at bob@ai.dev", "@aim high", "AI is fun", "ai@ nope"} {
		r.post("u1", "lobby", text)
	}
	first := r.post("u2", "lobby", "so @ai: first question")
	r.waitAnswer(first.Message.ID)
	// The answer mentions @ai; the assistant does not answer itself. The
	// next trigger is answered after the answer was read (one at a time).
	second := r.post("u2", "lobby", "@Ai second")
	r.waitAnswer(second.Message.ID)
	reqs := ai.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2 (one per mention):\n%v", len(reqs), reqs)
	}
	if len(r.answers(old.Message.ID)) != 0 {
		t.Fatal("a trigger stored before the assistant's first start was answered")
	}
	if last := reqs[0].last(); last != "User u2: so @ai: first question" {
		t.Fatalf("first request ends with %q", last)
	}
	// The second request sees the first answer as the assistant's turn.
	msgs := reqs[1].Messages
	if prev := msgs[len(msgs)-2]; prev.Role != "assistant" || prev.Content != "answer 1: ask @ai again anytime" {
		t.Fatalf("second request: %+v", msgs)
	}
	r.exactlyOne(first.Message.ID)
	r.exactlyOne(second.Message.ID)
}

func TestMentions(t *testing.T) {
	t.Parallel()
	for text, want := range map[string]bool{
		"@ai hello": true, "hey @AI, what": true, "(@ai)": true, "ask @ai.": true, "@ai": true, "é@ai": false,
		"@aim": false, "bob@ai.dev": false, "ai please": false, "@a i": false, "x@ai": false, "@ai_bot": false,
	} {
		if got := commands.Mentions(text, "@ai"); got != want {
			t.Errorf("Mentions(%q) = %v, want %v", text, got, want)
		}
	}
	if !commands.Mentions("Hi Bot, help", "bot") || commands.Mentions("robot", "bot") {
		t.Error("a word trigger must match whole words only")
	}
}

func TestAssistantRepeatsARequestCutOffByAStop(t *testing.T) {
	t.Parallel()
	r := newAIRig(t)
	var calls atomic.Int32
	ai := newEndpoint(t, func(w http.ResponseWriter, req *http.Request, _ chatRequest, e *endpoint) {
		if calls.Add(1) == 1 {
			select { // the first request never ends: the assistant is stopped meanwhile
			case <-req.Context().Done():
			case <-e.stopped:
			}
			return
		}
		complete(w, "here now")
	})
	stop := r.start(ai.URL, commands.AssistantConfig{}, time.Minute)
	trigger := r.post("u1", "crash", "@ai are you there?")
	<-ai.arrived
	stop() // a crash in the middle of the request
	if n := len(r.answers(trigger.Message.ID)); n != 0 {
		t.Fatalf("%d answers stored by a request that was cut off", n)
	}
	if tc := r.typing.get(); len(tc) != 2 || tc[1].isTyping {
		t.Fatalf("typing %v: the room must see the assistant stop typing", tc)
	}

	r.start(ai.URL, commands.AssistantConfig{}, time.Minute)
	r.waitAnswer(trigger.Message.ID)
	if a := r.exactlyOne(trigger.Message.ID); a.msg.Message != "here now" || !a.msg.IsAI {
		t.Fatalf("answer %+v", a.msg)
	}
	if n := len(ai.requests()); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
}

func TestAssistantRestartDoesNotAskAgainForAnsweredTriggers(t *testing.T) {
	t.Parallel()
	r := newAIRig(t)
	ai := newEndpoint(t, func(w http.ResponseWriter, _ *http.Request, req chatRequest, _ *endpoint) {
		complete(w, "re: "+req.last())
	})
	stop := r.start(ai.URL, commands.AssistantConfig{Concurrency: 1}, 5*time.Second)
	r.cps.freeze(true) // the process dies before any checkpoint after the start is written
	t1 := r.post("u1", "restart", "@ai one")
	r.waitAnswer(t1.Message.ID)
	stop()
	if cp, _, _ := r.cps.Load(context.Background(), "ai-assistant"); !cp.Less(t1.Position) {
		t.Fatalf("checkpoint %v is not before the trigger at %v", cp, t1.Position)
	}

	r.cps.freeze(false)
	stop = r.start(ai.URL, commands.AssistantConfig{Concurrency: 1}, 5*time.Second)
	t2 := r.post("u1", "restart", "@ai two")
	r.waitAnswer(t2.Message.ID)
	r.cps.waitPast(t, t2.Position)
	stop()
	reqs := ai.requests()
	if len(reqs) != 2 || reqs[0].last() != "User u1: @ai one" || reqs[1].last() != "User u1: @ai two" {
		t.Fatalf("requests %v: the answered trigger was asked again", reqs)
	}
	r.exactlyOne(t1.Message.ID)
	r.exactlyOne(t2.Message.ID)
}

func TestAssistantBoundsConcurrencyAndCheckpointsOnlyAnsweredTriggers(t *testing.T) {
	t.Parallel()
	r := newAIRig(t)
	const limit, triggers = 2, 6
	var inFlight, most atomic.Int32
	var gmu sync.Mutex
	gates := map[string]chan struct{}{}
	gate := func(text string) chan struct{} {
		gmu.Lock()
		defer gmu.Unlock()
		if gates[text] == nil {
			gates[text] = make(chan struct{})
		}
		return gates[text]
	}
	ai := newEndpoint(t, func(w http.ResponseWriter, _ *http.Request, req chatRequest, e *endpoint) {
		n := inFlight.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		select {
		case <-gate(req.last()):
		case <-e.stopped:
		}
		inFlight.Add(-1)
		complete(w, "ok")
	})

	// Every checkpoint saved must lie before every unanswered trigger.
	r.cps.onSave = func(p eventstore.Position) {
		evs, err := r.store.ReadAll(context.Background(), eventstore.ReadAllOptions{Filter: eventstore.Filter{EventTypes: []string{domain.TypeMessagePosted}}})
		if err != nil {
			t.Error(err)
			return
		}
		answered := map[string]bool{}
		for _, e := range evs {
			if a, ok := decodeAnswer(t, e); ok {
				answered[a.msg.InReplyTo] = true
			}
		}
		for _, e := range evs {
			if a, _ := decodeAnswer(t, e); a.msg.UserID != commands.DefaultAssistantID && !p.Less(e.Position) && !answered[e.ID] {
				t.Errorf("checkpoint %v saved past the unanswered trigger %q at %v", p, a.msg.Message, e.Position)
			}
		}
	}
	stop := r.start(ai.URL, commands.AssistantConfig{Concurrency: limit}, time.Minute)
	var ids []string
	var lastPos eventstore.Position
	for i := range triggers {
		m := r.post(fmt.Sprintf("u%d", i%3), fmt.Sprintf("room-%d", i%2), fmt.Sprintf("@ai q%d", i))
		ids, lastPos = append(ids, m.Message.ID), m.Position
	}
	// Release the newest request first, so answers complete out of log
	// order, and let the next one in each time.
	var waiting []string
	for range limit {
		waiting = append(waiting, (<-ai.arrived).last())
	}
	for released := 0; released < triggers; released++ {
		newest := waiting[len(waiting)-1]
		waiting = waiting[:len(waiting)-1]
		close(gate(newest))
		if released+limit < triggers {
			waiting = append(waiting, (<-ai.arrived).last())
		}
	}
	for _, id := range ids {
		r.waitAnswer(id)
	}
	if got := most.Load(); got != limit {
		t.Fatalf("at most %d requests were in flight at once, want %d", got, limit)
	}
	for _, id := range ids {
		r.exactlyOne(id)
	}
	if len(ai.requests()) != triggers {
		t.Fatalf("%d requests for %d triggers", len(ai.requests()), triggers)
	}
	r.cps.waitPast(t, lastPos) // and every save on the way kept the invariant
	stop()
}
