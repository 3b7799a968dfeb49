// PATCH(auraos): this file is not upstream's; see PATCHED.md, "A websocket
// send is one write".

package transports

import "net"

// A WriteBatcher is a connection that can hold its writes and send them
// together. The websocket transport holds writes for the whole of a send (a
// batch of packets, one frame each) and of the sends queued behind it, and
// releases them when no more are queued, so the batches leave in one system
// call written by the sends' own goroutine, instead of one per frame.
type WriteBatcher interface {
	// HoldWrites makes writes queue until ReleaseWrites; a connection may
	// still write some out early to bound what it holds.
	HoldWrites()
	// Held returns how many bytes are queued.
	Held() int
	// ReleaseWrites writes out what is held, on the caller's goroutine,
	// and returns the connection's first write error unless a Write has
	// returned it already (the transport reports each failure once).
	ReleaseWrites() error
}

// writeBatcher returns the WriteBatcher c is or, when c is a PollConn,
// wraps; nil when there is none.
func writeBatcher(c net.Conn) WriteBatcher {
	if pc, ok := c.(*PollConn); ok {
		c = pc.Conn
	}
	b, _ := c.(WriteBatcher)
	return b
}
