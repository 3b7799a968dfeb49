// Package pgsignal is what the servers sharing one PostgreSQL event store
// tell each other outside the log. Bus carries the Socket.IO adapter's
// ephemeral signals (typing indicators) over LISTEN/NOTIFY; nothing is
// stored, so a server that is down or reconnecting misses the signals of
// that moment, which is what an ephemeral signal may do. Liveness tells
// running servers from dead ones with advisory locks.
package pgsignal

import (
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/lib/pq"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/internal/redact"
	"github.com/auraos/realtime/internal/sigbus"
)

// maxPayload is PostgreSQL's NOTIFY payload limit, less a margin.
const maxPayload = 7900

// outboxSize bounds the signals waiting to be sent; a signal that finds it
// full is dropped, since a late typing indicator is worth nothing.
const outboxSize = 256

// publishTimeout bounds one NOTIFY.
const publishTimeout = 2 * time.Second

// Bus publishes signals to, and receives them from, every server connected
// to the same database schema. It is safe for concurrent use.
type Bus struct {
	db       *sql.DB
	listener *pq.Listener
	channel  string
	log      *slog.Logger

	outbox    *sigbus.Outbox
	signals   chan []byte
	stop      chan struct{}  // stops the receiver
	wg        sync.WaitGroup // the receiver
	closeOnce sync.Once
}

// Open connects to the PostgreSQL database at dsn and listens on a channel
// named after its current schema (so servers sharing a schema share
// signals). An unreachable database is an UNAVAILABLE error.
func Open(ctx context.Context, dsn string, log *slog.Logger) (*Bus, error) {
	if log == nil {
		log = slog.Default()
	}
	db, current, err := connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(2)
	h := fnv.New64a()
	h.Write([]byte("auraos-signals-" + current))
	b := &Bus{
		db:      db,
		channel: fmt.Sprintf("auraos_signals_%x", h.Sum64()),
		log:     log,
		signals: make(chan []byte, outboxSize),
		stop:    make(chan struct{}),
	}
	b.listener = pq.NewListener(dsn, 100*time.Millisecond, 5*time.Second, func(ev pq.ListenerEventType, err error) {
		if err != nil {
			log.Warn("signal listener", "event", ev, "err", err)
		}
	})
	if err := b.listener.Listen(b.channel); err != nil {
		b.listener.Close()
		db.Close()
		return nil, unavailable("listen for signals", err)
	}
	b.outbox = sigbus.StartOutbox(outboxSize, b.notify)
	b.wg.Add(1)
	go b.receiveLoop()
	return b, nil
}

// Publish queues payload for every server listening, this one included. It
// never blocks; it returns false when the payload is too large for NOTIFY,
// the queue is full or the bus is closed, and the signal is dropped.
func (b *Bus) Publish(payload []byte) bool {
	if len(payload) > maxPayload {
		return false
	}
	return b.outbox.Offer(payload)
}

// Signals delivers the payloads published by every server, this one
// included, in the order PostgreSQL delivered them. It is closed by Close;
// a consumer that falls behind loses signals rather than holding up the
// listener.
func (b *Bus) Signals() <-chan []byte { return b.signals }

// Close stops publishing and listening and closes the connections.
func (b *Bus) Close() error {
	var err error
	b.closeOnce.Do(func() {
		b.outbox.Close()
		close(b.stop)
		b.wg.Wait()
		err = b.listener.Close()
		if cerr := b.db.Close(); err == nil {
			err = cerr
		}
	})
	return err
}

// notify sends one signal; the outbox's goroutine calls it.
func (b *Bus) notify(p []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	if _, err := b.db.ExecContext(ctx, "SELECT pg_notify($1, $2)", b.channel, string(p)); err != nil {
		b.log.Debug("signal not sent", "err", err)
	}
}

func (b *Bus) receiveLoop() {
	defer b.wg.Done()
	defer close(b.signals)
	for {
		select {
		case n := <-b.listener.Notify:
			if n == nil {
				continue // the listener reconnected; what was sent meanwhile is gone
			}
			select {
			case b.signals <- []byte(n.Extra):
			default:
			}
		case <-b.stop:
			return
		}
	}
}

// connect opens dsn and reads its current schema, which names the channel
// and the locks shared by the servers on that schema.
func connect(ctx context.Context, dsn string) (*sql.DB, string, error) {
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return nil, "", unavailable("open a connection", err)
	}
	var current string
	if err := db.QueryRowContext(ctx, "SELECT current_schema()").Scan(&current); err != nil {
		db.Close()
		// lib/pq's parse errors quote the connection string, password and all.
		return nil, "", unavailable("read the current schema", redact.Error(err))
	}
	return db, current, nil
}

func unavailable(what string, cause error) error {
	return domain.WrapError(domain.EUNAVAILABLE, "signals unavailable: "+what, cause)
}
