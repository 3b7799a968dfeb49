package socketadapter

import (
	"bufio"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"time"
)

// The Socket.IO library writes every packet to every websocket with its own
// write system call (gorilla's WritePreparedMessage per frame). Under load
// that is the largest cost of a broadcast. The library offers no hook for
// it, so the adapter works around it below the library: websocket upgrades
// get a connection whose writes are queued and sent by a flusher goroutine,
// which writes everything queued meanwhile with one system call. An idle
// connection has no flusher; a busy one coalesces more the busier it is
// (the flusher yields once before it writes, so the packets that are
// already on their way join the write), and no write waits for a timer.
// The websocket transport does better where it can: it holds the writes of
// its sends and writes them out itself when no send is queued behind
// (HoldWrites and ReleaseWrites), so its batches cost one system call and
// no flusher.

// coalesceWebsocketWrites wraps the Socket.IO handler so that the connections
// of websocket upgrades coalesce their writes.
func coalesceWebsocketWrites(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hj, ok := w.(http.Hijacker); ok && strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			w = &hijacker{ResponseWriter: w, hj: hj}
		}
		h.ServeHTTP(w, r)
	})
}

// hijacker hands out coalescing connections when the websocket library
// takes the connection over. After that it lets go of net/http's response
// (and with it the HTTP connection's 8 KiB of buffers), which the Socket.IO
// library would otherwise keep for the life of the websocket.
type hijacker struct {
	http.ResponseWriter
	hj http.Hijacker
}

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := h.hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.ResponseWriter, h.hj = hijackedResponse{header: http.Header{}}, nil
	return newCoalescingConn(c), brw, nil
}

// hijackedResponse stands in for a response whose connection was taken
// over: writing to it fails, as net/http's own does.
type hijackedResponse struct{ header http.Header }

func (r hijackedResponse) Header() http.Header     { return r.header }
func (hijackedResponse) Write([]byte) (int, error) { return 0, http.ErrHijacked }
func (hijackedResponse) WriteHeader(int)           {}

// maxPendingWrites bounds what a connection queues before writes wait for
// the client to take it. While they wait, the socket's packets queue in
// Engine.IO, whose queue Config.ClientQueueMax bounds: keeping this one
// small makes that bound the one that counts.
const maxPendingWrites = 64 << 10

// coalesceYieldBelow is the queue size under which the flusher yields once
// before writing, to gather more packets.
const coalesceYieldBelow = 16 << 10

// closeFlushTimeout bounds how long Close waits to send what is queued (a
// websocket close frame, say).
const closeFlushTimeout = time.Second

// coalescingConn queues writes and sends them from a flusher goroutine that
// runs only while there is something to send; or, between HoldWrites and
// ReleaseWrites, holds them for the holder to send (transports.WriteBatcher).
type coalescingConn struct {
	net.Conn

	mu      sync.Mutex
	cond    *sync.Cond // signalled when the queue shrinks or a writer stops
	pending []byte
	spare   []byte
	// writing says a goroutine is writing the queue out (the flusher, a
	// direct write, a release): no other starts, and the queue it holds
	// meanwhile goes out with it.
	writing bool
	holding bool  // writes queue for ReleaseWrites, without a flusher
	err     error // the first write error; later writes return it
	// errReturned says a Write has returned err, so ReleaseWrites does not.
	errReturned bool
	closed      bool
	// writeDeadline is the connection's write deadline as last set.
	writeDeadline time.Time
}

func newCoalescingConn(c net.Conn) *coalescingConn {
	cc := &coalescingConn{Conn: c}
	cc.cond = sync.NewCond(&cc.mu)
	return cc
}

// directWriteAtLeast is the size from which a write is not copied into the
// queue but written by its caller once the queue is out: a large write
// gains nothing from company, and the broadcast frames that large (a
// presence list of thousands of users) are shared by every socket, which a
// copy per connection would multiply.
const directWriteAtLeast = maxPendingWrites

// Write queues p. It returns the error of an earlier failed write, and waits
// while more than maxPendingWrites bytes are queued for another goroutine
// to write; while writes are held, the holder writes such a queue out
// itself. A write of at least directWriteAtLeast bytes is written by the
// caller once what was queued before it is out, in order with the writes
// queued before and after it.
func (c *coalescingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	direct := len(p) >= directWriteAtLeast
	for c.err == nil && !c.closed && c.writing && (direct || len(c.pending) > maxPendingWrites) {
		c.cond.Wait()
	}
	if c.err != nil {
		return 0, c.returnErr()
	}
	if c.closed {
		return 0, net.ErrClosed
	}
	if direct {
		// No one else writes now; what is held goes first.
		c.writing = true
		c.writeOut()
		n := 0
		if c.err == nil {
			c.mu.Unlock()
			var err error
			n, err = c.Conn.Write(p)
			c.mu.Lock()
			if err != nil && c.err == nil {
				c.err = err
			}
		}
		c.writing = false
		if len(c.pending) > 0 && c.err == nil && !c.holding {
			c.writing = true
			go c.flush()
		}
		c.cond.Broadcast()
		if c.err != nil {
			return n, c.returnErr()
		}
		return n, nil
	}
	if c.pending == nil {
		c.pending = getWriteBuffer()
	}
	c.pending = append(c.pending, p...)
	switch {
	case c.writing:
		// The goroutine writing takes it along.
	case c.holding:
		if len(c.pending) > maxPendingWrites {
			c.writeOutHere()
			if c.err != nil {
				return 0, c.returnErr()
			}
		}
	default:
		c.writing = true
		go c.flush()
	}
	return len(p), nil
}

