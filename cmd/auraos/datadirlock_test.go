//go:build unix

package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// relativeTempDir is a fresh directory named relative to the working
// directory, the way an operator writes --data-dir ./data.
func relativeTempDir(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(wd, filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	return rel
}

func TestOpsLockDataDirHeldByAnotherProcess(t *testing.T) {
	t.Parallel()
	dir := relativeTempDir(t)
	child := exec.Command(os.Args[0], "-test.run=^TestOpsLockDataDirHelper$")
	child.Env = append(os.Environ(), lockHelperEnv+"="+dir)
	child.Stderr = os.Stderr
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "locked\n" {
		t.Fatalf("the child did not take the lock: %q %v", line, err)
	}

	start := time.Now()
	release, err := lockDataDir(dir)
	want := fmt.Sprintf("data directory %s is in use by another auraos (pid %d)", dir, child.Process.Pid)
	if err == nil {
		release()
		t.Fatal("took the lock the child holds")
	}
	if err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("refused after %s, want at once", took)
	}

	// The lock ends with its holder.
	stdin.Close()
	if err := child.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	release, err = lockDataDir(dir)
	if err != nil {
		t.Fatalf("after the holder exited: %v", err)
	}
	release()
}

// A second open of the lock file in the same process is refused too (flock
// locks belong to the open file), and naming this process.
func TestOpsLockDataDirTwiceInOneProcess(t *testing.T) {
	t.Parallel()
	dir := relativeTempDir(t)
	release, err := lockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = lockDataDir(dir)
	want := fmt.Sprintf("data directory %s is in use by another auraos (pid %d)", dir, os.Getpid())
	if err == nil || err.Error() != want {
		t.Fatalf("second lock: %v, want %q", err, want)
	}
	release()
	again, err := lockDataDir(dir)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	again()
	if b, _ := os.ReadFile(filepath.Join(dir, dataDirLockFile)); strings.TrimSpace(string(b)) != fmt.Sprint(os.Getpid()) {
		t.Fatalf("lock file holds %q", b)
	}
}

// TestOpsLockDataDirHelper is the child of
// TestOpsLockDataDirHeldByAnotherProcess: it locks the directory, says so,
// and holds the lock until its stdin closes.
func TestOpsLockDataDirHelper(t *testing.T) {
	dir := os.Getenv(lockHelperEnv)
	if dir == "" {
		t.Skip("runs as the child process of TestOpsLockDataDirHeldByAnotherProcess")
	}
	release, err := lockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	fmt.Println("locked")
	_, _ = io.Copy(io.Discard, os.Stdin)
}
