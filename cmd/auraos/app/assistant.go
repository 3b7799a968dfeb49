package app

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/uptrace/bun"

	"github.com/auraos/realtime/commands"
	"github.com/auraos/realtime/commands/openai"
	"github.com/auraos/realtime/projections"
)

// AIConfig configures the AI assistant, which answers chat messages that
// mention its trigger through an OpenAI-compatible endpoint. An empty URL
// turns it off; zero values of the others take the assistant's defaults.
type AIConfig struct {
	URL, Model, Key string
	Trigger, Name   string
	Context         int
	Concurrency     int
	Timeout         time.Duration
}

// startAssistant starts the AI assistant reactor when cfg.URL is set and
// returns the function that stops it and waits for it (requests in flight
// are cut off and asked again at the next start). Without a URL it starts
// nothing and returns a no-op. The reactor's first checkpoint (the log's
// head on a first run) is written before it returns, so every message
// stored afterwards is seen.
func startAssistant(ctx context.Context, cfg AIConfig, deps commands.Deps, eventLog commands.ReactorLog, readDB *bun.DB, typing commands.TypingNotifier, nodeID string, logger *slog.Logger, onCall func(outcome string)) (stop func(), err error) {
	if strings.TrimSpace(cfg.URL) == "" {
		return func() {}, nil
	}
	endpoint := openai.Config{URL: cfg.URL, Model: cfg.Model, Key: cfg.Key, Timeout: cfg.Timeout}
	client, err := openai.New(endpoint)
	if err != nil {
		return nil, fmt.Errorf("--ai-url: %w", err)
	}
	a := &commands.Assistant{
		Deps:        deps,
		EventLog:    eventLog,
		Completer:   client,
		Checkpoints: projections.ReactorCheckpoints{DB: readDB},
		Typing:      typing,
		Config: commands.AssistantConfig{
			UserName: strings.TrimSpace(cfg.Name), Trigger: cfg.Trigger, ContextMessages: cfg.Context,
			Concurrency: cfg.Concurrency, NodeID: nodeID, Logger: logger.With("component", "ai-assistant"), OnCall: onCall,
		},
	}
	if _, err := a.Prepare(ctx); err != nil {
		return nil, fmt.Errorf("AI assistant: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	var done sync.WaitGroup
	done.Add(1)
	go func() {
		defer done.Done()
		_ = a.Run(runCtx) // returns nil when runCtx ends; errors are logged and retried
	}()
	logger.Info("AI assistant on", "endpoint", endpoint, "trigger", cfg.Trigger, "context", cfg.Context, "concurrency", cfg.Concurrency)
	return func() { cancel(); done.Wait() }, nil
}
