package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// The servers under test, by the names the results and the table use.
const (
	serverOurs       = "ours"
	serverNode       = "node"
	serverNode2W     = "node-2w"
	serverCentrifugo = "centrifugo"
)

// serverTitles are the servers' names in the table.
var serverTitles = map[string]string{
	serverOurs:       "ours",
	serverNode:       "Node.js",
	serverNode2W:     "Node.js, 2 workers",
	serverCentrifugo: "Centrifugo v" + centrifugoVersion,
}

// newServers returns every server the scenarios may run, keyed by name;
// centrifugo is there only when its binary is (see centrifugo.go).
func newServers(o options, bin, centrifugoBin string) map[string]server {
	node := func(workers int) startFunc {
		return func(ctx context.Context, port int, dir string, extra []string) (*procHandle, error) {
			return startProcess(dir, o.node, "bench/node-server/server.js", strconv.Itoa(port), strconv.Itoa(workers))
		}
	}
	s := map[string]server{
		serverOurs: {name: serverOurs, ready: "/readyz", grace: 10 * time.Second, start: func(ctx context.Context, port int, dir string, extra []string) (*procHandle, error) {
			return startProcess(dir, bin, append(ourServeArgs(port, dir), extra...)...)
		}},
		// Node.js keeps nothing: after a storm it may still be flushing
		// gigabytes to closed sockets, so it gets a short grace.
		serverNode:   {name: serverNode, ready: "/healthz", grace: 2 * time.Second, start: node(1)},
		serverNode2W: {name: serverNode2W, ready: "/healthz", grace: 2 * time.Second, start: node(2)},
	}
	if centrifugoBin != "" {
		s[serverCentrifugo] = server{name: serverCentrifugo, ready: "/health", grace: 2 * time.Second, start: func(ctx context.Context, port int, dir string, extra []string) (*procHandle, error) {
			cfg := filepath.Join(dir, "config.json")
			if err := os.WriteFile(cfg, centrifugoConfig(port), 0o644); err != nil {
				return nil, err
			}
			return startProcess(dir, centrifugoBin, "--config", cfg)
		}}
	}
	return s
}

// ourServeArgs is `bin/auraos serve` at its defaults but for the message
// rate limit, which a load generator's senders would hit at once (issue 22
// measured it so too).
func ourServeArgs(port int, dir string) []string {
	return []string{"serve", "--addr", fmt.Sprintf("127.0.0.1:%d", port), "--data-dir", dir,
		"--node-id", "bench", "--log-level", "warn", "--rate-message", "100000", "--burst-message", "100000"}
}