// returnErr returns c.err, noting that a Write has returned it.
func (c *coalescingConn) returnErr() error {
	c.errReturned = true
	return c.err
}

// HoldWrites makes writes queue until ReleaseWrites, written by no flusher
// (see transports.WriteBatcher): the websocket transport holds the frames
// of a batch of packets, which then leave in one system call.
func (c *coalescingConn) HoldWrites() {
	c.mu.Lock()
	c.holding = true
	c.mu.Unlock()
}

// Held returns how many bytes are queued and not yet being written.
func (c *coalescingConn) Held() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// ReleaseWrites writes out what is held, on the caller's goroutine, unless
// another goroutine is writing the queue already. It returns the first
// write error, unless a Write has returned it.
func (c *coalescingConn) ReleaseWrites() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.holding = false
	if !c.writing && len(c.pending) > 0 && c.err == nil {
		c.writeOutHere()
	}
	if c.err != nil && !c.errReturned {
		return c.returnErr()
	}
	return nil
}

// SetWriteDeadline sets the connection's write deadline unless it is set
// to t already. gorilla sets the write deadline before every frame it
// writes, nearly always to none; setting a socket's deadline takes a
// runtime lock, which made it a twentieth of a broadcast's CPU.
func (c *coalescingConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.Equal(c.writeDeadline) {
		return nil
	}
	c.writeDeadline = t
	return c.Conn.SetWriteDeadline(t)
}

// SetDeadline sets both of the connection's deadlines.
func (c *coalescingConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writeDeadline = t
	return c.Conn.SetDeadline(t)
}

// ReadThrough returns the connection c reads from: c queues writes but
// reads straight through, so the Engine.IO server's poller may wait on the
// connection underneath (transports.ReadThrough).
func (c *coalescingConn) ReadThrough() net.Conn { return c.Conn }

// flush writes what is queued until the queue is empty.
func (c *coalescingConn) flush() {
	// When the queue holds small packets, let the goroutines that are
	// ready run first: they may be writing more to this connection, which
	// then shares this write; when nothing else is ready it costs
	// nothing. A large write has little to gain from company and would
	// only wait.
	c.mu.Lock()
	if len(c.pending) < coalesceYieldBelow {
		c.mu.Unlock()
		runtime.Gosched()
		c.mu.Lock()
	}
	c.writeOutHere()
	c.mu.Unlock()
}

// writeOutHere writes the queue out on the caller's goroutine, with c.mu
// held and no other goroutine writing (the flusher's starter has set
// c.writing for it already).
func (c *coalescingConn) writeOutHere() {
	c.writing = true
	c.writeOut()
	c.writing = false
	c.cond.Broadcast()
}

// writeOut writes the queue until it is empty or a write fails, with c.mu
// held (released around each write) by the goroutine that set c.writing.
// An idle connection keeps no buffer: both go back to the pool after.
func (c *coalescingConn) writeOut() {
	for len(c.pending) > 0 && c.err == nil {
		out := c.pending
		c.pending = c.spare[:0]
		c.mu.Unlock()
		_, err := c.Conn.Write(out)
		c.mu.Lock()
		if err != nil && c.err == nil {
			c.err = err
		}
		if cap(out) <= 64<<10 {
			c.spare = out[:0] // keep a modest buffer for the next round
		} else {
			c.spare = nil
		}
		c.cond.Broadcast()
	}
	putWriteBuffer(c.pending)
	putWriteBuffer(c.spare)
	c.pending, c.spare = nil, nil
}

// writeBuffers are the queues of connections that have something to send.
var writeBuffers sync.Pool

func getWriteBuffer() []byte {
	if b, ok := writeBuffers.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return nil
}

// putWriteBuffer keeps b for another connection unless it is empty or too
// large to keep (a flood's queue).
func putWriteBuffer(b []byte) {
	if cap(b) == 0 || cap(b) > 64<<10 {
		return
	}
	b = b[:0]
	writeBuffers.Put(&b)
}

// Close sends what is queued or held (for at most closeFlushTimeout) and
// closes the connection.
func (c *coalescingConn) Close() error {
	c.mu.Lock()
	c.closed = true
	if !c.writing && len(c.pending) > 0 && c.err == nil {
		c.writing = true // writes held by a send that has not ended
		go c.flush()
	}
	if c.writing {
		timer := time.AfterFunc(closeFlushTimeout, func() {
			c.mu.Lock()
			if c.err == nil {
				c.err = net.ErrClosed
			}
			c.cond.Broadcast()
			c.writeDeadline = time.Now()
			_ = c.Conn.SetWriteDeadline(c.writeDeadline)
			c.mu.Unlock()
		})
		for c.writing {
			c.cond.Wait()
		}
		timer.Stop()
	}
	c.mu.Unlock()
	return c.Conn.Close()
}
