package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/auraos/realtime/socketadapter/jwtauth"
	"github.com/auraos/realtime/socketadapter/sockettest"
)

const (
	consolePassword = "s3cret console password"
	consoleSecret   = "a-console-test-secret-that-is-long-enough-0123"
)

// hashWithCLI runs `auraos hash-password` on password and returns the hash.
func hashWithCLI(t *testing.T, password string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(auraosBin, append([]string{"hash-password"}, args...)...)
	cmd.Stdin = strings.NewReader(password + "\n")
	out, err := cmd.Output()
	return strings.TrimSpace(string(out)), err
}

// startConsoleServer runs `auraos serve` with the Admin UI and the console
// on for admin/consolePassword, and HS256 tokens verified with
// consoleSecret.
func startConsoleServer(t *testing.T, extra ...string) *server {
	t.Helper()
	hash, err := hashWithCLI(t, consolePassword, "--cost", "4")
	if err != nil {
		t.Fatal(err)
	}
	return startServer(t, t.TempDir(), append([]string{"--admin-ui", "--admin-ui-password-hash", hash, "--jwt-secret", consoleSecret}, extra...)...)
}

// aliceInLobby connects alice, who joins her presence and the chat room
// lobby.
func aliceInLobby(t *testing.T, url string) *sockettest.Client {
	t.Helper()
	alice := sockettest.Dial(t, url, "websocket", nil)
	if ack := alice.EmitAck("join_user_room", map[string]any{"userId": "alice", "userProfile": sockettest.Profile("alice")}); ack["ok"] != true {
		t.Fatalf("join_user_room: %v", ack)
	}
	joinChat(t, alice, "alice", "lobby")
	return alice
}

