//go:build linux && (amd64 || arm64)

// PATCH(auraos): this file is not upstream's; see PATCHED.md, "Idle
// websockets hold no goroutine and no read buffer".

package transports

import (
	"errors"
	"sync"

	"golang.org/x/sys/unix"
)

// epoll is the Linux poller: one epoll instance whose registrations are
// one-shot and level-triggered, and one goroutine that waits on it.
type epoll struct {
	mu      sync.RWMutex // RLock to use epfd, Lock to close it
	closed  bool
	failed  bool // the wait failed: registering and arming fail too
	epfd    int
	wakefd  int // an eventfd that ends the wait on stop
	nextID  uint64
	conns   map[uint64]*PollConn
	stopped chan struct{} // closed when the wait loop returns
}

// wakeID is the registration id of the eventfd; connection ids start at 1.
const wakeID = 0

func newPoller() (poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		_ = unix.Close(epfd)
		return nil, err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	setEventID(&ev, wakeID)
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		_ = unix.Close(epfd)
		_ = unix.Close(wakefd)
		return nil, err
	}
	p := &epoll{epfd: epfd, wakefd: wakefd, nextID: wakeID + 1, conns: map[uint64]*PollConn{}, stopped: make(chan struct{})}
	go p.wait()
	return p, nil
}

// The 64 bits of an event's data are Fd (low) and Pad (high) on both
// architectures this file builds for.
func setEventID(ev *unix.EpollEvent, id uint64) {
	ev.Fd, ev.Pad = int32(uint32(id)), int32(uint32(id>>32))
}

func eventID(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// wait hands every readable connection to a goroutine of its own, which
// reads what is there and arms the connection again (see PollConn).
func (p *epoll) wait() {
	defer close(p.stopped)
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			// Not expected before stop. Connections waiting now are
			// dropped by their heartbeat; new ones read on goroutines of
			// their own (startPolling), armed ones are closed (pollRead).
			wsLog.Errorf("websocket poller stopped: %v", err)
			p.mu.Lock()
			p.failed = true
			p.mu.Unlock()
			return
		}
		for i := range events[:n] {
			id := eventID(&events[i])
			if id == wakeID {
				return
			}
			p.mu.RLock()
			c := p.conns[id]
			p.mu.RUnlock()
			if c != nil {
				go c.readable()
			}
		}
	}
}

// add registers c, armed.
func (p *epoll) add(c *PollConn) error {
	p.mu.Lock()
	if p.closed || p.failed {
		p.mu.Unlock()
		return errPollerClosed
	}
	c.id = p.nextID
	p.nextID++
	p.conns[c.id] = c
	p.mu.Unlock()
	if err := p.ctl(c, unix.EPOLL_CTL_ADD); err != nil {
		p.remove(c)
		return err
	}
	return nil
}

// arm asks for one more readiness event of c.
func (p *epoll) arm(c *PollConn) error {
	return p.ctl(c, unix.EPOLL_CTL_MOD)
}

// ctl runs inside the connection's RawConn.Control, which keeps its
// descriptor open (a closed connection's number may have been reused) and
// fails once the connection is closed.
func (p *epoll) ctl(c *PollConn, op int) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed || p.failed {
		return errPollerClosed
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT}
	setEventID(&ev, c.id)
	var cerr error
	if err := c.raw.Control(func(fd uintptr) {
		cerr = unix.EpollCtl(p.epfd, op, int(fd), &ev)
	}); err != nil {
		return err
	}
	return cerr
}

// remove forgets c. Closing its descriptor takes it out of the epoll set.
func (p *epoll) remove(c *PollConn) {
	p.mu.Lock()
	delete(p.conns, c.id)
	p.mu.Unlock()
}

// stop ends the wait loop and closes the epoll instance. Connections still
// registered get no more readiness events; arming them fails.
func (p *epoll) stop() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.conns = map[uint64]*PollConn{}
	p.mu.Unlock()
	var one [8]byte
	one[0] = 1 // eventfd counters are host-endian; any non-zero value wakes
	_, _ = unix.Write(p.wakefd, one[:])
	<-p.stopped
	_ = unix.Close(p.epfd)
	_ = unix.Close(p.wakefd)
}
