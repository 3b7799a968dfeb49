// Package sigbus holds what the signal buses (socketadapter/pgsignal over
// PostgreSQL, socketadapter/natssignal over NATS) share: the queue in front
// of their publisher.
package sigbus

import "sync"

// Outbox queues signals for one sending goroutine, so that publishing never
// blocks the caller (a socket's task queue). A signal that finds the queue
// full, or the outbox closed, is dropped: a late typing indicator is worth
// nothing. It is safe for concurrent use.
type Outbox struct {
	queue     chan []byte
	stop      chan struct{}
	done      chan struct{} // closed when the sender returns
	closeOnce sync.Once
}

// StartOutbox starts the goroutine that hands each queued signal to send,
// one at a time, until Close; at most size signals wait.
func StartOutbox(size int, send func([]byte)) *Outbox {
	o := &Outbox{queue: make(chan []byte, size), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(o.done)
		for {
			select {
			case p := <-o.queue:
				send(p)
			case <-o.stop:
				return
			}
		}
	}()
	return o
}

// Offer queues p without blocking; it returns false, dropping p, when the
// queue is full or the outbox closed.
func (o *Outbox) Offer(p []byte) bool {
	select {
	case <-o.stop:
		return false
	default:
	}
	select {
	case o.queue <- p:
		return true
	default:
		return false
	}
}

// Close stops the sender and waits until it has returned; signals still
// queued are dropped. It is safe to call more than once.
func (o *Outbox) Close() {
	o.closeOnce.Do(func() { close(o.stop) })
	<-o.done
}
