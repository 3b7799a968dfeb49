package openai_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/auraos/realtime/commands"
	"github.com/auraos/realtime/commands/openai"
	"github.com/auraos/realtime/domain"
)

const secret = "sk-test-0123456789-secret"

var turns = []commands.Turn{
	{Role: commands.RoleSystem, Content: "You are AI Assistant."},
	{Role: commands.RoleUser, Name: "Jane Doe (admin)", Content: "Jane Doe: @ai hello"},
	{Role: commands.RoleAssistant, Content: "hi"},
}

func client(t *testing.T, url, key string, timeout time.Duration) *openai.Client {
	t.Helper()
	c, err := openai.New(openai.Config{URL: url, Model: "test-model", Key: key, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCompleteSendsTheConversationAndReadsTheFirstChoice(t *testing.T) {
	t.Parallel()
	type seen struct {
		method, path, auth, contentType string
		body                            map[string]any
	}
	got := make(chan seen, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		got <- seen{r.Method, r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), body}
		fmt.Fprint(w, `{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hello, Jane!"},"finish_reason":"stop"}]}`)
	}))
	defer srv.Close()

	// A trailing slash on the base URL is fine.
	text, err := client(t, srv.URL+"/v1/", secret, time.Second).Complete(context.Background(), turns)
	if err != nil || text != "Hello, Jane!" {
		t.Fatalf("Complete = %q, %v", text, err)
	}
	s := <-got
	if s.method != http.MethodPost || s.path != "/v1/chat/completions" || s.auth != "Bearer "+secret || s.contentType != "application/json" {
		t.Fatalf("request: %s %s auth=%q type=%q", s.method, s.path, s.auth, s.contentType)
	}
	if s.body["model"] != "test-model" || s.body["stream"] != false {
		t.Fatalf("body: %v", s.body)
	}
	msgs, _ := s.body["messages"].([]any)
	if len(msgs) != 3 {
		t.Fatalf("messages: %v", s.body["messages"])
	}
	user := msgs[1].(map[string]any)
	if user["role"] != "user" || user["content"] != "Jane Doe: @ai hello" || user["name"] != "Jane_Doe_admin" {
		t.Fatalf("user turn: %v", user)
	}
	if _, ok := msgs[0].(map[string]any)["name"]; ok {
		t.Fatalf("system turn has a name: %v", msgs[0])
	}

	// Without a key no Authorization header is sent.
	if _, err := client(t, srv.URL+"/v1", "", time.Second).Complete(context.Background(), turns); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s.auth != "" || s.path != "/v1/chat/completions" {
		t.Fatalf("without a key: auth=%q path=%s", s.auth, s.path)
	}
}

func TestCompleteErrors(t *testing.T) {
	t.Parallel()
	refused := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return "http://" + addr + "/v1"
	}()
	cases := []struct {
		name    string
		handler http.HandlerFunc // nil: nothing listens
		code    string
		is      error
		status  int
	}{
		{name: "connection refused", code: domain.EUNAVAILABLE, is: openai.ErrUnreachable},
		{name: "timeout", code: domain.EUNAVAILABLE, is: openai.ErrTimeout, handler: func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body) // lets the server notice the client leaving
			<-r.Context().Done()
		}},
		{name: "500", code: domain.EUNAVAILABLE, status: 500, handler: func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, `{"error":{"message":"overloaded"}}`, 500)
		}},
		{name: "429", code: domain.EUNAVAILABLE, status: 429, handler: func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "slow down", http.StatusTooManyRequests)
		}},
		{name: "400 echoing the key", code: domain.EINTERNAL, status: 400, handler: func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, `{"error":{"message":"model not found; your key `+secret+`"}}`, 400)
		}},
		{name: "not JSON", code: domain.EINTERNAL, is: openai.ErrMalformed, handler: func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `<html>proxy error</html>`)
		}},
		{name: "no choices", code: domain.EINTERNAL, is: openai.ErrMalformed, handler: func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"choices":[]}`)
		}},
		{name: "null content", code: domain.EINTERNAL, is: openai.ErrMalformed, handler: func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"choices":[{"message":{"role":"assistant","content":null}}]}`)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			url := refused
			if c.handler != nil {
				srv := httptest.NewServer(c.handler)
				defer srv.Close()
				url = srv.URL + "/v1"
			}
			text, err := client(t, url, secret, 200*time.Millisecond).Complete(context.Background(), turns)
			if err == nil {
				t.Fatalf("no error, answer %q", text)
			}
			if got := domain.ErrorCode(err); got != c.code {
				t.Errorf("code %s, want %s: %v", got, c.code, err)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %v is not %v", err, c.is)
			}
			var se *openai.StatusError
			if c.status != 0 && (!errors.As(err, &se) || se.StatusCode != c.status) {
				t.Errorf("error %v does not carry status %d", err, c.status)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error shows the key: %v", err)
			}
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) && c.is != openai.ErrTimeout {
				t.Errorf("error %v looks like the caller's context ending", err)
			}
		})
	}
}

func TestCompleteStopsWhenTheCallerCancels(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // lets the server notice the client leaving
		close(arrived)
		<-r.Context().Done()
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-arrived; cancel() }()
	_, err := client(t, srv.URL, "", time.Minute).Complete(ctx, turns)
	if !errors.Is(err, context.Canceled) || errors.Is(err, openai.ErrTimeout) {
		t.Fatalf("err = %v, want the caller's cancellation", err)
	}
}

func TestNewRefusesBadConfigAndConfigLogsNoKey(t *testing.T) {
	t.Parallel()
	for _, cfg := range []openai.Config{{URL: "localhost:11434", Model: "m"}, {URL: "ftp://x/v1", Model: "m"}, {URL: "http://x/v1"}} {
		if _, err := openai.New(cfg); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("New(%+v) = %v, want INVALID_PAYLOAD", cfg, err)
		}
	}
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("configured", "endpoint", openai.Config{URL: "http://u:pw@x/v1", Model: "m", Key: secret})
	if strings.Contains(b.String(), secret) || strings.Contains(b.String(), "pw") || !strings.Contains(b.String(), "key=true") {
		t.Fatalf("log line: %s", b.String())
	}
}
