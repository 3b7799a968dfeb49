// Package openai is a client of the chat-completions endpoint of an
// OpenAI-compatible API (OpenAI, Ollama, llama.cpp's server, vLLM, LM Studio
// and others): one POST of the conversation to <url>/chat/completions, one
// answer back. It implements commands.Completer for the AI assistant.
//
// The API key is sent as a bearer token and never appears in an error or a
// log line.
package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/auraos/realtime/commands"
	"github.com/auraos/realtime/domain"
)

// DefaultTimeout bounds one request when Config.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// maxAnswerBytes bounds the response body the client reads.
const maxAnswerBytes = 4 << 20

// Config configures a Client.
type Config struct {
	// URL is the API's base URL, e.g. https://api.openai.com/v1 or
	// http://localhost:11434/v1 (Ollama); requests go to
	// <URL>/chat/completions.
	URL string
	// Model names the model to ask.
	Model string
	// Key, when set, is sent as "Authorization: Bearer <Key>".
	Key string
	// Timeout bounds each request, from sending it to reading the whole
	// answer (default DefaultTimeout).
	Timeout time.Duration
	// HTTPClient sends the requests (default http.DefaultClient).
	HTTPClient *http.Client
}

// LogValue shows the configuration without its key, so logging a Config
// never leaks it.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(slog.String("url", redactURL(c.URL)), slog.String("model", c.Model),
		slog.Bool("key", c.Key != ""), slog.Duration("timeout", c.Timeout))
}

// Client asks an OpenAI-compatible chat-completions endpoint. It is safe for
// concurrent use.
type Client struct {
	endpoint string
	shown    string // endpoint for errors: no user information, no query
	model    string
	key      string
	timeout  time.Duration
	http     *http.Client
}

// New returns a client for cfg. It returns an EINVALID error when the URL is
// not an http or https URL or the model is empty.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(strings.TrimSpace(cfg.URL))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, domain.Errorf(domain.EINVALID, "AI endpoint URL %q must be an http or https URL", redactURL(cfg.URL))
	}
	if strings.TrimSpace(cfg.Model) == "" {
		return nil, domain.Errorf(domain.EINVALID, "AI endpoint needs a model name")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	u.Path = strings.TrimRight(u.Path, "/") + "/chat/completions"
	shown := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	return &Client{endpoint: u.String(), shown: shown.String(), model: cfg.Model, key: cfg.Key, timeout: cfg.Timeout, http: cfg.HTTPClient}, nil
}

// Errors of Complete, for errors.Is; each comes wrapped in a *domain.Error
// that says more (the endpoint, the timeout, the status).
var (
	// ErrTimeout: no whole answer within the client's timeout.
	ErrTimeout = errors.New("timed out")
	// ErrUnreachable: the endpoint could not be reached (connection
	// refused, DNS failure, connection reset).
	ErrUnreachable = errors.New("unreachable")
	// ErrMalformed: the endpoint answered 2xx with something that is not a
	// chat completion carrying text.
	ErrMalformed = errors.New("malformed answer")
)

// StatusError is a non-2xx answer: its status code and the start of the
// body (the key, if the endpoint echoed it, is blanked out).
type StatusError struct {
	StatusCode int
	Body       string
}

// Error implements error.
func (e *StatusError) Error() string {
	s := fmt.Sprintf("status %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.Body != "" {
		s += ": " + e.Body
	}
	return s
}

type message struct {
	Role    string  `json:"role"`
	Content *string `json:"content"`
	Name    string  `json:"name,omitempty"`
}

type request struct {
	Model    string    `json:"model"`
	Messages []message `json:"messages"`
	Stream   bool      `json:"stream"`
}

type response struct {
	Choices []struct {
		Message message `json:"message"`
	} `json:"choices"`
}

// errTimedOut is the cause of a request context that hit the client's
// timeout, told apart from the caller's context ending.
var errTimedOut = errors.New("AI request timeout")

