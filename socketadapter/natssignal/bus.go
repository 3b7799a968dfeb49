package natssignal

import (
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/auraos/realtime/internal/sigbus"
)

// outboxSize bounds the signals waiting to be published, and those
// received but not yet taken; a signal that finds its queue full is
// dropped, since a late typing indicator is worth nothing.
const outboxSize = 256

// Bus publishes signals to, and receives them from, every other server on
// the same prefix. It implements socketadapter.SignalBus and is safe for
// concurrent use.
//
// It never delivers a server's own signals back to it (its connection is
// opened with NoEcho), so the adapter, which shows a signal to its own
// sockets when it sends it, shows it once. Signals published while the
// broker is away are dropped, and so are those the others published
// meanwhile: nothing is stored or replayed.
type Bus struct {
	nc      *nats.Conn
	subject string
	sub     *nats.Subscription
	outbox  *sigbus.Outbox

	mu      sync.RWMutex // closed and sends on signals
	closed  bool
	signals chan []byte

	closeOnce sync.Once
}

// OpenBus subscribes to the signals of prefix (see CheckPrefix) on c. It
// returns an INVALID_PAYLOAD error for a bad prefix and an UNAVAILABLE one
// when the broker cannot be reached.
func OpenBus(c *Conn, prefix string) (*Bus, error) {
	if err := CheckPrefix(prefix); err != nil {
		return nil, err
	}
	b := &Bus{nc: c.nc, subject: subject(prefix, "signals"), signals: make(chan []byte, outboxSize)}
	sub, err := c.nc.Subscribe(b.subject, b.receive)
	if err != nil {
		return nil, unavailable("subscribe to signals", err)
	}
	// The subscription exists at the broker once Open returns, so a signal
	// another server publishes after that is not missed.
	if err := c.nc.FlushTimeout(dialTimeout); err != nil {
		_ = sub.Unsubscribe()
		return nil, unavailable("subscribe to signals", err)
	}
	b.sub = sub
	// nats.go writes into a buffer its own flusher sends, so a publish takes
	// no round trip; while disconnected it fails at once (there is no
	// reconnect buffer) and the signal is dropped.
	b.outbox = sigbus.StartOutbox(outboxSize, func(p []byte) { _ = b.nc.Publish(b.subject, p) })
	return b, nil
}

// receive runs on the subscription's goroutine (nats.go's, one per
// subscription); it never blocks it.
func (b *Bus) receive(m *nats.Msg) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return
	}
	select {
	case b.signals <- m.Data:
	default:
	}
}

// Publish queues payload for every other server on the prefix. It never
// blocks; it returns false, dropping the signal, when the payload is larger
// than the broker accepts, the broker is away, the queue is full or the bus
// is closed.
func (b *Bus) Publish(payload []byte) bool {
	if int64(len(payload)) > b.nc.MaxPayload() || !b.nc.IsConnected() {
		return false
	}
	return b.outbox.Offer(payload)
}

// Signals delivers the payloads the other servers publish. It is closed by
// Close; a consumer that falls behind loses signals rather than holding up
// the connection.
func (b *Bus) Signals() <-chan []byte { return b.signals }

// Close stops publishing and receiving and closes Signals. It does not
// close the connection.
func (b *Bus) Close() error {
	var err error
	b.closeOnce.Do(func() {
		b.outbox.Close()
		if uerr := b.sub.Unsubscribe(); uerr != nil && uerr != nats.ErrConnectionClosed {
			err = uerr
		}
		b.mu.Lock()
		b.closed = true
		close(b.signals)
		b.mu.Unlock()
	})
	return err
}
