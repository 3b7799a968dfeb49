package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"
	"github.com/uptrace/bun"

	"github.com/auraos/realtime/commands"
	"github.com/auraos/realtime/commands/openai"
	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/projections"
)

// aiFlags configure the AI assistant, which answers chat messages that
// mention its trigger through an OpenAI-compatible endpoint. Without --ai-url
// it is off.
type aiFlags struct {
	url, model, key, trigger, name string
	contextMessages, concurrency   int
	timeout                        time.Duration
}

func (a *aiFlags) register(f *pflag.FlagSet) {
	f.StringVar(&a.url, "ai-url", "", "base URL of an OpenAI-compatible API (e.g. http://localhost:11434/v1 for Ollama); requests go to <url>/chat/completions; empty turns the assistant off")
	f.StringVar(&a.model, "ai-model", "", "model the assistant asks (e.g. llama3.2); required with --ai-url")
	f.StringVar(&a.key, "ai-key", "", "API key, sent as a bearer token; prefer AURAOS_AI_KEY to the command line")
	f.StringVar(&a.trigger, "ai-trigger", commands.DefaultAssistantTrigger, "mention that asks the assistant to answer (case-insensitive, a whole word)")
	f.IntVar(&a.contextMessages, "ai-context", commands.DefaultAssistantContext, "how many recent room messages (up to the trigger) go with each request")
	f.DurationVar(&a.timeout, "ai-timeout", openai.DefaultTimeout, "how long one request to the AI endpoint may take")
	f.StringVar(&a.name, "ai-name", commands.DefaultAssistantName, "the assistant's display name in the room")
	f.IntVar(&a.concurrency, "ai-concurrency", commands.DefaultAssistantParallel, "most requests to the AI endpoint in flight; further triggers wait their turn")
}

// check validates the flags of an enabled assistant.
func (a aiFlags) check() error {
	switch {
	case strings.TrimSpace(a.model) == "":
		return fmt.Errorf("--ai-url needs --ai-model (AURAOS_AI_MODEL)")
	case strings.TrimSpace(a.trigger) == "":
		return fmt.Errorf("--ai-trigger must not be empty")
	case a.contextMessages < 1 || a.contextMessages > 200:
		return fmt.Errorf("--ai-context %d: want 1 to 200 messages", a.contextMessages)
	case a.concurrency < 1 || a.concurrency > 256:
		return fmt.Errorf("--ai-concurrency %d: want 1 to 256", a.concurrency)
	case a.timeout <= 0:
		return fmt.Errorf("--ai-timeout %s: must be positive", a.timeout)
	}
	if err := domain.CheckID("--ai-name", strings.TrimSpace(a.name)); err != nil {
		return fmt.Errorf("--ai-name %q: want 1 to 128 printable characters", a.name)
	}
	return nil
}

// startAssistant starts the AI assistant reactor when --ai-url is set and
// returns the function that stops it and waits for it (requests in flight
// are cut off and asked again at the next start). Without --ai-url it starts
// nothing and returns a no-op. The reactor's first checkpoint (the log's head
// on a first run) is written before it returns, so every message stored
// afterwards is seen. It stops by itself when ctx ends.
func startAssistant(ctx context.Context, f aiFlags, store eventstore.Store, readDB *bun.DB, typing commands.TypingNotifier, nodeID string, log *slog.Logger, onCall func(outcome string)) (stop func(), err error) {
	if strings.TrimSpace(f.url) == "" {
		return func() {}, nil
	}
	if err := f.check(); err != nil {
		return nil, err
	}
	cfg := openai.Config{URL: f.url, Model: f.model, Key: f.key, Timeout: f.timeout}
	client, err := openai.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("--ai-url: %w", err)
	}
	a := &commands.Assistant{
		Deps:        commands.Deps{Store: store, Now: time.Now, NewID: eventstore.NewID},
		Log:         store,
		Completer:   client,
		Checkpoints: projections.ReactorCheckpoints{DB: readDB},
		Typing:      typing,
		Config: commands.AssistantConfig{
			UserName: strings.TrimSpace(f.name), Trigger: f.trigger, ContextMessages: f.contextMessages,
			Concurrency: f.concurrency, NodeID: nodeID, Logger: log.With("component", "ai-assistant"), OnCall: onCall,
		},
	}
	if _, err := a.Prepare(ctx); err != nil {
		return nil, fmt.Errorf("AI assistant: %w", err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	var done sync.WaitGroup
	done.Add(1)
	go func() {
		defer done.Done()
		_ = a.Run(runCtx) // returns nil when runCtx ends; errors are logged and retried
	}()
	log.Info("AI assistant on", "endpoint", cfg, "trigger", f.trigger, "context", f.contextMessages, "concurrency", f.concurrency)
	return func() { cancel(); done.Wait() }, nil
}
