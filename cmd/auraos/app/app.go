// Package app is the composition root of the AuraOS server: it opens the
// stores, wires the command handlers, projections, reactors and the
// Socket.IO adapter together, serves HTTP, and shuts all of it down in one
// written order. `auraos serve` and the in-process tests both run a Server
// from here, so the wiring exists once. It is the only place, with its
// parent cmd/auraos, that names concrete types.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/auraos/realtime/cmd/auraos/console"
	"github.com/auraos/realtime/commands"
	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/sqlstore"
	"github.com/auraos/realtime/projections"
	"github.com/auraos/realtime/socketadapter"
	"github.com/auraos/realtime/socketadapter/natssignal"
)

// Config is what a Server runs with. Zero values take the defaults noted.
type Config struct {
	Storage Storage
	// Addr is the listen address (":0" picks a free port; see Addr).
	Addr string
	// NodeID names this server in events; keep it stable across restarts.
	NodeID string
	// Socket holds the adapter's settings; the Server fills in NodeID,
	// Logger, Observer and Signals.
	Socket socketadapter.Config
	// Signals says how typing indicators and liveness cross servers.
	Signals Signals
	// ReapInterval is how often, with signals other than none, the server
	// looks for servers that died and ends their sessions (0: never).
	ReapInterval time.Duration
	// ShutdownTimeout bounds Close (default 10s).
	ShutdownTimeout time.Duration
	// ReadyMaxLag is how far a projection may trail the log before /readyz
	// turns 503 (default 10000 positions).
	ReadyMaxLag uint64
	// DebugAddr, when set, serves Go's /debug/pprof profiles there.
	DebugAddr string
	// AI configures the assistant (off without a URL).
	AI     AIConfig
	Logger *slog.Logger
	// Now and NewID are the clock and the id generator of the commands
	// (defaults time.Now and eventstore.NewID).
	Now   func() time.Time
	NewID func() string
}

func (c *Config) setDefaults() {
	if c.NodeID == "" {
		c.NodeID = "node"
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.ReadyMaxLag == 0 {
		c.ReadyMaxLag = 10000
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.NewID == nil {
		c.NewID = eventstore.NewID
	}
}

// Server is the whole server process: open it with Open, serve with Run,
// stop it with Close.
type Server struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics

	ln       *onceCloseListener
	store    eventstore.Store // instrumented
	rawStore eventstore.Store
	rdb      ReadDB
	opened   bool // rdb is open

	runners     []*projections.Runner
	stopRunners context.CancelFunc
	runnersDone sync.WaitGroup

	signalsKind   string
	broker        *natssignal.Conn // with NATS signals
	liveness      liveness
	signals       signalBus
	adapter       *socketadapter.Server
	console       *console.Console // with the Admin UI on
	stopReaper    func()
	stopAssistant func()

	http      *http.Server
	serveErr  chan error
	stopDebug func()
	closeOnce sync.Once
	closeErr  error
}

// New returns a Server that runs with cfg once opened.
func New(cfg Config) *Server {
	cfg.setDefaults()
	return &Server{cfg: cfg, log: cfg.Logger, metrics: newMetrics(), serveErr: make(chan error, 1)}
}

// Open starts the server: it binds the listen address first (so a second
// server on the same address fails before it touches anything), opens and
// migrates the stores, rebuilds projections whose version changed, lets the
// read models catch up, ends the sessions this node's previous run left
// open, and starts the live feed, the reactors and the HTTP server. On
// failure it undoes what it did and returns the error.
func (s *Server) Open(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			_ = s.Close()
		}
	}()
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Addr, err)
	}
	s.ln = &onceCloseListener{Listener: ln}

	if err := s.openStores(ctx); err != nil {
		return err
	}
	if err := s.startProjections(ctx); err != nil {
		return err
	}
	// Unless it is alone, this server holds its node's lock or lease while
	// it runs, so the others can tell when it dies; it takes it before
	// ending its previous run's sessions.
	if err := s.openLiveness(ctx); err != nil {
		return err
	}
	deps := commands.Deps{Store: s.store, Now: s.cfg.Now, NewID: s.cfg.NewID}
	if err := s.endPreviousRun(ctx, deps); err != nil {
		return err
	}
	if err := s.openSignals(ctx); err != nil {
		return err
	}
	if err := s.startAdapter(ctx, deps); err != nil {
		return err
	}
	if s.liveness != nil && s.cfg.ReapInterval > 0 {
		sessions := projections.OpenSessionsQuery{DB: s.rdb.Reader}
		s.stopReaper = lostNodes{
			self: s.cfg.NodeID, interval: s.cfg.ReapInterval, liveness: s.liveness, nodes: sessions.NodesWithOpenSessions,
			end: commands.EndLostNodeHandler{Deps: deps}, recovery: projections.RecoverySessions{DB: s.rdb.Writer}, open: sessions,
			now: s.cfg.Now, log: s.log.With("component", "reaper"),
		}.start()
	}
	if s.stopAssistant, err = startAssistant(ctx, s.cfg.AI, deps, s.store, s.rdb.Writer, s.adapter, s.cfg.NodeID, s.log, s.metrics.aiCall); err != nil {
		return err
	}
	if err := s.serveHTTP(); err != nil {
		return err
	}
	if s.cfg.DebugAddr != "" {
		if s.stopDebug, err = serveDebug(s.cfg.DebugAddr, s.log); err != nil {
			return err
		}
	}
	return nil
}

