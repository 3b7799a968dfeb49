// PATCH(auraos): this file is not upstream's; see PATCHED.md, "Idle
// websockets hold no goroutine and no read buffer".

package transports

import (
	"encoding/binary"
	"errors"
	"math"
	"net"
	"sync"
	"syscall"
	"time"
)

// Upstream reads every websocket on a goroutine of its own that blocks in
// gorilla's NextReader, with gorilla's read buffer: an idle connection, the
// common case of a realtime server, holds a goroutine stack and a buffer
// for nothing. On Linux the server's Poller waits for all its websockets at
// once instead; a connection that becomes readable gets a goroutine that
// reads the frames that are there, with a buffer lent for that time, and
// arms the connection again before it ends.
//
// gorilla keeps reading the frames (control frames, close, limits,
// compression): it reads through a PollConn, which gives it at most one
// frame per Read. After a whole message gorilla has then taken everything it
// was given, so when the PollConn's lent buffer is empty too nothing is
// buffered anywhere but in the kernel, and the connection can wait for the
// poller again.

// PollReadBufferSize is gorilla's own read buffer for a polled connection:
// the smallest it accepts (a control frame's payload). Reads go through the
// PollConn's lent buffer, so a larger one would only be held while idle.
const PollReadBufferSize = 128

// lendSize is the buffer a polled connection borrows while it has unread
// bytes.
const lendSize = 4 << 10

var lendPool = sync.Pool{New: func() any { b := make([]byte, lendSize); return &b }}

var errPollerClosed = errors.New("transports: poller closed")

// poller is the platform's readiness notifier (poller_linux.go).
type poller interface {
	add(*PollConn) error
	arm(*PollConn) error
	remove(*PollConn)
	stop()
}

// Poller waits for a server's idle websockets to become readable. It starts
// on the first connection it wraps; Stop ends its goroutine.
type Poller struct {
	mu      sync.Mutex
	p       poller
	failed  bool // no poller on this platform, or it could not start
	stopped bool
}

// Wrap returns c as a polled connection, or nil when c cannot be polled
// (not TCP underneath, another platform, or the poller is stopped): the
// websocket then reads on a goroutine of its own, as upstream does. stall
// bounds how long a reading goroutine waits for the rest of a frame.
func (s *Poller) Wrap(c net.Conn, stall time.Duration) *PollConn {
	tcp := tcpConn(c)
	if tcp == nil {
		return nil
	}
	raw, err := tcp.SyscallConn()
	if err != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped || s.failed {
		return nil
	}
	if s.p == nil {
		if s.p, err = newPoller(); err != nil {
			s.failed = true
			wsLog.Debug("no websocket poller: %v", err)
			return nil
		}
	}
	return &PollConn{Conn: c, raw: raw, poller: s.p, stall: stall, hdrLen: 2}
}

// Stop ends the poller's goroutine. Polled connections get no more reads:
// stop the server's sockets first.
func (s *Poller) Stop() {
	s.mu.Lock()
	p := s.p
	s.stopped, s.p = true, nil
	s.mu.Unlock()
	if p != nil {
		p.stop()
	}
}

// A ReadThrough connection wraps another whose reads it passes through
// unchanged (it may queue writes): a poller may wait on the wrapped one.
type ReadThrough interface {
	ReadThrough() net.Conn
}

func tcpConn(c net.Conn) *net.TCPConn {
	for {
		switch t := c.(type) {
		case *net.TCPConn:
			return t
		case ReadThrough:
			c = t.ReadThrough()
		default:
			return nil
		}
	}
}

// PollConn is a websocket's connection while a Poller waits for it. Its
// Read gives gorilla at most one frame, from a buffer it holds only while
// it has unread bytes.
type PollConn struct {
	net.Conn

	raw    syscall.RawConn
	poller poller
	id     uint64        // the poller's registration
	stall  time.Duration // longest wait for the rest of a frame
	ready  func()        // reads, on a goroutine of its own, when readable

	// readMu is held by the one goroutine reading; it orders each read
	// after the previous one (the poller's wake-ups go through the kernel,
	// which the race detector does not see).
	readMu sync.Mutex
	plain  bool // reads pass straight through: no poller reads this one

	buf  *[]byte // lent, nil when every byte read was handed out
	r, w int
	rerr error // a read error that came with bytes, for the next Read

	// The frame being handed out: its header so far, the header's length
	// once known (2 until then), and the payload bytes left.
	hdr       [14]byte
	hdrN      int
	hdrLen    int
	inPayload bool
	remain    int64
}

