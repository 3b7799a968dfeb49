// PATCH(auraos): this file is not upstream; see PATCHED.md.

package engine

import (
	"sync/atomic"

	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
)

// SlowConsumerReason is the close reason of a socket whose outbound queue
// passed the server's MaxBufferedBytes: its client stopped reading (a frozen
// tab, a dead network path that still passes pings) while packets kept
// coming for it.
const SlowConsumerReason = "slow consumer"

// outbound counts the bytes of a socket's queued packets. Upstream queues
// without bound: a client that stops reading but keeps answering pings
// makes the server hold everything sent to it.
type outbound struct {
	state    map[string]*packet.Packet // queued state packets by key; guarded by the socket's flushMu
	buffered atomic.Int64              // bytes in writeBuffer, not yet handed to the transport
	states   atomic.Int64              // of buffered, the bytes of state packets; guarded by flushMu for writes
	enqueued atomic.Uint64             // bytes ever queued
	flushed  atomic.Uint64             // bytes ever handed to the transport
	slow     atomic.Bool               // closed as a slow consumer
}

// packetSize is the size a packet takes in the queue: its pre-encoded
// frame or its data, when their length is known.
func packetSize(p *packet.Packet) int64 {
	if p.Options != nil && p.Options.WsPreEncodedFrame != nil {
		return int64(p.Options.WsPreEncodedFrame.Len())
	}
	if l, ok := p.Data.(interface{ Len() int }); ok {
		return int64(l.Len())
	}
	return 0
}

// BufferedBytes returns the bytes of packets queued on the socket and not
// yet handed to its transport.
func (s *socket) BufferedBytes() int64 { return s.out.buffered.Load() }

// EnqueuedBytes returns the bytes of every packet ever queued on the
// socket; a packet queued when it was n has left the queue once
// FlushedBytes reaches n.
func (s *socket) EnqueuedBytes() uint64 { return s.out.enqueued.Load() }

// FlushedBytes returns the bytes of every packet ever handed to the
// socket's transport.
func (s *socket) FlushedBytes() uint64 { return s.out.flushed.Load() }

// queued accounts for a packet of n bytes just queued (its size is taken
// before it is queued: once queued, a flush may hand it to the transport,
// which consumes its data), and closes the socket as a slow
// consumer when the queue passes the server's bound. The close runs on its
// own goroutine: the caller is usually a broadcast to many sockets, which
// must not wait for this one.
//
// State packets do not count towards the bound: a socket holds at most one
// per key (a newer one replaces it), so they cannot pile up, and one state
// may well be larger than the bound (the presence list of ten thousand
// users is megabytes) without its client being slow.
func (s *socket) queued(n int64) {
	s.out.enqueued.Add(uint64(n))
	total := s.out.buffered.Add(n) - s.out.states.Load()
	if limit := s.server.Opts().MaxBufferedBytes(); limit > 0 && total > limit && s.out.slow.CompareAndSwap(false, true) {
		socketLog.Debug("socket %s queued %d bytes, more than %d: closing it as a slow consumer", s.id, total, limit)
		go s.closeSlow()
	}
}

// handedOver accounts for packets moved from the queue to the transport.
func (s *socket) handedOver(packets []*packet.Packet) {
	var n int64
	for _, p := range packets {
		n += packetSize(p)
	}
	s.out.buffered.Add(-n)
	s.out.flushed.Add(uint64(n))
}

// closeSlow drops what is queued and closes the socket and its transport
// with SlowConsumerReason.
func (s *socket) closeSlow() {
	if state := s.ReadyState(); state == "closed" {
		return
	}
	s.flushMu.Lock()
	dropped := s.writeBuffer.AllAndClear()
	s.handedOver(dropped)
	clear(s.out.state)
	s.out.states.Store(0)
	s.flushMu.Unlock()
	if t := s.Transport(); t != nil {
		t.Discard()
	}
	s.OnClose(SlowConsumerReason)
}

// SendState queues a packet that stands for the newest state of key (a
// presence list, say): if a packet of the same key is still queued, not yet
// handed to the transport, it is taken out and replace is queued instead;
// otherwise next is. A socket so never holds two unsent states of one key,
// and a state built as a change from the last one sent (next) is sent only
// when that one is on its way. It reports whether a queued state was
// replaced. Both packets' data must be the socket's own (the transport may
// consume it); a shared pre-encoded websocket frame may be set in Options.
func (s *socket) SendState(key string, replace, next *packet.Packet) (replaced bool) {
	if state := s.ReadyState(); state == "closing" || state == "closed" {
		return false
	}
	s.flushMu.Lock()
	p := next
	if old := s.out.state[key]; old != nil {
		// Only a flush takes packets out otherwise, and it waits for
		// flushMu, which is held.
		same := func(q *packet.Packet) bool { return q == old }
		if s.writeBuffer.FindIndex(same) >= 0 {
			s.writeBuffer.Remove(same)
			n := packetSize(old)
			s.out.states.Add(-n)
			s.out.buffered.Add(-n)
			s.out.flushed.Add(uint64(n)) // it will never be handed over; keep the counters comparable
			p, replaced = replace, true
		}
	}
	if s.out.state == nil {
		s.out.state = map[string]*packet.Packet{}
	}
	s.out.state[key] = p
	size := packetSize(p)
	s.writeBuffer.Push(p)
	s.out.states.Add(size)
	s.queued(size)
	s.flushMu.Unlock()
	s.flush()
	return replaced
}

// queuedPacket is a packet a socket sends, with its own options and
// compress flag, in one allocation.
type queuedPacket struct {
	packet   packet.Packet
	opts     packet.Options
	compress bool
}
