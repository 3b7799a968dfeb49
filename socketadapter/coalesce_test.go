package socketadapter

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
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
		for c.writing {
			c.cond.Wait()
		}
		c.mu.Unlock()
	}
	if !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("write to a closed peer: %v", err)
	}
	c.Close()
}

// countingConn counts the writes that reach the connection underneath.
type countingConn struct {
	net.Conn
	writes, deadlines atomic.Int32
}

func (c *countingConn) SetWriteDeadline(t time.Time) error {
	c.deadlines.Add(1)
	return c.Conn.SetWriteDeadline(t)
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// pipeReader reads everything b receives until it is closed.
func pipeReader(t *testing.T, b net.Conn) <-chan []byte {
	t.Helper()
	got := make(chan []byte, 1)
	go func() {
		data, _ := io.ReadAll(b)
		got <- data
	}()
	return got
}

// countedPipe returns a coalescing connection over one end of a pipe, the
// counter of what reaches that end, and what the other end receives.
func countedPipe(t *testing.T) (*coalescingConn, *countingConn, <-chan []byte) {
	t.Helper()
	a, b := net.Pipe()
	under := &countingConn{Conn: a}
	return newCoalescingConn(under), under, pipeReader(t, b)
}

// Held writes reach the connection in one write, made by ReleaseWrites;
// nothing leaves before it. Writes of every size keep their order across
// holds, including a held queue past the bound and direct writes.
func TestCoalescingConnHeldWrites(t *testing.T) {
	t.Parallel()
	c, under, got := countedPipe(t)
	var want bytes.Buffer
	write := func(p []byte) {
		t.Helper()
		want.Write(p)
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
	}

	c.HoldWrites()
	for i := range 10 {
		write([]byte{byte('0' + i)})
	}
	if n := under.writes.Load(); n != 0 {
		t.Fatalf("%d writes reached the connection while held", n)
	}
	if err := c.ReleaseWrites(); err != nil {
		t.Fatal(err)
	}
	if n := under.writes.Load(); n != 1 {
		t.Fatalf("ten held frames took %d writes, want 1", n)
	}

	for round := range 20 {
		c.HoldWrites()
		for i := range 50 {
			size := 1 + (round*50+i)%4000
			if i == 25 && round%3 == 0 {
				size = directWriteAtLeast + round
			}
			write(bytes.Repeat([]byte{byte('a' + i%26)}, size))
		}
		if err := c.ReleaseWrites(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if data := <-got; !bytes.Equal(data, want.Bytes()) {
		t.Fatalf("received %d bytes, wrote %d (or out of order)", len(data), want.Len())
	}
}

// Close sends what a send still holds.
func TestCoalescingConnCloseSendsHeldWrites(t *testing.T) {
	t.Parallel()
	a, b := net.Pipe()
	c := newCoalescingConn(a)
	got := pipeReader(t, b)
	c.HoldWrites()
	if _, err := c.Write([]byte("held")); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if data := <-got; string(data) != "held" {
		t.Fatalf("received %q after Close, want the held write", data)
	}
	if err := c.ReleaseWrites(); err != nil {
		t.Fatalf("release after Close: %v", err)
	}
}

// A write that fails while held is reported once: by ReleaseWrites when no
// Write returned it, and by a Write otherwise.
func TestCoalescingConnHeldWriteErrors(t *testing.T) {
	t.Parallel()
	// heldToClosedPeer returns a connection holding writes to a peer that
	// has gone.
	heldToClosedPeer := func() *coalescingConn {
		a, b := net.Pipe()
		b.Close()
		c := newCoalescingConn(a)
		c.HoldWrites()
		return c
	}
	t.Run("by ReleaseWrites", func(t *testing.T) {
		t.Parallel()
		c := heldToClosedPeer()
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatalf("held write: %v", err)
		}
		if err := c.ReleaseWrites(); !errors.Is(err, io.ErrClosedPipe) {
			t.Fatalf("release to a closed peer: %v", err)
		}
		if _, err := c.Write([]byte("y")); !errors.Is(err, io.ErrClosedPipe) {
			t.Fatalf("write after the failure: %v", err)
		}
		c.Close()
	})
	t.Run("by a Write", func(t *testing.T) {
		t.Parallel()
		c := heldToClosedPeer()
		_, err := c.Write(make([]byte, maxPendingWrites+1)) // written out at once
		if !errors.Is(err, io.ErrClosedPipe) {
			t.Fatalf("a held write past the bound: %v", err)
		}
		if err := c.ReleaseWrites(); err != nil {
			t.Fatalf("release reported the failure again: %v", err)
		}
		c.Close()
	})
}

// A write deadline reaches the connection when it changes, not each time
// gorilla sets it again before a frame; one that has passed fails the
// write, as it would without the queue.
func TestCoalescingConnWriteDeadline(t *testing.T) {
	t.Parallel()
	c, under, got := countedPipe(t)
	for range 5 {
		if err := c.SetWriteDeadline(time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	if n := under.deadlines.Load(); n != 0 {
		t.Fatalf("setting no deadline over no deadline reached the connection %d times", n)
	}
	if err := c.SetWriteDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	c.HoldWrites()
	c.Write([]byte("late"))
	if err := c.ReleaseWrites(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a write past its deadline: %v", err)
	}
	if n := under.deadlines.Load(); n != 1 {
		t.Fatalf("the passed deadline reached the connection %d times, want 1", n)
	}
	if err := c.SetWriteDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	if n := under.deadlines.Load(); n != 2 {
		t.Fatalf("lifting the deadline reached the connection %d times in all, want 2", n)
	}
	c.Close()
	<-got
}
