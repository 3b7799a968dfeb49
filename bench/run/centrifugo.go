package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// centrifugoVersion is the Centrifugo issue 22 compares with: the server a
// Go shop would pick instead.
const centrifugoVersion = "6.9.1"

// buildCentrifugo returns the path of Centrifugo's binary, building it with
// `go install` from the Go module proxy into a cache directory the first
// time (that takes minutes; later runs reuse it).
func buildCentrifugo(ctx context.Context) (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("centrifugo: no cache directory: %w", err)
	}
	dir := filepath.Join(cache, "auraos-bench", "centrifugo-v"+centrifugoVersion)
	bin := filepath.Join(dir, "centrifugo")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	logf("building Centrifugo v%s into %s (go install; minutes)", centrifugoVersion, dir)
	cmd := exec.CommandContext(ctx, "go", "install", "github.com/centrifugal/centrifugo/v6@v"+centrifugoVersion)
	// Outside the module: go install pkg@version builds Centrifugo with its
	// own go.mod, not ours.
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("-centrifugo: building Centrifugo v%s failed (%v); drop -centrifugo to run without it:\n%s",
			centrifugoVersion, err, tailString(out.String(), 20))
	}
	return bin, nil
}

// centrifugoConfig is the reference setup of issue 22: the memory engine (the
// default), a history of 50 per channel with recovery on (not durable: it
// lives in memory), clients that connect, subscribe and publish without
// tokens (insecure client mode: the bench has no backend issuing them).
func centrifugoConfig(port int) []byte {
	channel := map[string]any{
		"history_size": 50, "history_ttl": "300s", "force_recovery": true,
		"allow_subscribe_for_client": true, "allow_publish_for_client": true,
		"allow_subscribe_for_anonymous": true, "allow_publish_for_anonymous": true,
	}
	cfg := map[string]any{
		"http_server": map[string]any{"address": "127.0.0.1", "port": port},
		"log":         map[string]any{"level": "warn"},
		"health":      map[string]any{"enabled": true},
		"client":      map[string]any{"insecure": true, "allowed_origins": []string{"*"}},
		"channel":     map[string]any{"without_namespace": channel},
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	return b
}

// tailString is the last n lines of s.
func tailString(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
