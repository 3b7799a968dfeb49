// Package natstest gives tests a NATS server with JetStream: the one
// AURAOS_TEST_NATS_URL names, or a nats-server process of the test's own,
// which a test can also stop and start again to play a broker restart.
package natstest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// URLEnv names the variable that points tests at a running NATS server with
// JetStream enabled (CI sets it to nats://127.0.0.1:4222).
const URLEnv = "AURAOS_TEST_NATS_URL"

// URL returns the URL of a NATS server with JetStream for the test: the one
// AURAOS_TEST_NATS_URL names (the test fails when it is set but
// unreachable), else a server of the test's own (see Start). Tests that
// share a server keep apart through Prefix.
func URL(t testing.TB) string {
	t.Helper()
	if u := os.Getenv(URLEnv); u != "" {
		nc, err := nats.Connect(u, nats.Timeout(5*time.Second))
		if err != nil {
			t.Fatalf("%s is set but unreachable: %v", URLEnv, err)
		}
		nc.Close()
		return u
	}
	return Start(t).URL
}

// Prefix returns a signals prefix no other test uses, so that tests sharing
// one NATS server keep their subjects and buckets apart. On the server
// AURAOS_TEST_NATS_URL names, the prefix's lease bucket is deleted when the
// test ends, so runs leave nothing behind.
func Prefix(t testing.TB) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "test_" + hex.EncodeToString(b[:])
	if u := os.Getenv(URLEnv); u != "" {
		t.Cleanup(func() {
			nc, err := nats.Connect(u, nats.Timeout(5*time.Second))
			if err != nil {
				return
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			// natssignal names the bucket <prefix>-nodes (this package cannot
			// import it: natssignal's own tests import this one).
			_ = js.DeleteKeyValue(ctx, prefix+"-nodes")
		})
	}
	return prefix
}

// Server is a nats-server process that belongs to one test: its own port
// and its own JetStream directory, so stopping it disturbs no one else.
type Server struct {
	// URL is where clients connect; it stays the same across Restart.
	URL string

	t    testing.TB
	bin  string
	addr string
	dir  string

	mu   sync.Mutex // guards cmd and done
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited

	logMu sync.Mutex
	log   strings.Builder
}

// binary finds nats-server on PATH or where Debian's package puts it.
func binary() string {
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nats-server"); err == nil {
		return "/usr/sbin/nats-server"
	}
	return ""
}

// Start runs a nats-server with JetStream on a free loopback port and its
// own storage directory, waits until it is ready, and stops it when the
// test ends. It skips the test, saying why, when nats-server is not
// installed.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := binary()
	if bin == "" {
		t.Skip("NATS tests skipped: install nats-server (apt-get install nats-server) or set " + URLEnv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := &Server{URL: "nats://" + addr, t: t, bin: bin, addr: addr, dir: t.TempDir()}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// Start starts the server again after Stop, on the same port with the same
// storage (so JetStream keeps its buckets, as a restarted broker does), and
// waits until it is ready.
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.t.Fatal("natstest: the server is already running")
	}
	host, port, _ := net.SplitHostPort(s.addr)
	cmd := exec.Command(s.bin, "-a", host, "-p", port, "-js", "-sd", s.dir)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start nats-server: %v", err)
	}
	ready := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		announced := false
		for sc.Scan() {
			s.logMu.Lock()
			s.log.WriteString(sc.Text() + "\n")
			s.logMu.Unlock()
			if !announced && strings.Contains(sc.Text(), "Server is ready") {
				announced = true
				close(ready)
			}
		}
		_ = cmd.Wait()
	}()
	select {
	case <-ready:
	case <-done:
		s.t.Fatalf("nats-server exited before it was ready:\n%s", s.logText())
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		s.t.Fatalf("nats-server was not ready within 30s:\n%s", s.logText())
	}
	s.cmd, s.done = cmd, done
}

// Stop stops the server (SIGTERM, as a broker restart does) and waits for it
// to exit; clients see their connection drop. Stopping a stopped server does
// nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd, s.done = nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func (s *Server) logText() string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.log.String()
}

// String names the server in test output.
func (s *Server) String() string { return fmt.Sprintf("nats-server at %s", s.URL) }
