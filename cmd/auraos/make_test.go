package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// make runs in the repository's root, with this environment less its
// AURAOS_* settings, plus env.
func runMake(t *testing.T, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command("make", append([]string{"-C", "../..", "--no-print-directory"}, args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envPrefix) && !strings.HasPrefix(kv, "ADDR=") && !strings.HasPrefix(kv, "DATA_DIR=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func TestOpsMakeRunPassesOnlyTheFlagsGiven(t *testing.T) {
	t.Parallel()
	serveLine := func(out string) string {
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "bin/auraos serve") {
				return line
			}
		}
		t.Fatalf("no serve in make's plan:\n%s", out)
		return ""
	}
	if line := serveLine(runMake(t, []string{"AURAOS_ADDR=:5031", "AURAOS_DATA_DIR=/tmp/from-env"}, "-n", "run")); strings.Contains(line, "--addr") || strings.Contains(line, "--data-dir") {
		t.Errorf("make run overrides AURAOS_ADDR and AURAOS_DATA_DIR: %s", line)
	}
	if line := serveLine(runMake(t, nil, "-n", "run", "ADDR=:6001", "DATA_DIR=/tmp/given")); !strings.Contains(line, "--addr :6001") || !strings.Contains(line, "--data-dir /tmp/given") {
		t.Errorf("make run ADDR=… DATA_DIR=…: %s", line)
	}
}

func TestOpsMakeTestSaysPostgresSkipped(t *testing.T) {
	t.Parallel()
	if out := runMake(t, nil, "-s", "test-summary"); !strings.Contains(out, "PostgreSQL tests were skipped; set AURAOS_TEST_POSTGRES_URL") {
		t.Errorf("without AURAOS_TEST_POSTGRES_URL: %q", out)
	}
	if out := runMake(t, []string{"AURAOS_TEST_POSTGRES_URL=postgres://db/x"}, "-s", "test-summary"); out != "" {
		t.Errorf("with AURAOS_TEST_POSTGRES_URL: %q", out)
	}
	if plan := runMake(t, nil, "-n", "test"); !strings.Contains(plan, "PostgreSQL tests were skipped") {
		t.Errorf("make test does not print the summary:\n%s", plan)
	}
}
