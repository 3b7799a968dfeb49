package natssignal

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auraos/realtime/domain"
)

// DefaultLeaseTTL is how long a lease outlives its last renewal unless
// LivenessOptions.TTL says otherwise.
const DefaultLeaseTTL = 10 * time.Second

// MinLeaseTTL is the shortest lease TTL accepted: renewals go every third
// of it, and each is a round trip to JetStream.
const MinLeaseTTL = time.Second

// The kinds of value a node's key holds.
const (
	// kindRunning: the lease of the server process Instance, which runs as
	// the node.
	kindRunning = "running"
	// kindEnding: the server process Instance found the node dead and is
	// ending its sessions; the node cannot start meanwhile.
	kindEnding = "ending"
	// kindEnded: the node's sessions were ended. The marker stays for one
	// TTL, so that a server whose read model still shows them open does
	// not end them again; the node may start again at once.
	kindEnded = "ended"
)

// leaseValue is the value of a node's key.
type leaseValue struct {
	Kind     string    `json:"kind"`
	Instance string    `json:"instance"` // the process that wrote it
	Node     string    `json:"node"`     // that process's node id
	At       time.Time `json:"at"`       // when it was written, for people reading the bucket
}

// claimPoll is how often a starting server looks again while another
// server ends the sessions of its node's previous run.
const claimPoll = 200 * time.Millisecond

// pingTimeout bounds asking a process whether it runs.
const pingTimeout = 2 * time.Second

// LivenessOptions configure OpenLiveness.
type LivenessOptions struct {
	// Prefix keeps installations that share a broker apart (see
	// CheckPrefix); the bucket is <Prefix>-nodes.
	Prefix string
	// Node is this server's node id.
	Node string
	// TTL is how long a lease outlives its last renewal (default
	// DefaultLeaseTTL, at least MinLeaseTTL). It is the bucket's: the
	// first server creates the bucket with it, and a server that finds the
	// bucket with another TTL uses the bucket's and logs a warning.
	TTL time.Duration
	// Logger gets the lease's troubles, each once until it is over
	// (default slog.Default).
	Logger *slog.Logger
}

// Liveness tells the servers that share a broker apart from dead ones. Each
// server holds a lease on its node's key in a JetStream key-value bucket
// whose TTL removes a key that is not renewed; the server renews it every
// third of the TTL. A server that dies (or is cut off from the broker for
// most of a TTL) loses its lease, and another server may then take the key
// over to end its sessions: the key is created only if absent, so exactly
// one server does, however many try at the same moment.
//
// Heartbeats on a subject would need every server to keep a view of every
// other and to agree on who acts; the bucket gives both the expiry and the
// one winner from a single atomic create, and the broker keeps it across
// its own restarts.
type Liveness struct {
	nc       *nats.Conn
	kv       jetstream.KeyValue
	js       jetstream.JetStream
	bucket   string
	prefix   string
	node     string
	instance string
	ttl      time.Duration
	every    time.Duration // renewal period
	log      *slog.Logger
	ping     *nats.Subscription
	resumed  <-chan struct{}

	mu        sync.Mutex
	rev       uint64    // revision of this node's lease; 0 while it is not held
	heldSince time.Time // since when every renewal succeeded; zero after a failure
	trouble   string    // the lease's trouble last logged; "" while it is fine
	closed    bool      // no claim starts once set

	stop      chan struct{}
	wg        sync.WaitGroup // the keeper and the claims' keepers
	closeOnce sync.Once
}

