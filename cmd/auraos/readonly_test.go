//go:build unix

package main

import (
	"context"
	"crypto/sha256"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/auraos/realtime/schema"
	"github.com/auraos/realtime/schema/schematest"
)

// dirState is what a directory holds: each file's name and a hash of its
// content.
func dirState(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = sha256.Sum256(b)
	}
	return out
}

// SQLite keeps the index of a WAL database beside it; a reader may have to
// create it. Everything else must stay as it was.
func sqliteIndexFile(name string) bool {
	return strings.HasSuffix(name, ".db-shm") || strings.HasSuffix(name, ".db-wal")
}

func sameFiles(t *testing.T, what string, before, after map[string][32]byte) {
	t.Helper()
	for name, sum := range after {
		if old, ok := before[name]; !ok && !sqliteIndexFile(name) {
			t.Errorf("%s created %s", what, name)
		} else if ok && old != sum && !sqliteIndexFile(name) {
			t.Errorf("%s changed %s", what, name)
		}
	}
	for name := range before {
		if _, ok := after[name]; !ok {
			t.Errorf("%s removed %s", what, name)
		}
	}
}

func TestOpsReadCommandsNeedAStore(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "typo")
	for _, args := range [][]string{{"events", "read"}, {"events", "verify"}, {"events", "head"}, {"events", "export"}, {"projections", "status"}} {
		_, stderr, code := runAuraos(t, nil, append(args, "--data-dir", missing)...)
		want := "auraos: no event store in " + missing + " (events.db not found); serve creates it, or check --data-dir\n"
		if code != 1 || stderr != want {
			t.Errorf("%v on a missing directory: exit %d, stderr %q; want 1 and %q", args, code, stderr, want)
		}
		if _, err := os.Stat(missing); !os.IsNotExist(err) {
			t.Fatalf("%v created the directory it was to read: %v", args, err)
		}
	}

	// An event log without read models: status says so and creates none.
	dir := t.TempDir()
	fillStore(t, dir)
	before := dirState(t, dir)
	_, stderr, code := runAuraos(t, nil, "projections", "status", "--data-dir", dir)
	want := "auraos: UNAVAILABLE: no read models in " + dir + " (read.db not found); serve creates them, or check --data-dir\n"
	if code != 1 || stderr != want {
		t.Errorf("status without read.db: exit %d, stderr %q; want 1 and %q", code, stderr, want)
	}
	sameFiles(t, "projections status", before, dirState(t, dir))
}

// copyFile copies src to dst with mode.
func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// The read commands work on a copy of the data whose files and directory
// are read-only. Permissions do not stop root, so as root the commands run
// as nobody, whom they do stop.
func TestOpsReadCommandsWorkOnAReadOnlyCopy(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	fillStore(t, src)
	if _, stderr, code := runAuraos(t, nil, "migrate", "--data-dir", src); code != 0 {
		t.Fatalf("migrate: exit %d\n%s", code, stderr)
	}

	// A tree everyone may enter, since t.TempDir's is the owner's only.
	top, err := os.MkdirTemp("", "auraos-readonly")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				_ = os.Chmod(p, 0o755)
			}
			return nil
		})
		os.RemoveAll(top)
	})
	if err := os.Chmod(top, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(top, "auraos")
	copyFile(t, auraosBin, bin, 0o755)
	data := filepath.Join(top, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"events.db", "read.db"} {
		copyFile(t, filepath.Join(src, name), filepath.Join(data, name), 0o444)
	}
	if err := os.Chmod(data, 0o555); err != nil {
		t.Fatal(err)
	}
	before := dirState(t, data)

	run := func(args ...string) (string, string) {
		t.Helper()
		cmd := exec.CommandContext(context.Background(), bin, append(args, "--data-dir", data)...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + top}
		if os.Geteuid() == 0 {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		}
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%v on a read-only copy: %v\n%s", args, err, stderr.String())
		}
		return stdout.String(), stderr.String()
	}
	out, _ := run("events", "read")
	if n := len(readLines(t, out)); n != 5 {
		t.Errorf("events read printed %d events, want 5:\n%s", n, out)
	}
	out, _ = run("projections", "status")
	if !strings.Contains(out, "chat-history") || !strings.Contains(out, "never run") {
		t.Errorf("projections status:\n%s", out)
	}
	if out, _ = run("events", "verify"); !strings.Contains(out, "the chain is intact: checked 5 events") {
		t.Errorf("events verify:\n%s", out)
	}
	if out, _ = run("events", "head"); !strings.HasPrefix(out, "POSITION  HASH\n5 ") {
		t.Errorf("events head:\n%s", out)
	}
	if out, _ = run("events", "export"); strings.Count(out, "\n") != 7 {
		t.Errorf("events export:\n%s", out)
	}
	after := dirState(t, data)
	sameFiles(t, "the read commands", before, after)
	var extra []string
	for name := range after {
		if _, ok := before[name]; !ok {
			extra = append(extra, name)
		}
	}
	sort.Strings(extra)
	if os.Geteuid() == 0 && len(extra) > 0 {
		t.Errorf("as nobody, the read commands created %v in a read-only directory", extra)
	}
}

// On PostgreSQL the read commands create no tables in an empty schema and
// say that there is no store.
func TestOpsReadCommandsCreateNoTablesOnPostgres(t *testing.T) {
	t.Parallel()
	dsn := schematest.PostgresURL(t)
	for _, args := range [][]string{
		{"events", "read", "--event-store", dsn},
		{"events", "verify", "--event-store", dsn},
		{"events", "head", "--event-store", dsn},
		{"events", "export", "--event-store", dsn},
		{"projections", "status", "--event-store", dsn, "--read-db", dsn},
	} {
		_, stderr, code := runAuraos(t, nil, append(args, "--data-dir", t.TempDir())...)
		if code != 1 || !strings.Contains(stderr, "no event store in postgres://") || !strings.Contains(stderr, "has no events table); serve or migrate creates it, or check --event-store") {
			t.Errorf("%v on an empty schema: exit %d\n%s", args, code, stderr)
		}
	}
	db, err := schema.OpenPostgres(context.Background(), dsn, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var tables int
	if err := db.QueryRowContext(context.Background(), "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()").Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Fatalf("the read commands created %d tables", tables)
	}
}