// Complete sends the conversation and returns the text of the first choice.
// Errors are *domain.Error values: EUNAVAILABLE wrapping ErrTimeout or
// ErrUnreachable, or a *StatusError for a 5xx or 429 answer; EINTERNAL
// wrapping a *StatusError for any other non-2xx answer (a bad model, key or
// request), or ErrMalformed for an answer that is not JSON, has no choices
// or no text. When ctx ends first, the error wraps ctx's error.
func (c *Client) Complete(ctx context.Context, turns []commands.Turn) (string, error) {
	req := request{Model: c.model, Messages: make([]message, len(turns))}
	for i, t := range turns {
		content := t.Content
		req.Messages[i] = message{Role: t.Role, Content: &content, Name: nameField(t.Name)}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return "", domain.WrapError(domain.EINTERNAL, "encode the AI request", err)
	}
	rctx, cancel := context.WithTimeoutCause(ctx, c.timeout, errTimedOut)
	defer cancel()
	hreq, err := http.NewRequestWithContext(rctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return "", domain.WrapError(domain.EINTERNAL, "build the AI request", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json")
	if c.key != "" {
		hreq.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := c.http.Do(hreq)
	if err != nil {
		return "", c.transportError(ctx, rctx, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	if err != nil {
		return "", c.transportError(ctx, rctx, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		se := &StatusError{StatusCode: resp.StatusCode, Body: c.snippet(data)}
		code := domain.EINTERNAL
		if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
			code = domain.EUNAVAILABLE
		}
		return "", domain.WrapError(code, "AI endpoint "+c.shown+" refused the request", se)
	}
	if len(data) > maxAnswerBytes {
		return "", c.malformed(fmt.Errorf("answer larger than %d bytes", maxAnswerBytes))
	}
	var r response
	if err := json.Unmarshal(data, &r); err != nil {
		return "", c.malformed(fmt.Errorf("not a chat completion: %w", err))
	}
	if len(r.Choices) == 0 {
		return "", c.malformed(errors.New("no choices"))
	}
	m := r.Choices[0].Message
	if m.Content == nil || strings.TrimSpace(*m.Content) == "" {
		return "", c.malformed(errors.New("the first choice has no text"))
	}
	return *m.Content, nil
}

func (c *Client) malformed(cause error) error {
	return domain.WrapError(domain.EINTERNAL, "AI endpoint "+c.shown+" gave a malformed answer", fmt.Errorf("%w: %w", ErrMalformed, cause))
}

// transportError classifies a failure to send or read: the caller's context
// ending, the client's timeout, or an unreachable endpoint.
func (c *Client) transportError(ctx, rctx context.Context, err error) error {
	if ctx.Err() != nil {
		return domain.WrapError(domain.EUNAVAILABLE, "AI request cancelled", ctx.Err())
	}
	var ne net.Error
	if errors.Is(context.Cause(rctx), errTimedOut) || (errors.As(err, &ne) && ne.Timeout()) {
		return domain.WrapError(domain.EUNAVAILABLE, fmt.Sprintf("AI endpoint %s did not answer within %s", c.shown, c.timeout), fmt.Errorf("%w: %w", ErrTimeout, err))
	}
	what := "cannot be reached"
	if errors.Is(err, syscall.ECONNREFUSED) {
		what = "refused the connection"
	}
	return domain.WrapError(domain.EUNAVAILABLE, "AI endpoint "+c.shown+" "+what, fmt.Errorf("%w: %w", ErrUnreachable, err))
}

// snippet is the start of an error body, on one line, without the key.
func (c *Client) snippet(body []byte) string {
	s := strings.Join(strings.Fields(string(body)), " ")
	if c.key != "" {
		s = strings.ReplaceAll(s, c.key, "[redacted]")
	}
	if r := []rune(s); len(r) > 300 {
		s = string(r[:300]) + "…"
	}
	return s
}

// nameField makes a speaker's name fit the name field of OpenAI's format
// (letters, digits, _ and -, at most 64), or drops it.
func nameField(name string) string {
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('_')
		}
		if b.Len() == 64 {
			break
		}
	}
	return b.String()
}

// redactURL hides a password in a URL's user information.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	return u.Redacted()
}
