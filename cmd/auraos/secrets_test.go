package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// runAuraos runs the binary with args in this environment less its AURAOS_*
// settings (the test's own AURAOS_TEST_* stay), plus env, and returns its
// stdout, its stderr and its exit code.
func runAuraos(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, auraosBin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envPrefix) || strings.HasPrefix(kv, envPrefix+"TEST_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("auraos %s did not finish within a minute:\n%s", strings.Join(args, " "), errOut.String())
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), errOut.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), 0
}

// A start that fails on a database URL says why without the password, in
// whichever form the password was given.
func TestOpsFailingStartLeaksNoSecret(t *testing.T) {
	t.Parallel()
	secrets := []string{"hunter3", "hunter4", "hunter5", "kvsecret", "kv2secret", "hunter6"}
	cases := [][]string{
		{"--event-store", "postgres://u:hunter3@127.0.0.1:1/x?password=hunter4&connect_timeout=2"},
		{"--event-store", "postgres://u:hunter5@127.0.0.1:bad/x"},
		{"--event-store", "host=127.0.0.1 port=1 password=kvsecret"},
		{"--read-db", "host=127.0.0.1 port=1 password='kv2secret x'"},
		{"--read-db", "postgresql://u@127.0.0.1:1/x?Password=hunter6&connect_timeout=2"},
	}
	for _, extra := range cases {
		args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir()}, extra...)
		_, stderr, code := runAuraos(t, nil, args...)
		if code != 1 || !strings.Contains(stderr, "auraos:") {
			t.Errorf("serve %v: exit %d, want 1 with a reason:\n%s", extra, code, stderr)
		}
		for _, s := range secrets {
			if strings.Contains(stderr, s) {
				t.Errorf("serve %v: stderr shows %s:\n%s", extra, s, stderr)
			}
		}
	}
}

func TestConfigPrintMasksEveryPasswordForm(t *testing.T) {
	t.Parallel()
	stdout, stderr, code := runAuraos(t, []string{
		"AURAOS_EVENT_STORE=postgres://u:hunter3@db/x?password=hunter4",
		"AURAOS_READ_DB=host=db password='kv secret' dbname=x",
		"AURAOS_AI_URL=https://user:aipass@ai.example/v1?PASSWORD=aiparam",
		"AURAOS_JWKS_URL=https://keys.example/jwks?password=jwkspass",
	}, "config", "print")
	if code != 0 {
		t.Fatalf("config print: exit %d\n%s", code, stderr)
	}
	for _, want := range []string{
		"event-store: postgres://u:xxxxx@db/x?password=xxxxx\n",
		"read-db: host=db password=xxxxx dbname=x\n",
		"ai-url: https://user:xxxxx@ai.example/v1?PASSWORD=xxxxx\n",
		"jwks-url: https://keys.example/jwks?password=xxxxx\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("config print lacks %q:\n%s", want, stdout)
		}
	}
	for _, s := range []string{"hunter3", "hunter4", "kv secret", "aipass", "aiparam", "jwkspass"} {
		if strings.Contains(stdout, s) {
			t.Errorf("config print shows %s:\n%s", s, stdout)
		}
	}
}