// OpenLiveness takes the lease of opts.Node on c and keeps renewing it
// until Close. When the node's key is held:
//   - by a running server (it answers on its instance subject), it fails at
//     once with a CONFLICT error "node id X is held by another running
//     server";
//   - by this node's previous run, which is gone (a crash, a kill), it
//     takes the lease over at once, without waiting for it to expire;
//   - by a server that is ending this node's sessions, it waits until that
//     server is done (or gone), or until ctx ends.
//
// It returns INVALID_PAYLOAD for bad options and UNAVAILABLE when the
// broker or its JetStream cannot be reached.
func OpenLiveness(ctx context.Context, c *Conn, opts LivenessOptions) (*Liveness, error) {
	if err := CheckPrefix(opts.Prefix); err != nil {
		return nil, err
	}
	if err := domain.CheckID("nodeId", opts.Node); err != nil {
		return nil, err
	}
	if opts.TTL == 0 {
		opts.TTL = DefaultLeaseTTL
	}
	if opts.TTL < MinLeaseTTL {
		return nil, domain.Errorf(domain.EINVALID, "lease TTL %s: must be at least %s", opts.TTL, MinLeaseTTL)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	l := &Liveness{
		nc: c.nc, js: c.js, bucket: opts.Prefix + "-nodes", prefix: opts.Prefix, node: opts.Node,
		instance: hex.EncodeToString(id[:]), log: opts.Logger, stop: make(chan struct{}),
	}
	if err := l.openBucket(ctx, opts.TTL); err != nil {
		return nil, err
	}
	// While this process runs it answers here, which is how a server started
	// with the same node id tells it from a dead previous run.
	ping, err := c.nc.Subscribe(l.instanceSubject(l.instance), func(m *nats.Msg) { _ = m.Respond([]byte(kindRunning)) })
	if err != nil {
		return nil, unavailable("subscribe to this server's instance subject", err)
	}
	l.ping = ping
	if err := c.nc.FlushTimeout(dialTimeout); err != nil {
		_ = ping.Unsubscribe()
		return nil, unavailable("subscribe to this server's instance subject", err)
	}
	if err := l.acquire(ctx); err != nil {
		_ = ping.Unsubscribe()
		return nil, err
	}
	l.resumed = c.resumed()
	l.wg.Add(1)
	go l.keep()
	return l, nil
}

// openBucket opens the lease bucket, creating it when it is missing, and
// adopts its TTL.
func (l *Liveness) openBucket(ctx context.Context, ttl time.Duration) error {
	kv, err := l.js.KeyValue(ctx, l.bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = l.createBucket(ctx, ttl)
	}
	if err != nil {
		return unavailable("open the lease bucket "+l.bucket+" (is JetStream enabled, nats-server -js?)", err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return unavailable("read the lease bucket "+l.bucket, err)
	}
	switch got := st.TTL(); {
	case got == 0:
		return domain.Errorf(domain.EINVALID, "the bucket %s has no TTL, so a dead server's lease would never expire: delete it (nats kv del %s) and let a server create it", l.bucket, l.bucket)
	case got != ttl:
		l.log.Warn("the lease bucket has another TTL than this server's; using the bucket's", "bucket", l.bucket, "bucket_ttl", got, "lease_ttl", ttl)
		ttl = got
	}
	l.kv, l.ttl, l.every = kv, ttl, ttl/3
	return nil
}

func (l *Liveness) createBucket(ctx context.Context, ttl time.Duration) (jetstream.KeyValue, error) {
	kv, err := l.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      l.bucket,
		Description: "AuraOS node leases: a running server's, or the claim of a server ending a dead one's sessions",
		History:     1,
		TTL:         ttl,
		Storage:     jetstream.FileStorage,
	})
	if errors.Is(err, jetstream.ErrBucketExists) {
		return l.js.KeyValue(ctx, l.bucket) // another server created it first
	}
	return kv, err
}

// plainNode is a node id that is a key token as it is.
var plainNode = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// key returns the key of node: node.<id> when the id is a valid key token,
// else node-b64.<its base64>, so any node id has a key.
func key(node string) string {
	if plainNode.MatchString(node) {
		return "node." + node
	}
	return "node-b64." + base64.RawURLEncoding.EncodeToString([]byte(node))
}

func (l *Liveness) instanceSubject(instance string) string {
	return subject(l.prefix, "instance", instance)
}

func (l *Liveness) value(kind string) []byte {
	b, _ := json.Marshal(leaseValue{Kind: kind, Instance: l.instance, Node: l.node, At: time.Now().UTC()})
	return b
}

func parseValue(b []byte) leaseValue {
	var v leaseValue
	_ = json.Unmarshal(b, &v) // a value that is not ours has no instance, so no process answers for it
	return v
}

