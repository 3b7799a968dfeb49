package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auraos/realtime/schema/schematest"
	"github.com/auraos/realtime/socketadapter/sockettest"
)

// scrape reads the server's /metrics into name{labels} → value.
func scrape(t *testing.T, base string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

func getStatus(t *testing.T, u string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

func TestHealthReadinessAndMetricsMove(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir())
	if code, body := getStatus(t, srv.URL+"/healthz"); code != 200 || body["status"] != "ok" {
		t.Fatalf("/healthz: %d %v", code, body)
	}
	if code, body := getStatus(t, srv.URL+"/readyz"); code != 200 || body["status"] != "ok" {
		t.Fatalf("/readyz: %d %v", code, body)
	}
	before := scrape(t, srv.URL)
	c := sockettest.Dial(t, srv.URL, "websocket", nil)
	c.EmitAck("join_user_room", map[string]any{"userId": "m1", "userProfile": sockettest.Profile("m1")})
	c.EmitAck("join_chat_room", map[string]any{"roomName": "metrics", "userProfile": sockettest.Profile("m1")})
	c.EmitAck("send_message", map[string]any{"roomName": "metrics", "message": "count me", "userProfile": sockettest.Profile("m1")})
	c.EmitAck("send_message", map[string]any{"roomName": "metrics", "message": "", "userProfile": sockettest.Profile("m1")})
	c.WaitEvent("online_users", nil)
	// The ack means stored; the chat-history projection applies the
	// message a moment later.
	after := scrape(t, srv.URL)
	for deadline := time.Now().Add(10 * time.Second); after[`auraos_projection_events_total{projection="chat-history"}`] <= before[`auraos_projection_events_total{projection="chat-history"}`] && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		after = scrape(t, srv.URL)
	}
	grew := []string{
		`auraos_client_events_total{event="send_message",outcome="ok"}`,
		`auraos_client_events_total{event="send_message",outcome="INVALID_PAYLOAD"}`,
		`auraos_events_appended_total{type="MessagePosted"}`,
		`auraos_events_appended_total{type="PresenceJoined"}`,
		`auraos_pushes_total{event="new_message"}`,
		`auraos_pushes_total{event="online_users"}`,
		`auraos_ack_duration_seconds_count`,
		`auraos_append_batch_size_count`,
		`auraos_projection_events_total{projection="chat-history"}`,
		`auraos_projection_position{projection="chat-history"}`,
	}
	for _, name := range grew {
		if after[name] <= before[name] {
			t.Errorf("%s did not grow: %v → %v", name, before[name], after[name])
		}
	}
	if after[`auraos_connected_sockets{transport="websocket"}`] < 1 || after["auraos_online_users"] < 1 {
		t.Errorf("gauges: sockets %v, online %v", after[`auraos_connected_sockets{transport="websocket"}`], after["auraos_online_users"])
	}
	if after["go_goroutines"] == 0 || after["process_resident_memory_bytes"] == 0 {
		t.Error("Go runtime and process metrics are missing")
	}
	// Logs: refused events at info with their code; no message bodies.
	out := srv.out.String()
	if !strings.Contains(out, "code=INVALID_PAYLOAD") || strings.Contains(out, "count me") {
		t.Fatalf("log lines:\n%s", out)
	}
}

// proxy forwards TCP connections to a target until cut, like a database
// server that stops and starts again on the same port.
type proxy struct {
	t      *testing.T
	addr   string
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
}

// newProxy listens on a port of its own choosing: picking a free port and
// listening on it later lets another socket of the machine take it between.
func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, target: target, addr: ln.Addr().String()}
	p.serve(ln)
	t.Cleanup(p.cut)
	return p
}

// start listens again on the proxy's address after a cut. The port was
// free a moment ago; a socket that took it meanwhile (another test's
// connection, say) is given a few seconds to let go.
func (p *proxy) start() {
	var ln net.Listener
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if ln, err = net.Listen("tcp", p.addr); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		p.t.Fatal(err)
	}
	p.serve(ln)
}

// serve accepts connections on ln and forwards them to the target.
func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			target := p.target
			p.mu.Unlock()
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
}

