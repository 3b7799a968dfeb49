package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/auraos/realtime/cmd/auraos/app"
	"github.com/auraos/realtime/commands"
	"github.com/auraos/realtime/commands/openai"
	"github.com/auraos/realtime/domain"
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

// config is the assistant's configuration as the flags set it.
func (a aiFlags) config() app.AIConfig {
	return app.AIConfig{
		URL: a.url, Model: a.model, Key: a.key, Trigger: a.trigger, Name: a.name,
		Context: a.contextMessages, Concurrency: a.concurrency, Timeout: a.timeout,
	}
}
