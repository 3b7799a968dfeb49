package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

func TestOpsMisspeltCommandsFail(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args       []string
		want, hint string
	}{
		{[]string{"events", "raed"}, `unknown command "raed" for "auraos events"`, "Did you mean this?\n\tread\n"},
		{[]string{"serv"}, `unknown command "serv" for "auraos"`, "Did you mean this?\n\tserve\n"},
		{[]string{"projections", "stauts"}, `unknown command "stauts" for "auraos projections"`, "Did you mean this?\n\tstatus\n"},
		{[]string{"config", "prnt"}, `unknown command "prnt" for "auraos config"`, "Did you mean this?\n\tprint\n"},
	} {
		stdout, stderr, code := runAuraos(t, nil, c.args...)
		if code != 1 || !strings.Contains(stderr, c.want) || !strings.Contains(stderr, c.hint) || stdout != "" {
			t.Errorf("auraos %v: exit %d, stdout %q, stderr %q; want 1 and %q with %q", c.args, code, stdout, stderr, c.want, c.hint)
		}
	}
	// A group command by itself still shows its help.
	if stdout, _, code := runAuraos(t, nil, "events"); code != 0 || !strings.Contains(stdout, "Available Commands") {
		t.Errorf("auraos events: exit %d\n%s", code, stdout)
	}
}

// Every command checks the log flags, which every command takes.
func TestOpsLogFlagsAreCheckedByEveryCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	createEmptyStore(t, dir)
	commands := [][]string{
		{"version"}, {"config", "print"}, {"events", "read", "--data-dir", dir}, {"projections", "status", "--data-dir", dir},
		{"migrate", "--data-dir", dir}, {"token", "--uid", "u", "--jwt-secret", strings.Repeat("s", 32)},
	}
	for _, args := range commands {
		_, stderr, code := runAuraos(t, nil, append(args, "--log-level", "verbose")...)
		if code != 1 || !strings.Contains(stderr, `--log-level "verbose": want debug, info, warn or error`) {
			t.Errorf("%v --log-level verbose: exit %d, stderr %q", args, code, stderr)
		}
		_, stderr, code = runAuraos(t, []string{"AURAOS_LOG_FORMAT=xml"}, args...)
		if code != 1 || !strings.Contains(stderr, `--log-format "xml": want text or json`) {
			t.Errorf("%v with AURAOS_LOG_FORMAT=xml: exit %d, stderr %q", args, code, stderr)
		}
	}
}

// A library's warnings through the log package (the EventStoreDB client's
// on a connection string it does not know all of) and the stores' own
// warnings come out in the format of --log-format, in every command.
func TestOpsESDBWarningsGoThroughTheLogger(t *testing.T) {
	t.Parallel()
	_, stderr, code := runAuraos(t, nil, "events", "read", "--log-format", "json", "--event-store",
		"esdb://admin:changeit@127.0.0.1:1?tls=false&maxDiscoverAttempts=1&discoveryInterval=10&gossipTimeout=1&bogusSetting=1")
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	if code != 1 || len(lines) < 3 || !strings.HasPrefix(lines[len(lines)-1], "auraos: ") {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	var msgs []string
	for _, line := range lines[:len(lines)-1] {
		var rec struct{ Level, Msg string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("a log line is not JSON: %q", line)
			continue
		}
		if rec.Level != "WARN" {
			t.Errorf("level %s: %q", rec.Level, line)
		}
		msgs = append(msgs, rec.Msg)
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{"Unknown setting", "the connection string has credentials but tls=false"} {
		if !strings.Contains(all, want) {
			t.Errorf("no warning saying %q:\n%s", want, stderr)
		}
	}
	if regexp.MustCompile(`(?m)^\d{4}/\d\d/\d\d `).MatchString(stderr) || strings.Contains(stderr, "changeit") {
		t.Errorf("stderr:\n%s", stderr)
	}
}

func TestConfigPrintTakesServeFlags(t *testing.T) {
	t.Parallel()
	stdout, stderr, code := runAuraos(t, []string{"AURAOS_ADDR=:7000", "AURAOS_NODE_ID=from-env"},
		"config", "print", "--addr", ":6003", "--data-dir", "/srv/auraos", "--ai-key", "sk-secret", "--rate-message", "5", "--log-level", "debug")
	if code != 0 {
		t.Fatalf("config print with serve's flags: exit %d\n%s", code, stderr)
	}
	for _, want := range []string{"addr: :6003\n", "node-id: from-env\n", "data-dir: /srv/auraos\n", "ai-key: '********'\n", `rate-message: "5"` + "\n", "log-level: debug\n"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("config print lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "sk-secret") {
		t.Errorf("config print shows the key:\n%s", stdout)
	}
}
