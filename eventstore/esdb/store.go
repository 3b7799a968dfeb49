package esdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/internal/redact"
)

// Options tunes a Store. The zero value is usable.
type Options struct {
	// Namespace, when not empty, is prepended to every stream name the store
	// writes and reads, and the store's view of the log ($all reads,
	// subscriptions, Head) holds only the streams of the namespace. It lets
	// several deployments, or test runs, share one database. It must not start
	// with "$".
	Namespace string
	// NewID generates ids for events appended without one (default
	// eventstore.NewID).
	NewID func() string
	// IdempotencyWindow is how many of a stream's latest events an append
	// looks through for its event ids when the server's own check cannot be
	// relied on (expected version Any or StreamExists, or after a failed
	// concurrency check). Default 100; a negative value turns the look-up
	// off.
	IdempotencyWindow int
	// IDCache is how many event ids appended through this Store it remembers
	// (with their stream, version and position), so that retries and ids
	// reused in another stream are recognised without asking the server.
	// Default 16384; a negative value turns the cache off.
	IDCache int
	// SubscriptionBatch is the default number of events a subscription
	// delivers at once (default 500).
	SubscriptionBatch int
	// ResubscribeTimeout is how long a subscription whose server
	// subscription dropped keeps trying to resubscribe before Next reports
	// EUNAVAILABLE (default 30s).
	ResubscribeTimeout time.Duration
	// Connections is the number of clients (each with its own connection)
	// the store opens, and so the number of calls it runs at once (default
	// 8). Each client serves one call at a time, see the package
	// documentation; a ReadAll holds one for its whole read, a subscription
	// only while it (re)subscribes.
	Connections int
	// Logger receives the store's warnings and, at debug level, the client's
	// own log (default slog.Default()).
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.NewID == nil {
		o.NewID = eventstore.NewID
	}
	if o.IdempotencyWindow == 0 {
		o.IdempotencyWindow = 100
	}
	if o.IDCache == 0 {
		o.IDCache = 16384
	}
	if o.SubscriptionBatch <= 0 {
		o.SubscriptionBatch = 500
	}
	if o.ResubscribeTimeout <= 0 {
		o.ResubscribeTimeout = 30 * time.Second
	}
	if o.Connections <= 0 {
		o.Connections = 8
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Store is the EventStoreDB/KurrentDB event store. It implements
// eventstore.Store and is safe for concurrent use.
type Store struct {
	opts Options
	cfg  *esdbclient.Configuration
	ids  *idCache
	// chains serializes this process's appends per stream (chain.go).
	chains *streamChains

	pool *pool

	mu       sync.Mutex
	closed   bool
	inflight sync.WaitGroup // Append, ReadStream, ReadAll and Head calls

	// life ends when Close starts: reads and subscriptions stop, appends
	// already sent finish.
	life     context.Context
	stopLife context.CancelFunc
	pumps    sync.WaitGroup // one goroutine per open subscription
	calls    sync.WaitGroup // one goroutine per client call (see run)
}

var _ eventstore.Store = (*Store)(nil)

// Open connects to EventStoreDB or KurrentDB. connString is any connection
// string the official client accepts: esdb://host:2113?tls=false for one
// node, esdb://host1:2113,host2:2113,host3:2113 or esdb+discover://host:2113
// for a cluster, with the client's settings (tls, tlsCAFile, nodePreference,
// maxDiscoverAttempts, discoveryInterval, gossipTimeout, keepAliveInterval,
// keepAliveTimeout, defaultDeadline, …) as query parameters.
//
// Open checks that the server answers by reading the head of the log. It
// returns an EINVALID error for a connection string the client rejects or a
// bad Namespace, an EUNAVAILABLE error when the server cannot be reached
// (after the client's discovery attempts) or refuses the read, and ctx's error
// as soon as ctx ends (the client's discovery, which does not heed ctx, then
// finishes in the background and its client is closed).
//
// Credentials in the connection string (esdb://user:password@host) are sent
// only over TLS: the client silently drops them when tls=false, so Open logs
// a warning in that case.
func Open(ctx context.Context, connString string, opts Options) (*Store, error) {
	opts.setDefaults()
	if strings.HasPrefix(opts.Namespace, "$") {
		return nil, domain.Errorf(domain.EINVALID, "event store namespace %q starts with $, which marks system streams", opts.Namespace)
	}
	cfg, err := esdbclient.ParseConnectionString(connString)
	if err != nil {
		// The parser's message may quote the string, password included.
		cause := errors.New(redact.Text(err.Error()))
		return nil, domain.WrapError(domain.EINVALID, "invalid EventStoreDB connection string", cause)
	}
	cfg.Logger = clientLogger(opts.Logger)
	if cfg.Username != "" && cfg.DisableTLS {
		opts.Logger.Warn("esdb: the connection string has credentials but tls=false; the EventStoreDB client sends credentials only over TLS, so they are dropped and requests are anonymous",
			"user", cfg.Username)
	}
	if err := cfg.Validate(); err != nil {
		return nil, domain.WrapError(domain.EINVALID, "invalid EventStoreDB configuration", err)
	}
	s := &Store{opts: opts, cfg: cfg, ids: newIDCache(opts.IDCache), chains: newStreamChains()}
	s.life, s.stopLife = context.WithCancel(context.Background())
	s.pool = newPool(cfg, opts.Connections, s.life)
	if _, _, err := s.rawHead(ctx); err != nil {
		if ctx.Err() != nil {
			// The discovery may still be running (it does not heed ctx):
			// it finishes in the background and its client is closed then.
			s.mu.Lock()
			s.closed = true
			s.mu.Unlock()
			s.stopLife()
			s.pool.close()
			return nil, ctx.Err()
		}
		err = s.translate("connect to "+redact.Text(connString), err)
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close stops the store: new calls fail with eventstore.ErrClosed, reads and
// subscriptions end (waiting Next calls return EUNAVAILABLE), appends already
// sent to the server finish, and the client's connection is closed. It is
// safe to call more than once.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.stopLife()
	s.pumps.Wait()
	s.inflight.Wait()
	s.calls.Wait()
	s.pool.close()
	return nil
}

// enter registers a call in flight, or fails with ErrClosed.
func (s *Store) enter() (func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, eventstore.ErrClosed
	}
	s.inflight.Add(1)
	return s.inflight.Done, nil
}

func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// readContext returns a context that ends with ctx or when the store closes.
func (s *Store) readContext(ctx context.Context) (context.Context, context.CancelFunc) {
	c, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.life, cancel)
	return c, func() { stop(); cancel() }
}

// do runs fn with a client of the pool, which no other call uses meanwhile.
// The client closes itself for good when a discovery fails (any later call
// then fails with "connection closed"): do then discards it, so the next call
// gets a new client that discovers the cluster again. fn runs once more if it
// failed before reaching the server or reached a follower that named the
// leader.
func (s *Store) do(ctx context.Context, fn func(c *esdbclient.Client) error) error {
	return s.run(ctx, true, fn)
}

// finish is do for the last step of an append the server has stored: it runs
// even when the store has started to close.
func (s *Store) finish(ctx context.Context, fn func(c *esdbclient.Client) error) error {
	return s.run(ctx, false, fn)
}

// run implements do and finish.
//
// The client's discovery does not heed contexts (with an unreachable node it
// takes up to maxDiscoverAttempts × gossipTimeout), so fn runs in a goroutine
// of the store and run returns ctx's error as soon as ctx ends; the goroutine
// returns the client to the pool when fn returns, and Close waits for it.
// Callers use what fn stored only when run returns nil.
func (s *Store) run(ctx context.Context, stopOnClose bool, fn func(c *esdbclient.Client) error) error {
	for attempt := 0; ; attempt++ {
		c, err := s.pool.acquire(ctx, stopOnClose)
		if err != nil {
			return err
		}
		done := make(chan error, 1)
		s.calls.Add(1)
		go func() {
			defer s.calls.Done()
			err := fn(c)
			dead := isCode(err, esdbclient.ErrorCodeConnectionClosed) || isDiscoveryFailure(err)
			if dead {
				s.opts.Logger.Warn("esdb: the client closed itself after a failed discovery; the next call uses a new one", "err", err)
			}
			s.pool.release(c, dead)
			done <- err
		}()
		select {
		case err = <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
		// Not reaching the server, or reaching a follower (the client has
		// reconnected to the leader it named), stored nothing: try once more.
		retry := isCode(err, esdbclient.ErrorCodeConnectionClosed) || isCode(err, esdbclient.ErrorCodeNotLeader)
		if retry && attempt == 0 && ctx.Err() == nil {
			continue
		}
		return err
	}
}

// pool holds the store's clients. Each client is used by one call at a time.
// The client serialises its connection management through one goroutine that
// stops for good when a discovery fails; calls that were waiting on it then
// wait forever (they send to a channel nobody reads). With one call per
// client, the call that ran the failed discovery gets its error, nobody else
// waits on that client, and the pool closes it and makes a new one.
type pool struct {
	cfg    *esdbclient.Configuration
	life   context.Context // ends when the store closes
	tokens chan struct{}   // one per client lent out
	mu     sync.Mutex
	idle   []*esdbclient.Client
}

func newPool(cfg *esdbclient.Configuration, size int, life context.Context) *pool {
	return &pool{cfg: cfg, life: life, tokens: make(chan struct{}, size)}
}

// acquire lends a client, waiting while all are in use. It fails with ctx's
// error, or (when stopOnClose is set) with ErrClosed once the store closes.
// The store closes the pool only after every call has returned its client, so
// a call that waits through the close still gets one.
func (p *pool) acquire(ctx context.Context, stopOnClose bool) (*esdbclient.Client, error) {
	closing := p.life.Done()
	if !stopOnClose {
		closing = nil
	}
	select {
	case p.tokens <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-closing:
		return nil, eventstore.ErrClosed
	}
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		c := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return c, nil
	}
	p.mu.Unlock()
	c, err := esdbclient.NewClient(p.cfg) // connects on first use
	if err != nil {
		<-p.tokens
		return nil, err
	}
	return c, nil
}

// release takes a client back. A dead one, or any once the store is closing,
// is closed (nobody else uses it).
func (p *pool) release(c *esdbclient.Client, dead bool) {
	if dead || p.life.Err() != nil {
		_ = c.Close()
	} else {
		p.mu.Lock()
		p.idle = append(p.idle, c)
		p.mu.Unlock()
	}
	<-p.tokens
}

// close closes the idle clients; the store calls it once no call is running.
func (p *pool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, c := range idle {
		_ = c.Close()
	}
}

// isCode reports whether err is an *esdbclient.Error with the given code. It
// uses errors.As: esdbclient.FromError returns ok=false exactly when there is
// an error, which makes it easy to misuse.
func isCode(err error, code esdbclient.ErrorCode) bool {
	var e *esdbclient.Error
	return errors.As(err, &e) && e.Code() == code
}

func isDiscoveryFailure(err error) bool {
	return err != nil && strings.Contains(err.Error(), "maximum discovery attempt count reached")
}

// translate maps a client error to the port's errors: a closed store is
// ErrClosed; a deleted stream is ECONFLICT; a request the server rejects as
// invalid (an append over its size limit) is EINVALID; everything else —
// lost connections, failed discovery, timeouts, refused credentials — is
// EUNAVAILABLE.
func (s *Store) translate(what string, err error) error {
	if err == nil {
		return nil
	}
	if s.isClosed() {
		return eventstore.ErrClosed
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if isCode(err, esdbclient.ErrorCodeStreamDeleted) {
		return domain.WrapError(domain.ECONFLICT, "the stream is deleted", err)
	}
	if st, ok := status.FromError(err); ok {
		switch st.Code() {
		case codes.InvalidArgument, codes.OutOfRange:
			return domain.WrapError(domain.EINVALID, "the event store rejected the request: "+st.Message(), err)
		case codes.Canceled:
			// A call canceled by its context reports the context's error above;
			// one canceled otherwise was cut off by the connection.
		}
	}
	return eventstore.Unavailable(what, err)
}

// ctxErr returns ctx's error when ctx has ended, so that a call canceled by its
// caller reports context.Canceled or DeadlineExceeded rather than a gRPC
// status.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// actualRe reads the stream's current revision from the client's wrong
// expected version error, the only place the client reports it.
var actualRe = regexp.MustCompile(`but got '([^']*)'`)

// actualFrom returns the current revision a wrong expected version error
// reports (-1 for no stream), and false when the message has none.
func actualFrom(err error) (int64, bool) {
	m := actualRe.FindStringSubmatch(err.Error())
	if m == nil {
		return 0, false
	}
	if m[1] == "no_stream" {
		return -1, true
	}
	n, perr := strconv.ParseInt(m[1], 10, 64)
	if perr != nil {
		return 0, false
	}
	return n, true
}

// clientLogger forwards the client's log to logger at debug level (errors at
// info), where it helps to diagnose connections without flooding the log.
func clientLogger(logger *slog.Logger) esdbclient.LoggingFunc {
	return func(level esdbclient.LogLevel, format string, args ...any) {
		l := slog.LevelDebug
		if level == esdbclient.LogError {
			l = slog.LevelInfo
		}
		if !logger.Enabled(context.Background(), l) {
			return
		}
		logger.Log(context.Background(), l, "esdb client: "+fmt.Sprintf(format, args...))
	}
}
