package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/auraos/realtime/internal/syncbuf"
)

// The end-to-end tests run the real binary, built once for the package.
var auraosBin string

// lockHelperEnv, in a child test process, names the directory the child
// locks (see TestOpsLockDataDirHelper).
const lockHelperEnv = "AURAOS_TEST_LOCK_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(lockHelperEnv) != "" {
		os.Exit(m.Run()) // a helper child process needs no binary
	}
	dir, err := os.MkdirTemp("", "auraos-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	auraosBin = filepath.Join(dir, "auraos")
	args := []string{"build", "-o", auraosBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build auraos for the end-to-end tests:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is a running `auraos serve`.
type server struct {
	t       *testing.T
	URL     string
	DataDir string
	args    []string
	cmd     *exec.Cmd
	out     *syncbuf.Buffer
	exited  chan error
	done    bool // the process has exited and been waited for
}

// freeAddr returns a loopback address with a free port.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startServer runs `auraos serve` on a free port with the data directory and
// extra flags, and waits until it answers a Socket.IO handshake. It is
// stopped (SIGTERM) when the test ends, if still running.
func startServer(t *testing.T, dataDir string, extra ...string) *server {
	t.Helper()
	// The free port may be taken by another socket of the machine before
	// the server listens on it: then it is tried again on another.
	for attempt := 1; ; attempt++ {
		if s := launchServer(t, freeAddr(t), dataDir, attempt < 3, extra...); s != nil {
			return s
		}
	}
}

// launchServer runs `auraos serve` on addr and waits until it answers. It
// returns nil when retry is set and the server exited because addr was in
// use.
func launchServer(t *testing.T, addr, dataDir string, retry bool, extra ...string) *server {
	t.Helper()
	args := append([]string{"serve", "--addr", addr, "--data-dir", dataDir, "--node-id", "e2e-node", "--log-level", "debug"}, extra...)
	s := &server{t: t, URL: "http://" + addr, DataDir: dataDir, args: args, out: &syncbuf.Buffer{}, exited: make(chan error, 1)}
	s.cmd = exec.Command(auraosBin, args...)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	s.cmd.Env = append(os.Environ(), "AURAOS_EVENT_STORE=", "AURAOS_READ_DB=")
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.exited <- s.cmd.Wait() }()
	t.Cleanup(func() {
		if !s.done {
			s.stop()
		}
		if t.Failed() {
			t.Logf("server output:\n%s", s.out.String())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/socket.io/?EIO=4&transport=polling")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && bytes.HasPrefix(body, []byte("0{")) {
				return s
			}
		}
		select {
		case err := <-s.exited:
			s.done = true
			if retry && strings.Contains(s.out.String(), "address already in use") {
				return nil
			}
			t.Fatalf("server exited before it served: %v\n%s", err, s.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not answer within a minute:\n%s", s.out.String())
		}
		time.Sleep(50 * time.Millisecond) // waiting for a separate process to listen
	}
}

// stop sends SIGTERM and checks that the server exits 0 within 10 seconds.
func (s *server) stop() {
	s.t.Helper()
	if s.done {
		return
	}
	s.done = true
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.exited:
		if err != nil {
			s.t.Errorf("server exited with %v after SIGTERM\n%s", err, s.out.String())
		}
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		s.t.Errorf("server did not stop within 10s of SIGTERM\n%s", s.out.String())
	}
}

// kill stops the server with SIGKILL, as a crash would.
func (s *server) kill() {
	s.t.Helper()
	if s.done {
		return
	}
	s.done = true
	_ = s.cmd.Process.Kill()
	<-s.exited
}

// e2eDir holds the JavaScript end-to-end suite and its node_modules.
const e2eDir = "testdata/e2e"

// requireNode skips a test that needs the JavaScript client when Node.js or
// the suite's node_modules (installed by `make test`) are missing.
func requireNode(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("JavaScript end-to-end tests skipped: node is not installed")
	}
	if _, err := os.Stat(filepath.Join(e2eDir, "node_modules", "socket.io-client")); err != nil {
		t.Skip("JavaScript end-to-end tests skipped: run `npm ci --prefix " + filepath.Join("cmd/auraos", e2eDir) + "` (make test does)")
	}
}

// runJS runs one scenario of the JavaScript suite against url over one
// transport and fails the test with its output if it fails.
func runJS(t *testing.T, scenario, url, transport string, env ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "e2e.mjs", scenario, url, transport)
	cmd.Dir = e2eDir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scenario %s over %s failed: %v\n%s", scenario, transport, err, strings.TrimSpace(string(out)))
	}
	return string(out)
}