// running reports whether the server process instance still runs: it
// answers on its subject, or at least someone listens there and is slow to
// answer (taken as running). Only when nobody listens is it gone.
func (l *Liveness) running(ctx context.Context, instance string) (bool, error) {
	if instance == "" {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	_, err := l.nc.RequestWithContext(ctx, l.instanceSubject(instance), nil)
	switch {
	case err == nil, errors.Is(err, context.DeadlineExceeded):
		return true, nil
	case errors.Is(err, nats.ErrNoResponders):
		return false, nil
	}
	return false, unavailable("ask whether a server runs", err)
}

// acquire takes this node's lease (see OpenLiveness).
func (l *Liveness) acquire(ctx context.Context) error {
	k, mine := key(l.node), l.value(kindRunning)
	waiting := false
	for {
		rev, err := l.kv.Create(ctx, k, mine)
		if err == nil {
			l.held(rev)
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return unavailable("take this node's lease", err)
		}
		e, err := l.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // it expired meanwhile
		}
		if err != nil {
			return unavailable("read this node's lease", err)
		}
		v := parseValue(e.Value())
		alive := false
		if v.Kind != kindEnded {
			if alive, err = l.running(ctx, v.Instance); err != nil {
				return err
			}
		}
		switch {
		case !alive:
			// The previous run (or a server that was ending its sessions)
			// is gone; this start ends what it left open.
			rev, err := l.kv.Update(ctx, k, mine, e.Revision())
			if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
				continue // someone else changed it first; look again
			}
			if err != nil {
				return unavailable("take this node's lease over", err)
			}
			if v.Kind == kindRunning {
				l.log.Info("took over the lease this node's previous run left", "node", l.node)
			}
			l.held(rev)
			return nil
		case v.Kind == kindRunning:
			return domain.Errorf(domain.ECONFLICT, "node id %s is held by another running server", l.node)
		}
		if !waiting {
			waiting = true
			l.log.Info("waiting while another server ends the sessions of this node's previous run", "node", l.node, "by", v.Node)
		}
		select {
		case <-ctx.Done():
			return unavailable("wait for this node's lease", ctx.Err())
		case <-time.After(claimPoll):
		}
	}
}

// held records that this node's lease is held at rev.
func (l *Liveness) held(rev uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rev == 0 || l.heldSince.IsZero() {
		l.heldSince = time.Now()
	}
	l.rev = rev
	if l.trouble != "" {
		l.log.Info("this node's lease is held again", "node", l.node)
		l.trouble = ""
	}
}

// troubled logs a trouble of the lease once until it is over, and marks
// the lease unsteady: a server whose renewals fail does not take the others'
// missing leases for deaths (theirs probably failed too).
func (l *Liveness) troubled(kind, msg string, level slog.Level, attrs ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.heldSince = time.Time{}
	if kind == "lost" {
		l.rev = 0
	}
	if l.trouble == kind {
		return
	}
	l.trouble = kind
	if !l.nc.IsConnected() {
		level = slog.LevelDebug // the connection's own outage warning says it already
	}
	l.log.Log(context.Background(), level, msg, append([]any{"node", l.node}, attrs...)...)
}

// keep renews this node's lease every third of the TTL, and at once when
// the connection is back after an outage, until Close.
func (l *Liveness) keep() {
	defer l.wg.Done()
	t := time.NewTicker(l.every)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		case <-l.resumed:
		}
		l.renew()
	}
}

// renew renews the lease, or takes it again when it lapsed.
func (l *Liveness) renew() {
	ctx, cancel := context.WithTimeout(context.Background(), l.every)
	defer cancel()
	l.mu.Lock()
	rev := l.rev
	l.mu.Unlock()
	k, mine := key(l.node), l.value(kindRunning)
	if rev != 0 {
		next, err := l.kv.Update(ctx, k, mine, rev)
		if err == nil {
			l.held(next)
			return
		}
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			l.troubled("renew", "could not renew this node's lease; retrying", slog.LevelWarn, "err", err)
			if errors.Is(err, jetstream.ErrNoStreamResponse) {
				l.recreateBucket(ctx) // the broker came back without its storage
			}
			return
		}
		// The key moved on: the lease lapsed, or a renewal landed whose
		// answer was lost; retake tells which.
		l.mu.Lock()
		l.rev, l.heldSince = 0, time.Time{}
		l.mu.Unlock()
	}
	l.retake(ctx, k, mine)
}

// retake takes the lease again after it lapsed. Meanwhile another server
// may have ended this node's sessions: their ends reach this server through
// the log, and the adapter drops those sockets.
func (l *Liveness) retake(ctx context.Context, k string, mine []byte) {
	e, err := l.kv.Get(ctx, k)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		l.troubled("lost", "this node's lease lapsed (the broker was out of reach for longer than its TTL, or lost its storage); taking it again", slog.LevelWarn)
		rev, err := l.kv.Create(ctx, k, mine)
		if err == nil {
			l.held(rev)
		} else if !errors.Is(err, jetstream.ErrKeyExists) {
			l.troubled("retake", "could not take this node's lease again; retrying", slog.LevelWarn, "err", err)
		}
		return
	case err != nil:
		l.troubled("retake", "could not take this node's lease again; retrying", slog.LevelWarn, "err", err)
		if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
			l.recreateBucket(ctx)
		}
		return
	}
	v := parseValue(e.Value())
	switch {
	case v.Instance == l.instance && v.Kind == kindRunning:
		l.held(e.Revision()) // a renewal landed though its answer was lost
	case v.Kind == kindEnded:
		l.troubled("ended", "another server ended this node's sessions while its lease had lapsed; taking the lease again", slog.LevelWarn, "by", v.Node)
		if rev, err := l.kv.Update(ctx, k, mine, e.Revision()); err == nil {
			l.held(rev)
		}
	case v.Kind == kindEnding:
		l.troubled("ending", "another server is ending this node's sessions (its lease had lapsed); taking the lease again when it is done", slog.LevelWarn, "by", v.Node)
	default:
		l.troubled("taken", "another server took this node id while this one could not renew its lease; give every server its own --node-id", slog.LevelError, "by_instance", v.Instance)
	}
}

