// Package syncbuf holds a byte buffer that tests share between the
// goroutines that write output and the test that reads it.
package syncbuf

import (
	"bytes"
	"sync"
)

// Buffer collects output (a log, a process's stdout) written from many
// goroutines while a test reads it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
