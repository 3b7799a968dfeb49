//go:build unix

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// dataDirLockFile is the file in a data directory whose lock marks the
// directory as in use, and which names the process that holds it.
const dataDirLockFile = "auraos.lock"

// lockDataDir takes an exclusive lock on the data directory dir (creating
// the directory if needed), so that a second auraos on the same directory
// is refused at once instead of ending the first one's sessions and sharing
// its SQLite files. The lock is an flock on dir/auraos.lock, which the
// kernel releases when the process ends however it ends, so a crash never
// leaves a stale lock; the file stays, naming the last holder's pid. Call
// release when done, or hold the lock for the life of the process.
//
// When another process holds the lock the error says exactly
// "data directory DIR is in use by another auraos (pid N)", with dir as
// given.
func lockDataDir(dir string) (release func(), err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	path := filepath.Join(dir, dataDirLockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("data directory %s is in use by another auraos (pid %s)", dir, lockHolder(path))
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// The pid is for the operator's message; the lock itself is the flock.
	err = f.Truncate(0)
	if err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return func() { f.Close() }, nil // closing the file releases the flock
}

// lockHolder reads the pid the holder of the lock file wrote. A holder that
// has just taken the lock may not have written it yet, so an empty file is
// read again for a moment.
func lockHolder(path string) string {
	deadline := time.Now().Add(500 * time.Millisecond)
	for {
		b, err := os.ReadFile(path)
		if pid := strings.TrimSpace(string(b)); err == nil && pid != "" {
			return pid
		}
		if time.Now().After(deadline) {
			return "unknown"
		}
		time.Sleep(20 * time.Millisecond) // the holder writes its pid right after locking
	}
}
