package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auraos/realtime/internal/syncbuf"
	"github.com/auraos/realtime/schema/schematest"
)

// The JavaScript end-to-end suite (testdata/e2e/e2e.mjs) drives `auraos
// serve` with the official socket.io-client over both transports. Scenarios
// that need the same flags share one server and run one after another (the
// app counts of "apps" assume nobody else changes apps meanwhile); the
// groups with their own servers run in parallel.
//
// (This file is not named e2e_js_test.go: the _js suffix would make it a
// GOOS=js file that never builds here.)

var jsTransports = []string{"websocket", "polling"}

// runJSScenarios runs each scenario over each transport against s, as
// subtests named scenario/transport.
func runJSScenarios(t *testing.T, s *server, scenarios []string, env ...string) {
	t.Helper()
	for _, sc := range scenarios {
		for _, tr := range jsTransports {
			t.Run(sc+"/"+tr, func(t *testing.T) {
				runJS(t, sc, s.URL, tr, env...)
			})
		}
	}
}

// TestJSProtocol covers every event of SOCKET_EVENTS.md and the rules of
// PROTOCOL.md on a server with the default flags.
//
// It runs before the parallel JS tests, alone: connect-race loads the CPU on
// purpose.
func TestJSProtocol(t *testing.T) {
	requireNode(t)
	s := startServer(t, t.TempDir())
	runJSScenarios(t, s, []string{"presence", "chat", "typing", "notifications", "system", "apps", "agent",
		"validation", "identity", "recovery", "cors-open", "connect-race"})
}

// TestJSPeriodicStatus checks system_status_update every --status-interval,
// and the on-demand status amid the periodic ones.
func TestJSPeriodicStatus(t *testing.T) {
	requireNode(t)
	t.Parallel()
	s := startServer(t, t.TempDir(), "--status-interval", "1s")
	runJSScenarios(t, s, []string{"status-periodic", "apps"})
}

// TestJSLimits checks --max-frame (a bigger frame closes only its socket),
// the per-socket rate limits and a restricted --cors-origins. The scenarios
// assume these flags.
func TestJSLimits(t *testing.T) {
	requireNode(t)
	t.Parallel()
	s := startServer(t, t.TempDir(), "--max-frame", "4096", "--cors-origins", "http://allowed.example",
		"--rate-message", "1", "--burst-message", "5", "--rate-typing", "1", "--burst-typing", "5",
		"--rate-notification", "1", "--burst-notification", "5", "--rate-agent", "1", "--burst-agent", "5")
	runJSScenarios(t, s, []string{"maxframe", "ratelimit", "cors-restricted"})
}

// jsJWTSecret is the HS256 secret of the token tests (at least 32 bytes).
const jsJWTSecret = "e2e-secret-0123456789abcdef-0123456789"

// TestJSAuth checks handshake tokens: --auth jwt with an HS256 secret, open
// mode with a secret (verified tokens set identity and admin), and --auth jwt
// with a JWKS (RS256 and ES256 keys), issuer and audience as Firebase ID
// tokens use them.
func TestJSAuth(t *testing.T) {
	requireNode(t)
	t.Parallel()
	secretEnv := "E2E_JWT_SECRET=" + jsJWTSecret
	t.Run("jwt", func(t *testing.T) {
		s := startServer(t, t.TempDir(), "--auth", "jwt", "--jwt-secret", jsJWTSecret)
		runJSScenarios(t, s, []string{"auth-jwt"}, secretEnv)
	})
	t.Run("open", func(t *testing.T) {
		s := startServer(t, t.TempDir(), "--jwt-secret", jsJWTSecret)
		runJSScenarios(t, s, []string{"auth-open-token"}, secretEnv)
	})
	t.Run("jwks", func(t *testing.T) {
		jwksURL, keys := jwksServer(t)
		const project = "auraos-e2e"
		issuer := "https://securetoken.google.com/" + project
		s := startServer(t, t.TempDir(), "--auth", "jwt", "--jwks-url", jwksURL, "--jwt-issuer", issuer, "--jwt-audience", project)
		cfg, err := json.Marshal(map[string]any{"issuer": issuer, "audience": project, "rs": keys["rs"], "es": keys["es"]})
		if err != nil {
			t.Fatal(err)
		}
		runJSScenarios(t, s, []string{"auth-jwks"}, "E2E_JWKS="+string(cfg))
	})
}

// jwksKey is a signing key of the JWKS test server, for the JavaScript side.
type jwksKey struct {
	Kid string `json:"kid"`
	PEM string `json:"pem"` // PKCS #8 private key
}

// jwksServer serves a JWKS with a fresh RS256 key ("rs") and ES256 key ("es")
// and returns its URL and the private keys.
func jwksServer(t *testing.T) (string, map[string]jwksKey) {
	t.Helper()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecdhKey, err := ecKey.ECDH()
	if err != nil {
		t.Fatal(err)
	}
	point := ecdhKey.PublicKey().Bytes() // 0x04 || X || Y
	b64 := base64.RawURLEncoding.EncodeToString
	jwks, err := json.Marshal(map[string]any{"keys": []map[string]any{
		{"kty": "RSA", "kid": "e2e-rs", "use": "sig", "alg": "RS256", "n": b64(rsaKey.N.Bytes()), "e": b64(big.NewInt(int64(rsaKey.E)).Bytes())},
		{"kty": "EC", "kid": "e2e-es", "use": "sig", "alg": "ES256", "crv": "P-256", "x": b64(point[1:33]), "y": b64(point[33:])},
	}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwks)
	}))
	t.Cleanup(srv.Close)
	pemOf := func(key any) string {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	}
	return srv.URL, map[string]jwksKey{"rs": {Kid: "e2e-rs", PEM: pemOf(rsaKey)}, "es": {Kid: "e2e-es", PEM: pemOf(ecKey)}}
}

