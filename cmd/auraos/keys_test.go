package main

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

// The key-encryption key is a secret: config print masks it, and a
// malformed or wrong one stops every command before it touches anything.
func TestKeyEncryptionKeyIsCheckedAtStart(t *testing.T) {
	t.Parallel()
	kek := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{3}, 32))
	other := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{4}, 32))
	stdout, stderr, code := runAuraos(t, []string{"AURAOS_KEY_ENCRYPTION_KEY=" + kek}, "config", "print")
	if code != 0 || !strings.Contains(stdout, "key-encryption-key: '********'\n") || strings.Contains(stdout, kek) {
		t.Errorf("config print: exit %d, does not mask the key-encryption key:\n%s%s", code, stdout, stderr)
	}

	dir := t.TempDir()
	if _, stderr, code := runAuraos(t, []string{"AURAOS_KEY_ENCRYPTION_KEY=" + kek}, "migrate", "--data-dir", dir); code != 0 {
		t.Fatalf("migrate: exit %d\n%s", code, stderr)
	}
	// A key made under the KEK: the table now says how its keys are wrapped.
	srv := startServer(t, dir, "--key-encryption-key", kek)
	srv.stop()
	for _, tc := range []struct {
		name, kek, want string
	}{
		{"malformed", "c2hvcnQ=", "must be 32 bytes"},
		{"wrong", other, "not the key that wrapped the stored keys"},
		{"missing", "", "give it with --key-encryption-key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, args := range [][]string{{"serve", "--addr", "127.0.0.1:0"}, {"events", "read"}, {"keys", "export"}} {
				_, stderr, code := runAuraos(t, []string{"AURAOS_KEY_ENCRYPTION_KEY=" + tc.kek}, append(args, "--data-dir", dir)...)
				if code != 1 || !strings.Contains(stderr, tc.want) || (tc.kek != "" && strings.Contains(stderr, tc.kek)) {
					t.Errorf("%v with a %s key-encryption key: exit %d, want 1 saying %q:\n%s", args, tc.name, code, tc.want, stderr)
				}
			}
		})
	}
}