// consoleGet fetches a console page with the request's credentials set by
// auth, and returns its status and body.
func consoleGet(t *testing.T, u string, auth func(*http.Request)) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != nil {
		auth(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

func basic(user, pw string) func(*http.Request) {
	return func(r *http.Request) { r.SetBasicAuth(user, pw) }
}

func bearer(t *testing.T, uid string, admin bool) func(*http.Request) {
	t.Helper()
	tok, err := jwtauth.Mint([]byte(consoleSecret), jwtauth.MintOptions{UID: uid, Admin: admin, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

func TestConsoleHashPassword(t *testing.T) {
	t.Parallel()
	hash, err := hashWithCLI(t, consolePassword, "--cost", "4")
	if err != nil {
		t.Fatal(err)
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(consolePassword)) != nil {
		t.Fatalf("hash-password printed %q, which does not match the password", hash)
	}
	for _, c := range []struct{ name, in string }{{"empty", ""}, {"too long", strings.Repeat("x", 73)}} {
		if out, err := hashWithCLI(t, c.in); err == nil {
			t.Fatalf("%s password: hashed to %q", c.name, out)
		}
	}
	// config print masks the hash, which could be attacked offline.
	out, stderr, code := runAuraos(t, []string{"AURAOS_ADMIN_UI_PASSWORD_HASH=" + hash}, "config", "print")
	if code != 0 || strings.Contains(out, hash) || !strings.Contains(out, "admin-ui-password-hash") {
		t.Fatalf("config print shows the hash or not the flag: exit %d\n%s%s", code, out, stderr)
	}
	// --admin-ui with nobody who could log in does not start.
	_, stderr, code = runAuraos(t, nil, "serve", "--addr", freeAddr(t), "--data-dir", t.TempDir(), "--admin-ui")
	if code == 0 || !strings.Contains(stderr, "--admin-ui needs --admin-ui-password-hash") {
		t.Fatalf("serve --admin-ui without a hash or JWT: exit %d\n%s", code, stderr)
	}
	_, stderr, code = runAuraos(t, nil, "serve", "--addr", freeAddr(t), "--data-dir", t.TempDir(), "--admin-ui", "--admin-ui-password-hash", "plain")
	if code == 0 || !strings.Contains(stderr, "not a bcrypt hash") {
		t.Fatalf("serve --admin-ui with a plain password: exit %d\n%s", code, stderr)
	}
}

func TestConsoleRefusesWithoutCredentials(t *testing.T) {
	t.Parallel()
	srv := startConsoleServer(t)
	cases := []struct {
		name   string
		auth   func(*http.Request)
		status int
	}{
		{"no credentials", nil, http.StatusUnauthorized},
		{"wrong password", basic("admin", "wrong"), http.StatusUnauthorized},
		{"no password", basic("admin", ""), http.StatusUnauthorized},
		{"wrong username", basic("root", consolePassword), http.StatusUnauthorized},
		{"forged token", func(r *http.Request) { r.Header.Set("Authorization", "Bearer not-a-jwt") }, http.StatusUnauthorized},
		{"a user's token", bearer(t, "mallory", false), http.StatusForbidden},
		{"password", basic("admin", consolePassword), http.StatusOK},
		{"admin token", bearer(t, "ops", true), http.StatusOK},
	}
	for _, c := range cases {
		for _, path := range []string{"/console/events", "/console/projections", "/console/static/console.js"} {
			status, body, h := consoleGet(t, srv.URL+path, c.auth)
			if status != c.status {
				t.Fatalf("%s: GET %s: %d, want %d\n%s", c.name, path, status, c.status, body)
			}
			if status == http.StatusUnauthorized && !strings.HasPrefix(h.Get("WWW-Authenticate"), "Basic ") {
				t.Fatalf("%s: 401 without a Basic challenge: %q", c.name, h.Get("WWW-Authenticate"))
			}
		}
	}
}

// csrfToken reads the console's CSRF token from a page.
func csrfToken(t *testing.T, page string) string {
	t.Helper()
	m := regexp.MustCompile(`<meta name="csrf-token" content="([0-9a-f]+)">`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token in the page:\n%s", page)
	}
	return m[1]
}

// consolePost posts to a console URL as the operator with the headers.
func consolePost(t *testing.T, u string, header map[string]string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", u, nil)
	req.SetBasicAuth("admin", consolePassword)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestConsolePages(t *testing.T) {
	t.Parallel()
	srv := startConsoleServer(t)
	op := basic("admin", consolePassword)
	get := func(path string) string {
		t.Helper()
		status, body, _ := consoleGet(t, srv.URL+path, op)
		if status != http.StatusOK {
			t.Fatalf("GET %s: %d\n%s", path, status, body)
		}
		return body
	}

	alice := aliceInLobby(t, srv.URL)
	say(t, alice, "alice", "lobby", "hello from the console test")
	if ack := alice.EmitAck("update_app_status", map[string]any{"appId": "billing", "status": "active", "userProfile": sockettest.Profile("alice")}); ack["ok"] != true {
		t.Fatalf("update_app_status: %v", ack)
	}

	page := get("/console/events")
	for _, want := range []string{`name="viewport"`, "<td>chat-lobby</td><td>MessagePosted</td>", "PresenceJoined", "AppStatusChanged"} {
		if !strings.Contains(page, want) {
			t.Fatalf("the event log lacks %q:\n%s", want, page)
		}
	}
	// Filters select as events read does.
	filtered := get("/console/events?" + url.Values{"type": {"MessagePosted"}, "user": {"alice"}}.Encode())
	if !strings.Contains(filtered, ">MessagePosted<") || strings.Contains(filtered, ">PresenceJoined<") || strings.Contains(filtered, ">AppStatusChanged<") {
		t.Fatalf("type and user filters:\n%s", filtered)
	}
	if status, body, _ := consoleGet(t, srv.URL+"/console/events?since=yesterday", op); status != http.StatusBadRequest {
		t.Fatalf("a bad since: %d %s", status, body)
	}
	// The newest event first, and the follow sees what comes after it.
	first := regexp.MustCompile(`<tr data-position="([^"]+)">`).FindStringSubmatch(page)
	if first == nil {
		t.Fatal("no event rows")
	}
	var follow struct {
		Events []struct {
			Position, Type string
		} `json:"events"`
	}
	say(t, alice, "alice", "lobby", "a later message")
	_, body, _ := consoleGet(t, srv.URL+"/console/events.json?"+url.Values{"after": {first[1]}, "type": {"MessagePosted"}}.Encode(), op)
	if err := json.Unmarshal([]byte(body), &follow); err != nil || len(follow.Events) != 1 || follow.Events[0].Type != "MessagePosted" {
		t.Fatalf("events.json after %s: %v %s", first[1], err, body)
	}

	// One event: its data, metadata and causation chain.
	posted := regexp.MustCompile(`<tr data-position="([^"]+)"><td>.*?</td><td[^>]*>[^<]*</td><td>chat-lobby</td><td>MessagePosted</td>`).FindStringSubmatch(get("/console/events?type=MessagePosted"))
	if posted == nil {
		t.Fatal("no MessagePosted row")
	}
	ev := get("/console/events/" + posted[1])
	for _, want := range []string{"a later message", "Causation chain", "correlationId", `id="chain"`, `class="current"`} {
		if !strings.Contains(ev, want) {
			t.Fatalf("the event page lacks %q:\n%s", want, ev)
		}
	}
	if status, _, _ := consoleGet(t, srv.URL+"/console/events/999999", op); status != http.StatusNotFound {
		t.Fatalf("an event that does not exist: %d", status)
	}

	if p := get("/console/users"); !strings.Contains(p, "alice") {
		t.Fatalf("online users lack alice:\n%s", p)
	}
	if p := get("/console/rooms"); !strings.Contains(p, "lobby") || !strings.Contains(p, "1 member") || !strings.Contains(p, "a later message") {
		t.Fatalf("chat rooms:\n%s", p)
	}
	if p := get("/console/apps"); !strings.Contains(p, "billing") || !strings.Contains(p, "active") {
		t.Fatalf("apps:\n%s", p)
	}

	// A rebuild needs the CSRF token and the console's origin.
	proj := get("/console/projections")
	// The hash chain's head, as `events head` prints it.
	if !strings.Contains(proj, "chat-history") || !regexp.MustCompile(`Head at \d+: <code>[0-9a-f]{64}</code>`).MatchString(proj) {
		t.Fatalf("projections page:\n%s", proj)
	}
	token := csrfToken(t, proj)
	rebuild := srv.URL + "/console/projections/chat-history/rebuild"
	for _, c := range []struct {
		name   string
		header map[string]string
		status int
	}{
		{"no token", nil, http.StatusForbidden},
		{"wrong token", map[string]string{"X-CSRF-Token": "0000"}, http.StatusForbidden},
		{"another origin", map[string]string{"X-CSRF-Token": token, "Origin": "https://evil.example"}, http.StatusForbidden},
		{"cross-site fetch", map[string]string{"X-CSRF-Token": token, "Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
	} {
		if got := consolePost(t, rebuild, c.header); got != c.status {
			t.Fatalf("rebuild with %s: %d, want %d", c.name, got, c.status)
		}
	}
	if got := consolePost(t, srv.URL+"/console/projections/nothing/rebuild", map[string]string{"X-CSRF-Token": token}); got != http.StatusBadRequest {
		t.Fatalf("rebuild of an unknown projection: %d", got)
	}
	if got := consolePost(t, rebuild, map[string]string{"X-CSRF-Token": token, "Origin": srv.URL}); got != http.StatusAccepted {
		t.Fatalf("rebuild: %d", got)
	}
	waitRebuilt(t, srv.URL, "chat-history")
	if p := get("/console/rooms"); !strings.Contains(p, "a later message") {
		t.Fatalf("chat rooms after the rebuild:\n%s", p)
	}
}

// waitRebuilt polls projections.json until the projection's rebuild has
// finished, and fails the test if it failed.
func waitRebuilt(t *testing.T, base, name string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		_, body, _ := consoleGet(t, base+"/console/projections.json", basic("admin", consolePassword))
		var st struct {
			Projections []struct {
				Name    string `json:"name"`
				Rebuild *struct {
					Running bool   `json:"running"`
					Error   string `json:"error"`
					Events  int    `json:"events"`
				} `json:"rebuild"`
			} `json:"projections"`
		}
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatalf("projections.json: %v\n%s", err, body)
		}
		for _, p := range st.Projections {
			if p.Name == name && p.Rebuild != nil && !p.Rebuild.Running {
				if p.Rebuild.Error != "" || p.Rebuild.Events == 0 {
					t.Fatalf("rebuild of %s: %+v", name, *p.Rebuild)
				}
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rebuild of %s did not finish within a minute: %s", name, body)
		}
		time.Sleep(100 * time.Millisecond) // polling a separate process
	}
}
