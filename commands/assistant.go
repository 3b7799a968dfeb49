package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/follow"
)

// Roles of the turns of a completion request, as OpenAI's chat format names
// them.
const (
	RoleSystem    = "system"
	RoleUser      = "user"
	RoleAssistant = "assistant"
)

// Turn is one message of the conversation sent to a completion endpoint:
// its role (RoleSystem, RoleUser or RoleAssistant), the speaker's display
// name for user turns, and the text.
type Turn struct {
	Role    string
	Name    string
	Content string
}

// Completer asks a language model for the assistant's next message. It owns
// its per-request timeout. Any error means the endpoint gave no usable answer;
// the assistant then posts a system message saying so. When ctx ends the
// returned error must wrap ctx's error.
type Completer interface {
	Complete(ctx context.Context, turns []Turn) (string, error)
}

// ReactorCheckpoints keeps a reactor's position in the log across restarts.
// Load reports false for a reactor never run. Errors are the storage's
// (EUNAVAILABLE when it cannot be reached).
type ReactorCheckpoints interface {
	Load(ctx context.Context, name string) (eventstore.Position, bool, error)
	Save(ctx context.Context, name string, pos eventstore.Position) error
}

// TypingNotifier shows a room that the assistant is (or is no longer)
// typing. It is ephemeral and must not block.
type TypingNotifier interface {
	AssistantTyping(room, userID, userName string, isTyping bool)
}

// ReactorLog is what a reactor needs of the event store beyond EventStore:
// to follow the log and to know its head.
type ReactorLog interface {
	follow.Log
	Head(ctx context.Context) (eventstore.Position, error)
}

// AssistantConfig tunes an Assistant. Zero values take the defaults.
type AssistantConfig struct {
	// Checkpoint names the reactor's checkpoint (default "ai-assistant").
	Checkpoint string
	// UserID and UserName are who the assistant's messages are from
	// (defaults "ai-assistant" and "AI Assistant").
	UserID, UserName string
	// Trigger is the mention that asks the assistant to answer, matched
	// case-insensitively as a whole token (default "@ai").
	Trigger string
	// ContextMessages is how many of the room's messages, up to and
	// including the trigger, are sent with the request (default 20).
	ContextMessages int
	// Concurrency bounds the requests in flight (default 4). Triggers beyond
	// it wait; none is dropped.
	Concurrency int
	// NodeID names this server in the metadata of the assistant's events.
	NodeID string
	// Logger receives failures, with their causes (default slog.Default()).
	Logger *slog.Logger
	// OnCall, when set, is told the outcome of each call to the endpoint:
	// "ok" or the error's code. It must not block.
	OnCall func(outcome string)
}

// Defaults of AssistantConfig.
const (
	DefaultAssistantID       = "ai-assistant"
	DefaultAssistantName     = "AI Assistant"
	DefaultAssistantTrigger  = "@ai"
	DefaultAssistantContext  = 20
	DefaultAssistantParallel = 4
)

// CommandAIReply is the command named in the metadata of the assistant's
// messages.
const CommandAIReply = "ai_reply"

