// Package natssignal is what the servers sharing one event store tell each
// other outside the log when they share a NATS broker instead of a
// PostgreSQL database: Bus carries the Socket.IO adapter's ephemeral signals
// (typing indicators) on a core NATS subject, and Liveness tells running
// servers from dead ones with leases in a JetStream key-value bucket.
//
// Nothing the log holds depends on NATS: a broker that is away loses the
// typing indicators of that moment, and a server whose lease lapses has its
// sessions ended through the log, exactly as if it had died.
//
// Under one prefix (the installation's name) everything lives at:
//
//	<prefix>.signals              typing indicators, one subject for all rooms
//	<prefix>.instance.<id>        each server process answers here while it runs
//	KV bucket <prefix>-nodes      key node.<node id>: the lease of a running
//	                              server, or the claim of one that ends a dead
//	                              server's sessions
package natssignal

import (
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/internal/redact"
)

// Options configure Connect.
type Options struct {
	// URL is one nats:// (or tls://) URL or several, comma-separated (the
	// servers of one cluster).
	URL string
	// Name names the connection in the broker's monitoring (the node id).
	Name string
	// Logger gets one warning when the connection is lost and one line when
	// it is back (default slog.Default).
	Logger *slog.Logger
	// OnReconnect, when set, is called once each time the connection is back
	// after an outage (the server counts it in a metric).
	OnReconnect func()
}

// Conn is one server's connection to NATS. It reconnects by itself, for as
// long as it takes, and never delivers a server's own publications back to
// it. While it is disconnected, publishing drops instead of buffering: a
// typing indicator delivered late would be wrong.
type Conn struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	log *slog.Logger

	mu       sync.Mutex
	closing  bool
	down     time.Time       // when the current outage began; zero while connected
	onResume []chan struct{} // each gets a token when the connection is back
}

// The reconnect settings. A lost broker is retried forever, a little apart
// so that several servers do not all knock at the same moment; pings find a
// connection that died without closing (a network partition) within about
// pingInterval × maxPingsOut.
const (
	reconnectWait   = 500 * time.Millisecond
	reconnectJitter = 500 * time.Millisecond
	pingInterval    = 5 * time.Second
	maxPingsOut     = 2
	dialTimeout     = 5 * time.Second
)

// Connect connects to the broker at opts.URL. It fails at once, with an
// UNAVAILABLE error, when no server of the URL answers (a misconfigured URL
// should not pass unnoticed); once connected it reconnects by itself.
func Connect(opts Options) (*Conn, error) {
	if err := CheckURL(opts.URL); err != nil {
		return nil, err
	}
	c := &Conn{log: opts.Logger}
	if c.log == nil {
		c.log = slog.Default()
	}
	nc, err := nats.Connect(opts.URL,
		nats.Name(opts.Name),
		nats.NoEcho(),
		nats.Timeout(dialTimeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(reconnectWait),
		nats.ReconnectJitter(reconnectJitter, reconnectJitter),
		nats.ReconnectBufSize(-1),
		nats.PingInterval(pingInterval),
		nats.MaxPingsOutstanding(maxPingsOut),
		nats.DisconnectErrHandler(c.disconnected),
		nats.ReconnectHandler(func(nc *nats.Conn) { c.reconnected(nc, opts.OnReconnect) }),
	)
	if err != nil {
		return nil, unavailable("connect to NATS at "+redact.Text(opts.URL), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, unavailable("open JetStream", err)
	}
	c.nc, c.js = nc, js
	return c, nil
}

// disconnected logs the start of an outage, once: nats.go calls it when the
// connection drops, not for each failed attempt to reconnect.
func (c *Conn) disconnected(_ *nats.Conn, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing || !c.down.IsZero() {
		return
	}
	c.down = time.Now()
	c.log.Warn("lost the connection to NATS; typing indicators do not cross servers until it is back, chat and presence carry on", "err", err)
}

func (c *Conn) reconnected(nc *nats.Conn, count func()) {
	// A round trip makes sure the broker has the subscriptions nats.go sent
	// again, so what this server publishes from now on reaches the others
	// and theirs reaches it.
	_ = nc.FlushTimeout(dialTimeout)
	c.mu.Lock()
	var outage time.Duration
	if !c.down.IsZero() {
		outage = time.Since(c.down)
	}
	c.down = time.Time{}
	waiting := c.onResume
	c.mu.Unlock()
	c.log.Info("reconnected to NATS", "url", nc.ConnectedUrlRedacted(), "outage", outage.Round(time.Millisecond))
	if count != nil {
		count()
	}
	for _, ch := range waiting {
		select {
		case ch <- struct{}{}:
		default: // a token is already waiting
		}
	}
}

// resumed returns a channel that gets a token each time the connection is
// back after an outage; it stays registered until Close.
func (c *Conn) resumed() <-chan struct{} {
	ch := make(chan struct{}, 1)
	c.mu.Lock()
	c.onResume = append(c.onResume, ch)
	c.mu.Unlock()
	return ch
}

// Close closes the connection. Close the Bus and the Liveness that use it
// first.
func (c *Conn) Close() error {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	c.nc.Close()
	return nil
}

// urlPart is one server of the URL list.
var urlPart = regexp.MustCompile(`^(nats|tls)://[^\s,]+$`)

// CheckURL checks that s is a nats:// or tls:// URL, or several of them
// separated by commas. It returns an INVALID_PAYLOAD error saying what is
// wrong, without the URL's password.
func CheckURL(s string) error {
	if s == "" {
		return domain.Errorf(domain.EINVALID, "no NATS URL given")
	}
	for _, part := range strings.Split(s, ",") {
		if !urlPart.MatchString(strings.TrimSpace(part)) {
			return domain.Errorf(domain.EINVALID, "%q is not a NATS URL (want nats://host:4222, several separated by commas)", redact.Text(part))
		}
	}
	return nil
}

// prefixPattern is what a prefix may hold: it becomes a subject token and
// part of a bucket name, which allow no dots, spaces or wildcards.
var prefixPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// CheckPrefix checks that prefix can name subjects and a bucket: 1–64
// letters, digits, '_' or '-'. It returns an INVALID_PAYLOAD error.
func CheckPrefix(prefix string) error {
	if !prefixPattern.MatchString(prefix) {
		return domain.Errorf(domain.EINVALID, "signals prefix %q: want 1-64 letters, digits, '_' or '-'", prefix)
	}
	return nil
}

func unavailable(what string, cause error) error {
	return domain.WrapError(domain.EUNAVAILABLE, "signals unavailable: "+what, cause)
}

// subject returns the name of a subject under prefix.
func subject(prefix string, tokens ...string) string {
	return fmt.Sprintf("%s.%s", prefix, strings.Join(tokens, "."))
}