// openStores opens the event store (instrumented for the metrics) and the
// read database.
func (s *Server) openStores(ctx context.Context) error {
	raw, rdb, err := s.cfg.Storage.Open(ctx, sqlstore.Options{OnCommit: s.metrics.onCommit, Logger: s.log})
	if err != nil {
		return err
	}
	s.rawStore, s.rdb, s.opened = raw, rdb, true
	s.store = instrumentedStore{Store: raw, m: s.metrics}
	return nil
}

// startProjections rebuilds the projections whose version changed, starts a
// runner for each and waits until the online-users read model has caught
// up (ending the previous run's sessions reads it).
func (s *Server) startProjections(ctx context.Context) error {
	var stale []projections.Projection
	for _, p := range projections.All() {
		err := projections.Prepare(ctx, s.rdb.Writer, p)
		if errors.Is(err, projections.ErrNeedsRebuild) {
			s.log.Info("rebuilding projection", "projection", p.Name(), "reason", err)
			stale = append(stale, p)
		} else if err != nil {
			return err
		}
	}
	if len(stale) > 0 {
		// One read of the log feeds every projection being rebuilt.
		sum, err := projections.RebuildAll(ctx, s.rdb.Writer, s.store, stale, projections.RebuildOptions{})
		if err != nil {
			return err
		}
		for _, res := range sum.Projections {
			s.log.Info("projection rebuilt", "projection", res.Projection, "events", res.Events, "took", res.Took)
		}
		s.log.Info("projections rebuilt", "events_read", sum.Read, "events_per_second", int(sum.EventsPerSecond()))
	}
	runCtx, stop := context.WithCancel(context.Background())
	s.stopRunners = stop
	for _, p := range projections.All() {
		r := projections.NewRunner(s.rdb.Writer, s.store, p, projections.RunnerOptions{Logger: s.log, OnBatch: s.metrics.onBatch(p.Name())})
		s.runners = append(s.runners, r)
		s.runnersDone.Add(1)
		go func() {
			defer s.runnersDone.Done()
			if err := r.Run(runCtx); err != nil {
				s.log.Error("projection stopped", "projection", p.Name(), "err", err)
			}
		}()
	}
	return s.runner(projections.OnlineUsers{}).WaitCaughtUp(ctx)
}

// runner returns the runner of p.
func (s *Server) runner(p projections.Projection) *projections.Runner {
	for _, r := range s.runners {
		if r.Projection().Name() == p.Name() {
			return r
		}
	}
	panic("no runner for projection " + p.Name())
}

// endPreviousRun records that the sessions this node's previous run left
// open (a crash, a kill) have ended, so nobody from before shows online.
func (s *Server) endPreviousRun(ctx context.Context, deps commands.Deps) error {
	// The sessions the previous run served may still be recovered: they
	// start their presence grace now, and the grace sweep ends those that
	// do not come back. The others are ended at once.
	open, err := recoverableFirst(ctx, projections.RecoverySessions{DB: s.rdb.Writer}, projections.OpenSessionsQuery{DB: s.rdb.Reader},
		s.cfg.NodeID, s.cfg.Now(), domain.ReasonServerRestart)
	if err != nil {
		return fmt.Errorf("suspend the sessions of the previous run: %w", err)
	}
	started, err := commands.StartNodeHandler{Deps: deps, Sessions: open}.Handle(ctx, commands.StartNode{
		Cause:  commands.Cause{Command: "server_start", CorrelationID: s.cfg.NewID()},
		NodeID: s.cfg.NodeID,
	})
	if err != nil {
		return fmt.Errorf("end the sessions of the previous run: %w", err)
	}
	if started.EndedSessions > 0 || started.EndedMemberships > 0 {
		s.log.Info("ended sessions left open by the previous run", "node", s.cfg.NodeID, "sessions", started.EndedSessions, "chat_memberships", started.EndedMemberships)
	}
	return nil
}

// startAdapter creates the Socket.IO adapter over the command handlers and
// the read models and starts its live feed.
func (s *Server) startAdapter(ctx context.Context, deps commands.Deps) error {
	cfg := s.cfg.Socket
	cfg.NodeID, cfg.Logger, cfg.Observer = s.cfg.NodeID, s.log, s.metrics
	cfg.Sessions = projections.NewSessionSaver(s.rdb.Writer)
	if s.signals != nil {
		cfg.Signals = s.signals
	}
	r := s.rdb.Reader
	s.adapter = socketadapter.New(cfg, HandlersFor(deps), socketadapter.Queries{
		OnlineUsers:  projections.OnlineUsersQuery{DB: r},
		UserSessions: projections.UserSessionsQuery{DB: r},
		ChatHistory:  projections.ChatHistoryQuery{DB: r},
		AppTotals:    projections.AppTotalsQuery{DB: r},
	}, socketadapter.ReadModels{
		OnlineUsers: s.runner(projections.OnlineUsers{}),
		ChatHistory: s.runner(projections.ChatHistory{}),
		AppStatus:   s.runner(projections.AppStatus{}),
	}, s.store)
	return s.adapter.Run(ctx)
}

