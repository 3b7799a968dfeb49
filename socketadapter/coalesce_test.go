package socketadapter

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
)

// Everything written arrives, in order, however the writes are grouped,
// the large ones written directly among the queued small ones.
func TestCoalescingConnKeepsOrder(t *testing.T) {
	t.Parallel()
	a, b := net.Pipe()
	c := newCoalescingConn(a)
	var want bytes.Buffer
	got := make(chan []byte, 1)
	go func() {
		data, _ := io.ReadAll(b)
		got <- data
	}()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 2000 {
			size := 1 + i%700
			if i%97 == 0 {
				size = directWriteAtLeast + i
			}
			frame := bytes.Repeat([]byte{byte('a' + i%26)}, size)
			want.Write(frame)
			if _, err := c.Write(frame); err != nil {
				t.Errorf("write %d: %v", i, err)
				return
			}
		}
	}()
	wg.Wait()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if data := <-got; !bytes.Equal(data, want.Bytes()) {
		t.Fatalf("received %d bytes, wrote %d (or out of order)", len(data), want.Len())
	}
	if _, err := c.Write([]byte("late")); err == nil {
		t.Fatal("a write after Close succeeded")
	}
}

// A failed write is reported by the next one.
func TestCoalescingConnReportsWriteErrors(t *testing.T) {
	t.Parallel()
	a, b := net.Pipe()
	c := newCoalescingConn(a)
	b.Close()
	var err error
	for range 100 {
		if _, err = c.Write([]byte("x")); err != nil {
			break
		}
		c.mu.Lock()
		for c.flushing {
			c.cond.Wait()
		}
		c.mu.Unlock()
	}
	if !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("write to a closed peer: %v", err)
	}
	c.Close()
}
