package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// browserDir holds the browser suite (browser.mjs) and its node_modules:
// playwright-core, the official Admin UI's built page and socket.io-client.
const browserDir = "testdata/browser"

// screenshotsEnv, when set to a directory, makes the browser tests save
// their screenshots there (`make screenshots` sets it to cmd/auraos/console/screenshots/).
const screenshotsEnv = "AURAOS_TEST_SCREENSHOTS"

// requireBrowser returns Chromium's path. Without Chromium, Node.js or the
// suite's node_modules it skips the test, unless CI is set: there the
// browser tests must run, so it fails.
func requireBrowser(t *testing.T) string {
	t.Helper()
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	missing := ""
	if _, err := os.Stat(chromium); err != nil {
		missing = "Chromium is not installed at " + chromium + " (apt-get install chromium)"
	} else if _, err := exec.LookPath("node"); err != nil {
		missing = "node is not installed"
	} else if _, err := os.Stat(filepath.Join(browserDir, "node_modules", "playwright-core")); err != nil {
		missing = "run `npm ci --prefix " + filepath.Join("cmd/auraos", browserDir) + "` (make test does)"
	}
	if missing == "" {
		return chromium
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("browser tests cannot run in CI: %s", missing)
	}
	t.Skipf("browser tests skipped: %s", missing)
	return ""
}

// runBrowser runs one scenario of browser.mjs against the server.
func runBrowser(t *testing.T, chromium, scenario, url string, env ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "browser.mjs", scenario, url)
	cmd.Dir = browserDir
	cmd.Env = append(os.Environ(), append([]string{"CHROMIUM=" + chromium, "CONSOLE_USER=admin", "CONSOLE_PASSWORD=" + consolePassword}, env...)...)
	if dir := os.Getenv(screenshotsEnv); dir != "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			t.Fatal(err)
		}
		cmd.Env = append(cmd.Env, "SCREENSHOT_DIR="+abs)
	}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok "+scenario) {
		t.Fatalf("browser scenario %s failed: %v\n%s", scenario, err, strings.TrimSpace(string(out)))
	}
}

// The console in a real browser: log in, see a connected user, watch a
// message arrive in the event log, open it, rebuild a projection to the
// end.
func TestConsoleInBrowser(t *testing.T) {
	// Not parallel: Chromium takes both cores while it starts, and the
	// package's parallel tests run after the sequential ones.
	chromium := requireBrowser(t)
	srv := startConsoleServer(t)
	alice := aliceInLobby(t, srv.URL)
	say(t, alice, "alice", "lobby", "hello before the browser came")
	runBrowser(t, chromium, "console", srv.URL)
}

// The official Admin UI page, served locally, connects to our /admin and
// lists a connected socket and its rooms.
func TestConsoleAdminUIInBrowser(t *testing.T) {
	// Not parallel, as TestConsoleInBrowser.
	chromium := requireBrowser(t)
	// The page connects with credentials, which needs its origin listed.
	uiAddr := freeAddr(t)
	srv := startConsoleServer(t, "--cors-origins", "http://"+uiAddr)
	alice := aliceInLobby(t, srv.URL)
	runBrowser(t, chromium, "adminui", srv.URL, "SOCKET_ID="+string(alice.S.Id()), "ROOM=room:lobby", "UI_ADDR="+uiAddr)
}