// TestJSRestart checks that after a restart, after a crash (SIGKILL) or a
// clean stop (SIGTERM) with clients still connected, nobody from before is
// online and the chat history survived.
func TestJSRestart(t *testing.T) {
	requireNode(t)
	t.Parallel()
	for _, mode := range []string{"crash", "stop"} {
		for _, tr := range jsTransports {
			t.Run(mode+"/"+tr, func(t *testing.T) {
				dir := t.TempDir()
				s := startServer(t, dir)
				before := startJS(t, "restart-before", s.URL, tr)
				state := before.firstLine(t)
				if mode == "crash" {
					s.kill()
				} else {
					s.stop()
				}
				before.wait(t) // its clients see the server go and it exits
				s2 := startServer(t, dir, "--presence-grace", "1s")
				runJS(t, "restart-after", s2.URL, tr, "E2E_STATE="+state)
				s2.stop()
			})
		}
	}
}

// jsProcess is a scenario running in the background.
type jsProcess struct {
	name   string
	cmd    *exec.Cmd
	out    *syncbuf.Buffer // stdout and stderr
	lines  chan string     // stdout lines
	stdin  io.WriteCloser
	exited chan error
	cancel context.CancelFunc
}

// startJS starts a scenario that keeps running while the test acts on the
// server; see firstLine and wait.
func startJS(t *testing.T, scenario, url, transport string, env ...string) *jsProcess {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	p := &jsProcess{name: scenario + " over " + transport, out: &syncbuf.Buffer{}, lines: make(chan string, 16), exited: make(chan error, 1), cancel: cancel}
	p.cmd = exec.CommandContext(ctx, "node", "e2e.mjs", scenario, url, transport)
	p.cmd.Dir = e2eDir
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stderr = p.out
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var copied sync.WaitGroup
	copied.Add(1)
	go func() {
		defer copied.Done()
		defer close(p.lines)
		sc := bufio.NewScanner(io.TeeReader(stdout, p.out))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
	}()
	go func() {
		copied.Wait()
		p.exited <- p.cmd.Wait()
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
		}
	})
	return p
}

// firstLine returns the first line the scenario prints on stdout that is a
// JSON object, failing the test if it exits or takes a minute first.
func (p *jsProcess) firstLine(t *testing.T) string {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				err := <-p.exited
				p.exited <- err
				t.Fatalf("scenario %s exited (%v) before printing its state:\n%s", p.name, err, strings.TrimSpace(p.out.String()))
			}
			if strings.HasPrefix(l, "{") {
				return l
			}
		case <-timeout:
			t.Fatalf("scenario %s printed no state within a minute:\n%s", p.name, strings.TrimSpace(p.out.String()))
		}
	}
}

// say writes a line to the scenario's stdin: the step it waits for is done.
func (p *jsProcess) say(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		t.Fatalf("scenario %s: %v", p.name, err)
	}
}

// wait waits for the scenario to exit and fails the test unless it exits 0.
func (p *jsProcess) wait(t *testing.T) {
	t.Helper()
	select {
	case err := <-p.exited:
		p.exited <- err
		if err != nil {
			t.Fatalf("scenario %s failed: %v\n%s", p.name, err, strings.TrimSpace(p.out.String()))
		}
	case <-time.After(time.Minute):
		p.cancel()
		t.Fatalf("scenario %s did not exit within a minute:\n%s", p.name, strings.TrimSpace(p.out.String()))
	}
}

// TestJSRecoveryFromTheLog checks Connection State Recovery served from
// the log with the official client: a member that dropped recovers, with
// exactly what it missed and nobody seeing it leave or join, after a kill
// -9 and restart of its server, and on another server sharing PostgreSQL;
// past the recovery window it connects afresh.
func TestJSRecoveryFromTheLog(t *testing.T) {
	requireNode(t)
	t.Parallel()
	grace := []string{"--presence-grace", "30s"} // longer than the test: no leave may be seen
	for _, tr := range jsTransports {
		t.Run("kill -9 and restart/"+tr, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s := startServer(t, dir, grace...)
			lb := newProxy(t, strings.TrimPrefix(s.URL, "http://"))
			p := startJS(t, "recover-log", "http://"+lb.addr, tr)
			p.firstLine(t)
			s.kill()
			s2 := startServer(t, dir, grace...)
			lb.retarget(strings.TrimPrefix(s2.URL, "http://"))
			p.say(t, "restarted")
			p.wait(t)
		})
		t.Run("another server/"+tr, func(t *testing.T) {
			t.Parallel()
			pg := schematest.PostgresURL(t) // skips without AURAOS_TEST_POSTGRES_URL
			shared := append([]string{"--event-store", pg, "--read-db", pg}, grace...)
			s1 := startServer(t, t.TempDir(), append(shared, "--node-id", "first")...)
			s2 := startServer(t, t.TempDir(), append(shared, "--node-id", "second")...)
			lb := newProxy(t, strings.TrimPrefix(s1.URL, "http://"))
			p := startJS(t, "recover-log", "http://"+lb.addr, tr)
			p.firstLine(t)
			lb.retarget(strings.TrimPrefix(s2.URL, "http://"))
			p.say(t, "moved")
			p.wait(t)
		})
		t.Run("past the window/"+tr, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, t.TempDir(), "--recovery-window", "1s", "--presence-grace", "500ms")
			runJS(t, "recover-expired", s.URL, tr)
		})
	}
}