// start registers c with its poller: ready runs on a goroutine of its own
// whenever c is readable, and must arm c again when done.
func (c *PollConn) start(ready func()) error {
	c.ready = ready
	return c.poller.add(c)
}

func (c *PollConn) readable() { c.ready() }

// arm asks the poller for the next readiness.
func (c *PollConn) arm() error { return c.poller.arm(c) }

// readPlain makes reads pass straight through, for a reader goroutine of the
// connection's own.
func (c *PollConn) readPlain() {
	c.readMu.Lock()
	c.plain = true
	c.readMu.Unlock()
}

// drained reports whether every byte read from the kernel was handed out
// and the last one ended a frame: then gorilla, having read a whole
// message, buffers nothing either. Call it holding readMu.
func (c *PollConn) drained() bool {
	return c.buf == nil && c.rerr == nil && !c.inPayload && c.hdrN == 0
}

// Close unregisters c and closes the connection.
func (c *PollConn) Close() error {
	if c.id != 0 {
		c.poller.remove(c)
	}
	return c.Conn.Close()
}

// Read hands out the bytes read from the connection, never past the end of
// the frame they belong to.
func (c *PollConn) Read(p []byte) (int, error) {
	if c.plain {
		return c.Conn.Read(p)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if c.buf == nil {
		if err := c.rerr; err != nil {
			c.rerr = nil
			return 0, err
		}
		if c.inPayload && c.remain >= int64(len(p)) && len(p) >= lendSize {
			// A large read inside a frame: straight into p.
			n, err := c.Conn.Read(p)
			c.remain -= int64(n)
			if c.remain == 0 {
				c.inPayload, c.hdrLen = false, 2
			}
			return n, err
		}
		b := lendPool.Get().(*[]byte)
		n, err := c.Conn.Read(*b)
		if n <= 0 {
			lendPool.Put(b)
			return 0, err
		}
		c.buf, c.r, c.w, c.rerr = b, 0, n, err
	}
	n := c.take(p)
	if c.r == c.w {
		lendPool.Put(c.buf)
		c.buf = nil
	}
	return n, nil
}

// take copies buffered bytes to p up to the end of the current frame.
func (c *PollConn) take(p []byte) int {
	src := (*c.buf)[c.r:c.w]
	n := 0
	for n < len(p) && n < len(src) {
		if c.inPayload {
			k := min(int64(len(p)-n), int64(len(src)-n), c.remain)
			copy(p[n:], src[n:n+int(k)])
			n += int(k)
			c.remain -= k
			if c.remain == 0 {
				c.inPayload, c.hdrLen = false, 2
			}
			break // the frame's end, or p or the buffer is full
		}
		b := src[n]
		p[n] = b
		n++
		c.hdr[c.hdrN] = b
		c.hdrN++
		if c.hdrN == 2 {
			c.hdrLen = 2 + headerExtra(c.hdr[1])
		}
		if c.hdrN == c.hdrLen {
			c.remain = payloadLength(c.hdr[:c.hdrN])
			c.hdrN = 0
			if c.remain > 0 {
				c.inPayload = true
			} else {
				c.hdrLen = 2
				break // an empty frame ends here
			}
		}
	}
	c.r += n
	return n
}

// headerExtra is the header bytes after the first two: the extended length
// and the masking key.
func headerExtra(b1 byte) int {
	n := 0
	switch b1 & 0x7f {
	case 126:
		n = 2
	case 127:
		n = 8
	}
	if b1&0x80 != 0 {
		n += 4
	}
	return n
}

// payloadLength is the payload length a complete header gives.
func payloadLength(h []byte) int64 {
	switch l := h[1] & 0x7f; l {
	case 126:
		return int64(binary.BigEndian.Uint16(h[2:4]))
	case 127:
		n := binary.BigEndian.Uint64(h[2:10])
		if n > math.MaxInt64 {
			// gorilla refuses it; nothing after it is read.
			return math.MaxInt64
		}
		return int64(n)
	default:
		return int64(l)
	}
}