// serveHTTP serves the Socket.IO endpoint, health, readiness, metrics and,
// with the Admin UI on, the console on the listener.
func (s *Server) serveHTTP() error {
	s.metrics.registry.MustRegister(newLiveCollector(s.adapter.SocketsByTransport, projections.OnlineCountQuery{DB: s.rdb.Reader}.Handle, s.store.Head, s.runners))
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", s.adapter.Handler())
	mux.HandleFunc("/healthz", healthz)
	mux.Handle("/readyz", readiness{store: s.store, readDB: s.rdb.Reader, runners: s.runners, maxLag: s.cfg.ReadyMaxLag, timeout: 2 * time.Second, appends: &s.metrics.appends})
	mux.Handle("/metrics", promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}))
	if err := s.mountConsole(mux); err != nil {
		return err
	}
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { s.serveErr <- s.http.Serve(s.ln) }()
	s.log.Info("serving", "addr", s.Addr(), "node", s.cfg.NodeID, "event_store", storeKind(s.cfg.Storage.EventStore), "data_dir", s.cfg.Storage.DataDir,
		"admin_ui", s.console != nil)
	return nil
}

// Run serves until ctx ends (it returns nil) or the HTTP server fails.
// Close stops the server either way.
func (s *Server) Run(ctx context.Context) error {
	select {
	case <-ctx.Done():
		s.log.Info("stopping", "reason", "signal")
		return nil
	case err := <-s.serveErr:
		if errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
			return nil
		}
		return fmt.Errorf("serve: %w", err)
	}
}

// Close stops the server in this order, each step once the one before is
// done, within ShutdownTimeout:
//  1. stop accepting connections;
//  2. the adapter refuses new client events, finishes the appends in flight
//     and disconnects every socket, storing the end of each session;
//  3. the HTTP server stops (its handlers are done), then the console's
//     rebuilds;
//  4. the reactors stop (the AI assistant, the reaper of dead servers);
//  5. the followers stop (the projection runners; the adapter's live feed
//     stopped in step 2);
//  6. what connects this server to the others closes (signals, the node
//     lock or lease, the broker connection), then the stores.
//
// It is safe to call more than once and after a failed Open.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *Server) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	var errs []error
	if s.ln != nil {
		_ = s.ln.Close()
	}
	if s.adapter != nil {
		if err := s.adapter.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("sockets did not all close in time: %w", err))
		}
	}
	if s.http != nil {
		// The listener is closed already (step 1): Shutdown closing it
		// again reports net.ErrClosed, unless Serve has noticed first.
		if err := s.http.Shutdown(ctx); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("the HTTP server did not stop in time: %w", err))
		}
	}
	if s.console != nil {
		s.console.Close() // its rebuilds, before the stores close
	}
	if s.stopAssistant != nil {
		s.stopAssistant()
	}
	if s.stopReaper != nil {
		s.stopReaper()
	}
	if s.stopRunners != nil {
		s.stopRunners()
		s.runnersDone.Wait()
	}
	if s.signals != nil {
		errs = append(errs, s.signals.Close())
	}
	if s.liveness != nil {
		errs = append(errs, s.liveness.Close())
	}
	if s.broker != nil {
		errs = append(errs, s.broker.Close())
	}
	if s.rawStore != nil {
		errs = append(errs, s.rawStore.Close())
	}
	if s.opened {
		errs = append(errs, s.rdb.Close())
	}
	if s.stopDebug != nil {
		s.stopDebug()
	}
	err := errors.Join(errs...)
	if err != nil {
		s.log.Warn("stopped with errors", "err", err)
	} else {
		s.log.Info("stopped")
	}
	return err
}

// Addr returns the address the server listens on (useful with ":0").
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Store returns the event store the server appends to.
func (s *Server) Store() eventstore.Store { return s.store }

// onceCloseListener lets Close stop accepting before the HTTP server's
// Shutdown closes the listener again: the second close is not an error.
type onceCloseListener struct {
	net.Listener
	once sync.Once
	err  error
}

func (l *onceCloseListener) Close() error {
	l.once.Do(func() { l.err = l.Listener.Close() })
	return l.err
}

// storeKind names the event store for logs without its credentials.
func storeKind(s string) string {
	if s == "" || s == "sqlite" {
		return "sqlite"
	}
	scheme, _, _ := strings.Cut(s, ":")
	return scheme
}

// serveDebug serves Go's profiles on their own listener until the returned
// function is called.
func serveDebug(addr string, log *slog.Logger) (func(), error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--debug-addr %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	log.Info("serving profiles", "addr", ln.Addr().String())
	return func() { _ = srv.Close(); <-done }, nil
}