func (c AssistantConfig) withDefaults() AssistantConfig {
	if c.Checkpoint == "" {
		c.Checkpoint = "ai-assistant"
	}
	if c.UserID == "" {
		c.UserID = DefaultAssistantID
	}
	if c.UserName == "" {
		c.UserName = DefaultAssistantName
	}
	if strings.TrimSpace(c.Trigger) == "" {
		c.Trigger = DefaultAssistantTrigger
	}
	c.Trigger = strings.ToLower(strings.TrimSpace(c.Trigger))
	if c.ContextMessages <= 0 {
		c.ContextMessages = DefaultAssistantContext
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultAssistantParallel
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Assistant is the AI reply reactor: it follows the log's MessagePosted
// events from its own checkpoint and answers each user message that mentions
// the trigger with one message in the room's stream, an ai_response from the
// completion endpoint or, when the endpoint fails, a system message saying
// the assistant could not answer.
//
// Exactly one answer is stored per trigger: its event id derives from the
// trigger's id, and a trigger whose answer is already stored (found in the
// room's stream after the trigger) is skipped without a request. The
// checkpoint moves past a trigger only once its answer is stored, so a
// request cut off by a crash runs again after the restart. A reactor that has
// never run starts at the log's head: old triggers are never answered.
type Assistant struct {
	// Deps.Store reads rooms and appends answers; Now stamps them.
	Deps
	// EventLog is the log the reactor follows.
	EventLog    ReactorLog
	Completer   Completer
	Checkpoints ReactorCheckpoints
	// Typing, when set, shows the room the assistant typing while a request
	// runs.
	Typing TypingNotifier
	Config AssistantConfig
}

// AIReplyID is the event id of the assistant's one answer to the message
// triggerID.
func AIReplyID(triggerID string) string { return eventstore.NameID("AIReply", triggerID) }

// Prepare makes sure the reactor has a checkpoint and returns it: a reactor
// never run gets one at the log's current head. It returns the store's and
// the checkpoint storage's errors (EUNAVAILABLE).
func (a *Assistant) Prepare(ctx context.Context) (eventstore.Position, error) {
	cfg := a.Config.withDefaults()
	pos, ok, err := a.Checkpoints.Load(ctx, cfg.Checkpoint)
	if err != nil || ok {
		return pos, err
	}
	head, err := a.EventLog.Head(ctx)
	if err != nil {
		return eventstore.Start, err
	}
	if err := a.Checkpoints.Save(ctx, cfg.Checkpoint, head); err != nil {
		return eventstore.Start, err
	}
	return head, nil
}

// Run answers triggers until ctx ends, then returns nil once every request
// it started has stopped. After a store or checkpoint error it logs it and
// resumes from the stored checkpoint with a growing pause.
func (a *Assistant) Run(ctx context.Context) error {
	cfg := a.Config.withDefaults()
	h := &assistantHandler{a: a, cfg: cfg}
	h.follower = follow.New(a.EventLog, h, follow.Options{
		Name:            "AI assistant",
		Filter:          eventstore.Filter{StreamPrefixes: []string{domain.ChatStream("")}, EventTypes: []string{domain.TypeMessagePosted}},
		BatchSize:       100,
		SkipUndecodable: true,
		Depth:           1,
		IdleAfter:       checkpointInterval,
		Logger:          cfg.Logger,
	})
	return h.follower.Run(ctx)
}

// checkpointInterval bounds how often a checkpoint that moved only past
// messages that are not triggers is written.
const checkpointInterval = time.Second

// assistantHandler is the assistant as the follower's handler. Each
// subscription is one run: Resume starts it from the stored checkpoint,
// Handle starts a worker per trigger, the workers report back on the
// follower's goroutine, and Suspend cuts off the workers still asking (a
// request cut off is not done, so the checkpoint stays before it and the
// next run asks again).
type assistantHandler struct {
	a        *Assistant
	cfg      AssistantConfig
	follower *follow.Follower
	run      *assistantRun // the current subscription's, owned by the follower's goroutine
}

// assistantRun is one subscription's state.
type assistantRun struct {
	work   context.Context // ends every worker of this run
	stop   context.CancelFunc
	owned  sync.WaitGroup
	sem    chan struct{}
	prog   *progress
	failed error // a worker's store error, which ends the run
}

// Resume prepares the checkpoint and starts a run from it.
func (h *assistantHandler) Resume(ctx context.Context) (eventstore.Position, error) {
	start, err := h.a.Prepare(ctx)
	if err != nil {
		return eventstore.Start, err
	}
	work, stop := context.WithCancel(ctx)
	h.run = &assistantRun{
		work: work, stop: stop, sem: make(chan struct{}, h.cfg.Concurrency),
		prog: &progress{saved: start, lastSave: time.Now()},
	}
	return start, nil
}

// Handle starts a worker for each trigger of the batch, waiting for a free
// slot when Concurrency requests are in flight (none is dropped).
func (h *assistantHandler) Handle(ctx context.Context, b follow.Batch) error {
	run := h.run
	if run.failed != nil {
		return run.failed
	}
	for _, e := range b.Events {
		trigger, ok := h.a.trigger(e, h.cfg)
		if !ok {
			continue
		}
		select {
		case run.sem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		run.prog.add(e.Position)
		run.owned.Add(1)
		go h.work(run, e.RecordedEvent, trigger)
	}
	run.prog.mark(b.Through)
	return h.a.save(ctx, h.cfg, run.prog)
}

// work answers one trigger and reports the outcome on the follower's
// goroutine.
func (h *assistantHandler) work(run *assistantRun, rec eventstore.RecordedEvent, trigger domain.MessagePosted) {
	defer run.owned.Done()
	err := h.a.answer(run.work, h.cfg, rec, trigger)
	<-run.sem
	if run.work.Err() != nil {
		return // cut off: not reported as done
	}
	h.follower.Do(run.work, func(ctx context.Context) error {
		if h.run != run {
			return nil // a report of an earlier run
		}
		if err != nil {
			run.failed = err
			return err
		}
		run.prog.done(rec.Position)
		return h.a.save(ctx, h.cfg, run.prog)
	})
}

// Idle writes a checkpoint that moved only past messages that are not
// triggers, and ends the run if a worker failed.
func (h *assistantHandler) Idle(ctx context.Context) error {
	if h.run.failed != nil {
		return h.run.failed
	}
	return h.a.save(ctx, h.cfg, h.run.prog)
}

// Suspend cuts off the run's workers, waits for them, and keeps what was
// reached, so a restart need not look at it again.
func (h *assistantHandler) Suspend(ctx context.Context) {
	run := h.run
	if run == nil {
		return
	}
	run.stop()
	run.owned.Wait()
	if run.prog.saved.Less(run.prog.reached) {
		saveCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := h.a.Checkpoints.Save(saveCtx, h.cfg.Checkpoint, run.prog.reached); err != nil {
			h.cfg.Logger.Warn("AI assistant could not save its checkpoint", "err", err)
		}
	}
	h.run = nil
}

// save writes the checkpoint when it moved past an answered trigger, or
// when it moved and the last write is older than checkpointInterval.
func (a *Assistant) save(ctx context.Context, cfg AssistantConfig, p *progress) error {
	if !p.saved.Less(p.reached) || (!p.pastTrigger && time.Since(p.lastSave) < checkpointInterval) {
		return nil
	}
	if err := a.Checkpoints.Save(ctx, cfg.Checkpoint, p.reached); err != nil {
		return err
	}
	p.saved, p.lastSave, p.pastTrigger = p.reached, time.Now(), false
	return nil
}

// progress tracks which part of the log is done while triggers are answered
// concurrently: reached is the highest position such that every trigger at
// or before it is answered, and only it is ever saved.
type progress struct {
	entries     []progressEntry // in log order: triggers in flight and read-through marks
	reached     eventstore.Position
	saved       eventstore.Position
	lastSave    time.Time
	pastTrigger bool // reached moved past an answered trigger since the last save
}

type progressEntry struct {
	pos       eventstore.Position
	done      bool
	isTrigger bool
}

// add records a trigger being answered.
func (p *progress) add(pos eventstore.Position) {
	p.entries = append(p.entries, progressEntry{pos: pos, isTrigger: true})
}

// mark records that the log has been read through pos.
func (p *progress) mark(pos eventstore.Position) {
	if n := len(p.entries); n > 0 && !p.entries[n-1].isTrigger {
		if p.entries[n-1].pos.Less(pos) {
			p.entries[n-1].pos = pos
		}
	} else {
		p.entries = append(p.entries, progressEntry{pos: pos, done: true})
	}
	p.advance()
}

// done records that the trigger at pos is answered.
func (p *progress) done(pos eventstore.Position) {
	for i := range p.entries {
		if p.entries[i].isTrigger && p.entries[i].pos == pos {
			p.entries[i].done = true
			break
		}
	}
	p.advance()
}

func (p *progress) advance() {
	i := 0
	for ; i < len(p.entries) && p.entries[i].done; i++ {
		if p.reached.Less(p.entries[i].pos) {
			p.reached = p.entries[i].pos
		}
		p.pastTrigger = p.pastTrigger || p.entries[i].isTrigger
	}
	p.entries = append(p.entries[:0], p.entries[i:]...)
}

// trigger reports whether a stored message asks the assistant to answer: a
// user's message (not the assistant's, not an AI message, not itself a
// reply) that mentions the trigger.
func (a *Assistant) trigger(e follow.Envelope, cfg AssistantConfig) (domain.MessagePosted, bool) {
	m, ok := e.Event.(domain.MessagePosted)
	if !ok || m.IsAI || m.InReplyTo != "" || m.UserID == cfg.UserID || m.MessageType == domain.MessageAIResponse {
		return domain.MessagePosted{}, false
	}
	if m.ID == "" {
		m.ID = e.ID
	}
	return m, Mentions(m.Message, cfg.Trigger)
}

// Mentions reports whether text mentions trigger: case-insensitively, as a
// whole token (not inside a longer word such as "@aim" or "mail@ai.dev").
func Mentions(text, trigger string) bool {
	text, trigger = strings.ToLower(text), strings.ToLower(strings.TrimSpace(trigger))
	if trigger == "" {
		return false
	}
	for from := 0; from < len(text); {
		i := strings.Index(text[from:], trigger)
		if i < 0 {
			return false
		}
		i += from
		end := i + len(trigger)
		before, _ := utf8.DecodeLastRuneInString(text[:i])
		after, _ := utf8.DecodeRuneInString(text[end:])
		if (i == 0 || !wordRune(before)) && (end == len(text) || !wordRune(after)) {
			return true
		}
		_, size := utf8.DecodeRuneInString(text[i:])
		from = i + size
	}
	return false
}

func wordRune(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) }

// answer stores the one answer to a trigger unless it is already stored. It
// returns only store errors and ctx's; an endpoint failure becomes the
// system message.
func (a *Assistant) answer(ctx context.Context, cfg AssistantConfig, rec eventstore.RecordedEvent, trigger domain.MessagePosted) error {
	id := AIReplyID(trigger.ID)
	done, err := a.answered(ctx, rec, trigger.ID, id)
	if err != nil || done {
		return err
	}
	turns, err := a.conversation(ctx, cfg, rec, trigger.RoomName)
	if err != nil {
		return err
	}
	started := time.Now()
	if a.Typing != nil {
		a.Typing.AssistantTyping(trigger.RoomName, cfg.UserID, cfg.UserName, true)
	}
	text, err := a.Completer.Complete(ctx, turns)
	if a.Typing != nil {
		a.Typing.AssistantTyping(trigger.RoomName, cfg.UserID, cfg.UserName, false)
	}
	if ctx.Err() != nil {
		return ctx.Err() // stopping: the next run asks again
	}
	if err == nil && strings.TrimSpace(text) == "" {
		err = errors.New("the answer is empty")
	}
	failed := err != nil
	if cfg.OnCall != nil {
		outcome := "ok"
		if failed {
			outcome = domain.ErrorCode(err)
		}
		cfg.OnCall(outcome)
	}
	log := cfg.Logger.With("room", trigger.RoomName, "trigger", trigger.ID, "took", time.Since(started).Round(time.Millisecond))
	if failed {
		log.Warn("AI assistant could not answer", "err", err)
		text = cfg.UserName + " could not answer right now. Please try again later."
	}
	msg := domain.PostAssistantMessage(trigger, cfg.UserID, cfg.UserName, text, failed, id, a.Now())
	cause := Cause{
		Actor:         domain.Actor{UserID: cfg.UserID, NodeID: cfg.NodeID},
		Command:       CommandAIReply,
		CorrelationID: correlationID(rec.Metadata),
		CausationID:   trigger.ID,
	}
	if _, err := appendOne(ctx, a.Store, msg, id, eventstore.Any, cause, cause.Actor); err != nil {
		return fmt.Errorf("store the answer to %s: %w", trigger.ID, err)
	}
	if !failed {
		log.Info("AI assistant answered")
	}
	return nil
}

func correlationID(metadata json.RawMessage) string {
	var m domain.Metadata
	_ = json.Unmarshal(metadata, &m)
	return m.CorrelationID
}

// answerScanPage is how many events of a room one read looks at.
const answerScanPage = 256

// answered reports whether the room's stream holds the answer to a trigger:
// an event with the derived id or a message in reply to it, after the
// trigger.
func (a *Assistant) answered(ctx context.Context, rec eventstore.RecordedEvent, triggerID, answerID string) (bool, error) {
	for from := rec.Version + 1; ; {
		page, err := a.Store.ReadStream(ctx, rec.Stream, eventstore.ReadStreamOptions{Direction: eventstore.Forwards, From: from, Limit: answerScanPage})
		if err != nil {
			return false, err
		}
		for _, e := range page {
			if e.ID == answerID {
				return true, nil
			}
			if e.Type == domain.TypeMessagePosted {
				var m struct {
					InReplyTo string `json:"inReplyTo"`
				}
				if json.Unmarshal(e.Data, &m) == nil && m.InReplyTo == triggerID {
					return true, nil
				}
			}
		}
		if len(page) < answerScanPage {
			return false, nil
		}
		from = page[len(page)-1].Version + 1
	}
}

// contextScanLimit bounds how many events of a room are read backwards to
// find the context messages (rooms hold joins and leaves too).
const contextScanLimit = 2000

// conversation is the request for a trigger: a system prompt, then the
// room's messages up to and including the trigger, oldest first, at most
// ContextMessages of them. It reads the room's stream backwards from the
// trigger, so it is the same whenever it runs.
func (a *Assistant) conversation(ctx context.Context, cfg AssistantConfig, rec eventstore.RecordedEvent, room string) ([]Turn, error) {
	var newestFirst []domain.MessagePosted
	scanned := 0
	for from := rec.Version; len(newestFirst) < cfg.ContextMessages && scanned < contextScanLimit; {
		page, err := a.Store.ReadStream(ctx, rec.Stream, eventstore.ReadStreamOptions{Direction: eventstore.Backwards, From: from, Limit: answerScanPage})
		if err != nil {
			return nil, err
		}
		for _, e := range page {
			scanned++
			if e.Type != domain.TypeMessagePosted {
				continue
			}
			ev, err := domain.Decode(e.Type, e.Data)
			if err != nil {
				continue
			}
			m := ev.(domain.MessagePosted)
			if m.UserID == cfg.UserID && !m.IsAI {
				continue // the assistant's own failure notices
			}
			newestFirst = append(newestFirst, m)
			if len(newestFirst) == cfg.ContextMessages {
				break
			}
		}
		if len(page) < answerScanPage || page[len(page)-1].Version == 0 {
			break
		}
		from = page[len(page)-1].Version - 1
	}
	turns := make([]Turn, 0, len(newestFirst)+1)
	turns = append(turns, Turn{Role: RoleSystem, Content: fmt.Sprintf(
		"You are %s, an assistant in the chat room %q. Each user message starts with the sender's name. "+
			"Answer the latest message that mentions %s helpfully and briefly, in plain text of at most %d characters.",
		cfg.UserName, room, cfg.Trigger, domain.MaxChatMessageLength)})
	for i := len(newestFirst) - 1; i >= 0; i-- {
		m := newestFirst[i]
		if m.IsAI {
			turns = append(turns, Turn{Role: RoleAssistant, Content: m.Message})
		} else {
			turns = append(turns, Turn{Role: RoleUser, Name: m.UserName, Content: m.UserName + ": " + m.Message})
		}
	}
	return turns, nil
}