// retarget sends new connections to target and drops the current ones,
// as a load balancer moving its clients to another server does.
func (p *proxy) retarget(target string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target = target
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// cut stops listening and drops every connection.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// A database that goes away turns /readyz red and gives clients
// UNAVAILABLE instead of a hang; when it is back, so is the server.
func TestStoppedDatabase(t *testing.T) {
	t.Parallel()
	if os.Getenv(schematest.PostgresEnv) == "" {
		t.Skip("needs PostgreSQL: set " + schematest.PostgresEnv)
	}
	u, err := url.Parse(schematest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	p := newProxy(t, u.Host)
	u.Host = p.addr
	q := u.Query()
	q.Set("connect_timeout", "2")
	u.RawQuery = q.Encode()
	srv := startServer(t, t.TempDir(), "--event-store", u.String(), "--read-db", u.String(), "--command-timeout", "3s")
	c := sockettest.Dial(t, srv.URL, "websocket", nil)
	c.EmitAck("join_chat_room", map[string]any{"roomName": "db", "userProfile": sockettest.Profile("db")})
	if ack := c.EmitAck("send_message", map[string]any{"roomName": "db", "message": "before", "userProfile": sockettest.Profile("db")}); ack["ok"] != true {
		t.Fatalf("before the outage: %v", ack)
	}

	p.cut()
	code, body := getStatus(t, srv.URL+"/readyz")
	if code != http.StatusServiceUnavailable || body["status"] != "unavailable" {
		t.Fatalf("/readyz with the database down: %d %v", code, body)
	}
	start := time.Now()
	ack := c.EmitAck("send_message", map[string]any{"roomName": "db", "message": "during", "userProfile": sockettest.Profile("db")})
	if e, _ := ack["error"].(map[string]any); ack["ok"] != false || e["code"] != "UNAVAILABLE" {
		t.Fatalf("send_message with the database down: %v", ack)
	}
	if took := time.Since(start); took > 4500*time.Millisecond {
		t.Fatalf("the client waited %s for UNAVAILABLE", took)
	}
	if code, _ := getStatus(t, srv.URL+"/healthz"); code != 200 {
		t.Fatalf("/healthz during the outage: %d", code)
	}

	p.start()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ack := c.EmitAck("send_message", map[string]any{"roomName": "db", "message": "after", "userProfile": sockettest.Profile("db")})
		code, _ := getStatus(t, srv.URL+"/readyz")
		if ack["ok"] == true && code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server did not recover: ack %v, /readyz %d", ack, code)
		}
		time.Sleep(200 * time.Millisecond) // waiting for reconnects in another process
	}
}

func TestConfigPrecedenceAndPrint(t *testing.T) {
	dir := t.TempDir()
	file := dir + "/auraos.yaml"
	if err := os.WriteFile(file, []byte("addr: \":7000\"\nstatus-interval: 15s\nmax-frame: 2048\njwt-secret: file-secret-file-secret-file-secret-00\nevent-store: postgres://u:pw@db.example/x\ncors-origins: [https://a.example, https://b.example]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AURAOS_STATUS_INTERVAL", "20s")
	t.Setenv("AURAOS_CONFIG", file)
	root := newRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"config", "print"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"addr: :7000\n",                                  // file over default
		"status-interval: 20s\n",                         // environment over file
		"max-frame: \"2048\"\n",                          // file
		"jwt-secret: '********'\n",                       // masked
		"event-store: postgres://u:xxxxx@db.example/x\n", // password masked
		"cors-origins: https://a.example,https://b.example\n",
		"log-level: info\n", // default
	} {
		if !strings.Contains(got, want) {
			t.Errorf("config print lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "file-secret") || strings.Contains(got, ":pw@") {
		t.Fatalf("a secret leaked:\n%s", got)
	}
	// A flag on the command line wins over everything.
	serve, _, _ := root.Find([]string{"serve"})
	if err := serve.Flags().Parse([]string{"--status-interval", "5s"}); err != nil {
		t.Fatal(err)
	}
	if err := applyEnvironment(serve.Flags()); err != nil {
		t.Fatal(err)
	}
	if err := applyConfigFile(root, serve.Flags(), file); err != nil {
		t.Fatal(err)
	}
	if v := serve.Flags().Lookup("status-interval").Value.String(); v != "5s" {
		t.Fatalf("status-interval %s, want the command line's 5s", v)
	}
}

// A negative --gc-headroom is refused before anything is opened.
func TestGCHeadroomFlag(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out, err := exec.Command(auraosBin, "serve", "--addr", freeAddr(t), "--data-dir", dir, "--gc-headroom", "-1").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--gc-headroom -1: must be 0 (off) or a number of MiB") {
		t.Fatalf("serve --gc-headroom -1: err=%v, want the flag's error in:\n%s", err, out)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("the refused serve wrote %d entries into its data directory", len(entries))
	}
}