// recreateBucket creates the lease bucket again when the broker lost it.
func (l *Liveness) recreateBucket(ctx context.Context) {
	if _, err := l.createBucket(ctx, l.ttl); err != nil {
		l.log.Debug("could not create the lease bucket again", "bucket", l.bucket, "err", err)
	}
}

// steady reports whether this server has held its lease, every renewal
// succeeding, for a whole TTL. Only then is another node's missing lease
// evidence of its death: after an outage of the broker every lease may
// have lapsed at once, and the servers take theirs again within a renewal
// period of being back.
func (l *Liveness) steady() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rev != 0 && !l.heldSince.IsZero() && time.Since(l.heldSince) >= l.ttl
}

// TakeOver claims the key of another node whose lease is gone, so that the
// caller can end its sessions. It reports ok=false, without error, when the
// node runs, when another server claimed it first (one claim succeeds
// however many servers try at once) or ended its sessions less than a TTL
// ago, and while this server's own lease has not been steady for a whole
// TTL (see steady). When ok, the node cannot start again until release is
// called (or this server dies and the claim expires); release marks the
// node's sessions ended. Errors are UNAVAILABLE.
func (l *Liveness) TakeOver(ctx context.Context, node string) (release func(), ok bool, err error) {
	if node == l.node {
		return nil, false, errors.New("a node cannot take over its own lease")
	}
	if !l.steady() {
		return nil, false, nil
	}
	k := key(node)
	rev, err := l.kv.Create(ctx, k, l.value(kindEnding))
	if errors.Is(err, jetstream.ErrKeyExists) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, unavailable("claim a lost node", err)
	}
	c := &claim{l: l, key: k, rev: rev, stop: make(chan struct{}), exited: make(chan struct{})}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		close(c.exited)
		c.release()
		return nil, false, errors.New("liveness closed")
	}
	l.wg.Add(1)
	l.mu.Unlock()
	go c.keep()
	var once sync.Once
	return func() { once.Do(c.release) }, true, nil
}

// claim is a key this server holds while it ends a dead node's sessions.
type claim struct {
	l      *Liveness
	key    string
	stop   chan struct{}
	exited chan struct{} // closed when keep returns
	rev    uint64        // owned by keep until it exits, then by release
}

// keep renews the claim, so that ending many sessions may take longer than
// a TTL, until release or Close.
func (c *claim) keep() {
	defer c.l.wg.Done()
	defer close(c.exited)
	t := time.NewTicker(c.l.every)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-c.l.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.l.every)
		if rev, err := c.l.kv.Update(ctx, c.key, c.l.value(kindEnding), c.rev); err == nil {
			c.rev = rev
		}
		cancel()
	}
}

// release stops renewing the claim and leaves the ended marker.
func (c *claim) release() {
	close(c.stop)
	<-c.exited
	ctx, cancel := context.WithTimeout(context.Background(), c.l.every)
	defer cancel()
	if _, err := c.l.kv.Update(ctx, c.key, c.l.value(kindEnded), c.rev); err != nil {
		c.l.log.Debug("could not mark a lost node's sessions ended; the claim expires by itself", "key", c.key, "err", err)
	}
}

// Close stops renewing, gives up this node's lease (so that it can start
// again at once, and the others see it stopped) and stops answering on its
// instance subject. It does not close the connection. A lease it could not
// give up (the broker is away) expires within a TTL, so that is no error.
func (l *Liveness) Close() error {
	var err error
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		close(l.stop)
		l.wg.Wait()
		l.mu.Lock()
		rev := l.rev
		l.mu.Unlock()
		if rev != 0 {
			ctx, cancel := context.WithTimeout(context.Background(), l.every)
			if derr := l.kv.Delete(ctx, key(l.node), jetstream.LastRevision(rev)); derr != nil {
				l.log.Debug("could not give up this node's lease; it expires by itself", "node", l.node, "err", derr)
			}
			cancel()
		}
		if uerr := l.ping.Unsubscribe(); uerr != nil && !errors.Is(uerr, nats.ErrConnectionClosed) && err == nil {
			err = uerr
		}
	})
	return err
}
