package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/time/rate"

	"github.com/auraos/realtime/commands"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/sqlstore"
	"github.com/auraos/realtime/projections"
	"github.com/auraos/realtime/schema"
	"github.com/auraos/realtime/socketadapter"
	"github.com/auraos/realtime/socketadapter/jwtauth"
	"github.com/auraos/realtime/socketadapter/pgsignal"
)

// serveOptions are the flags of `auraos serve`.
type serveOptions struct {
	storage         storageConfig
	addr            string
	nodeID          string
	statusInterval  time.Duration
	reapInterval    time.Duration
	corsOrigins     []string
	maxFrame        int64
	auth            string
	shutdownTimeout time.Duration
	commandTimeout  time.Duration
	limits          rateFlags
	jwt             jwtFlags
	ai              aiFlags
	readyMaxLag     uint64
	gcPercent       int
	debugAddr       string
	logFormat       string
	logLevel        string
}

// jwtFlags configure token verification (for --auth jwt, and for verified
// identities and admins in open mode).
type jwtFlags struct {
	secret, jwksURL, issuer, audience string
}

func (j *jwtFlags) register(f *pflag.FlagSet) {
	f.StringVar(&j.secret, "jwt-secret", "", "HS256 secret (at least 32 bytes) that verifies tokens; prefer AURAOS_JWT_SECRET to the command line")
	f.StringVar(&j.jwksURL, "jwks-url", "", "URL of a JWKS whose keys verify RS256/ES256 tokens (e.g. Google's for Firebase ID tokens)")
	f.StringVar(&j.issuer, "jwt-issuer", "", "required iss claim (e.g. https://securetoken.google.com/<project>)")
	f.StringVar(&j.audience, "jwt-audience", "", "required aud claim (e.g. the Firebase project id)")
}

// authenticator builds the identity check --auth and the JWT flags select.
// The verifier's JWKS refresh stops with ctx.
func (o serveOptions) authenticator(ctx context.Context, log *slog.Logger) (socketadapter.Authenticator, error) {
	configured := o.jwt.secret != "" || o.jwt.jwksURL != ""
	switch o.auth {
	case "open":
		if !configured {
			return socketadapter.OpenAuth{}, nil
		}
	case "jwt":
		if !configured {
			return nil, fmt.Errorf("--auth jwt needs --jwt-secret (AURAOS_JWT_SECRET) or --jwks-url")
		}
	default:
		return nil, fmt.Errorf("--auth %q: want open or jwt", o.auth)
	}
	v, err := jwtauth.New(ctx, jwtauth.Config{
		Secret: []byte(o.jwt.secret), JWKSURL: o.jwt.jwksURL, Issuer: o.jwt.issuer, Audience: o.jwt.audience, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	return jwtauth.Authenticator{Verifier: v, Required: o.auth == "jwt"}, nil
}

// rateFlags are the per-socket rate-limit flags, one rate and burst per event
// family.
type rateFlags struct {
	messageRate, typingRate, notificationRate, agentRate     float64
	messageBurst, typingBurst, notificationBurst, agentBurst int
}

func (r *rateFlags) register(f *pflag.FlagSet) {
	d := socketadapter.DefaultRateLimits
	f.Float64Var(&r.messageRate, "rate-message", float64(d.Message.Rate), "send_message events per second per socket")
	f.IntVar(&r.messageBurst, "burst-message", d.Message.Burst, "send_message burst per socket")
	f.Float64Var(&r.typingRate, "rate-typing", float64(d.Typing.Rate), "typing_start/typing_stop events per second per socket")
	f.IntVar(&r.typingBurst, "burst-typing", d.Typing.Burst, "typing burst per socket")
	f.Float64Var(&r.notificationRate, "rate-notification", float64(d.Notification.Rate), "send_notification events per second per socket")
	f.IntVar(&r.notificationBurst, "burst-notification", d.Notification.Burst, "send_notification burst per socket")
	f.Float64Var(&r.agentRate, "rate-agent", float64(d.Agent.Rate), "data_agent_update events per second per socket")
	f.IntVar(&r.agentBurst, "burst-agent", d.Agent.Burst, "data_agent_update burst per socket")
}

func (r rateFlags) limits() (socketadapter.RateLimits, error) {
	for _, v := range []float64{r.messageRate, r.typingRate, r.notificationRate, r.agentRate} {
		if v <= 0 {
			return socketadapter.RateLimits{}, fmt.Errorf("rate limits must be positive")
		}
	}
	for _, v := range []int{r.messageBurst, r.typingBurst, r.notificationBurst, r.agentBurst} {
		if v < 1 {
			return socketadapter.RateLimits{}, fmt.Errorf("rate-limit bursts must be at least 1")
		}
	}
	return socketadapter.RateLimits{
		Message:      socketadapter.RateLimit{Rate: rate.Limit(r.messageRate), Burst: r.messageBurst},
		Typing:       socketadapter.RateLimit{Rate: rate.Limit(r.typingRate), Burst: r.typingBurst},
		Notification: socketadapter.RateLimit{Rate: rate.Limit(r.notificationRate), Burst: r.notificationBurst},
		Agent:        socketadapter.RateLimit{Rate: rate.Limit(r.agentRate), Burst: r.agentBurst},
	}, nil
}

func newServeCommand() *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the AuraOS Socket.IO protocol",
		Long: `Serve the AuraOS Socket.IO protocol on --addr, storing every event in the event store
and answering from the read models. SIGINT or SIGTERM stops it: it stops accepting
connections, finishes the appends in flight, ends the sessions of its sockets in the log
and exits 0.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.logFormat, _ = cmd.Flags().GetString("log-format")
			o.logLevel, _ = cmd.Flags().GetString("log-level")
			return runServe(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	o.storage.register(f)
	host, _ := os.Hostname()
	if host == "" {
		host = "node"
	}
	f.StringVar(&o.addr, "addr", ":5000", "address to listen on")
	f.StringVar(&o.nodeID, "node-id", host, "this server's name in events; keep it stable across restarts (sessions a crashed run left open are ended by the next start of the same node)")
	f.DurationVar(&o.statusInterval, "status-interval", 30*time.Second, "period of system_status_update to every client")
	f.DurationVar(&o.reapInterval, "reap-interval", 10*time.Second, "with a PostgreSQL event store: how often to look for servers that died and end their sessions (0: never)")
	f.StringSliceVar(&o.corsOrigins, "cors-origins", []string{"*"}, "allowed origins (comma-separated), * for any")
	f.Int64Var(&o.maxFrame, "max-frame", 1<<20, "largest frame in bytes a client may send; a bigger one closes that socket")
	f.StringVar(&o.auth, "auth", "open", "identity: open (a socket is bound to the first user it names) or jwt (a valid token is required at connect)")
	f.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long a stop may take")
	f.DurationVar(&o.commandTimeout, "command-timeout", 10*time.Second, "how long a client event may take before the client gets UNAVAILABLE")
	f.StringVar(&o.debugAddr, "debug-addr", "", "address of a separate listener for Go's /debug/pprof profiles (off when empty; keep it private)")
	f.IntVar(&o.gcPercent, "gc-percent", 400, "Go garbage collector target (GOGC): higher trades memory for CPU; the GOGC variable, when set, wins")
	f.Uint64Var(&o.readyMaxLag, "ready-max-lag", 10000, "/readyz turns 503 when a projection trails the log by more positions than this")
	o.limits.register(f)
	o.jwt.register(f)
	o.ai.register(f)
	return cmd
}

// newLogger returns the process's logger: text or JSON lines on stderr.
func newLogger(format, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

func runServe(ctx context.Context, o serveOptions) error {
	log, err := newLogger(o.logFormat, o.logLevel)
	if err != nil {
		return err
	}
	if _, set := os.LookupEnv("GOGC"); !set && o.gcPercent > 0 {
		// A realtime server allocates per packet; collecting less often is
		// the cheapest throughput there is.
		debug.SetGCPercent(o.gcPercent)
	}
	authCtx, stopAuth := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAuth()
	auth, err := o.authenticator(authCtx, log)
	if err != nil {
		return err
	}
	limits, err := o.limits.limits()
	if err != nil {
		return err
	}
	if o.ai.url != "" {
		if err := o.ai.check(); err != nil {
			return err
		}
	}
	if o.maxFrame < 1024 {
		return fmt.Errorf("--max-frame %d: must be at least 1024 bytes", o.maxFrame)
	}
	if o.reapInterval < 0 {
		return fmt.Errorf("--reap-interval %s: must not be negative", o.reapInterval)
	}
	if o.statusInterval < time.Second {
		return fmt.Errorf("--status-interval %s: must be at least 1s", o.statusInterval)
	}

	m := newMetrics()
	rawStore, rdb, err := o.storage.open(ctx, sqlstore.Options{OnCommit: m.onCommit, Logger: log})
	if err != nil {
		return err
	}
	defer rawStore.Close()
	defer rdb.Close()
	store := instrumentedStore{Store: rawStore, m: m}

	// Projections whose version changed are rebuilt before serving.
	for _, p := range projections.All() {
		if err := projections.Prepare(ctx, rdb.writer, p); errors.Is(err, projections.ErrNeedsRebuild) {
			log.Info("rebuilding projection", "projection", p.Name(), "reason", err)
			res, err := projections.Rebuild(ctx, rdb.writer, store, p, projections.RebuildOptions{})
			if err != nil {
				return err
			}
			log.Info("projection rebuilt", "projection", p.Name(), "events", res.Events, "events_per_second", int(res.EventsPerSecond()))
		} else if err != nil {
			return err
		}
	}

	runCtx, stopRunners := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRunners()
	var runnersDone sync.WaitGroup
	runners := map[string]*projections.Runner{}
	for _, p := range projections.All() {
		r := projections.NewRunner(rdb.writer, store, p, projections.RunnerOptions{Logger: log, OnBatch: m.onBatch(p.Name())})
		runners[p.Name()] = r
		runnersDone.Add(1)
		go func() {
			defer runnersDone.Done()
			if err := r.Run(runCtx); err != nil {
				log.Error("projection stopped", "projection", p.Name(), "err", err)
			}
		}()
	}
	defer runnersDone.Wait()
	defer stopRunners()

	online := runners[projections.OnlineUsers{}.Name()]
	if err := online.WaitCaughtUp(ctx); err != nil {
		return err
	}
	// With a shared PostgreSQL store this server holds its node's lock while
	// it runs, so the others can tell when it dies; it takes the lock before
	// ending its previous run's sessions and waits while another server is
	// ending them.
	pgStore := schema.IsPostgresURL(o.storage.EventStore)
	var liveness *pgsignal.Liveness
	if pgStore {
		if liveness, err = pgsignal.OpenLiveness(ctx, o.storage.EventStore, o.nodeID, log); err != nil {
			return err
		}
		defer liveness.Close()
	}
	deps := commands.Deps{Store: store, Now: time.Now, NewID: eventstore.NewID}
	started, err := commands.StartNodeHandler{Deps: deps, Sessions: projections.OpenSessionsQuery{DB: rdb.reader}}.Handle(ctx, commands.StartNode{
		Cause:  commands.Cause{Command: "server_start", CorrelationID: eventstore.NewID()},
		NodeID: o.nodeID,
	})
	if err != nil {
		return fmt.Errorf("end the sessions of the previous run: %w", err)
	}
	if started.EndedSessions > 0 || started.EndedMemberships > 0 {
		log.Info("ended sessions left open by the previous run", "node", o.nodeID, "sessions", started.EndedSessions, "chat_memberships", started.EndedMemberships)
	}

	// Servers sharing a PostgreSQL event store show each other's typing
	// indicators through it; on SQLite a server is alone.
	var signals socketadapter.SignalBus
	if pgStore {
		bus, err := pgsignal.Open(ctx, o.storage.EventStore, log.With("component", "signals"))
		if err != nil {
			return err
		}
		defer bus.Close()
		signals = bus
	}

	adapter := socketadapter.New(socketadapter.Config{
		NodeID: o.nodeID, StatusInterval: o.statusInterval, CORSOrigins: o.corsOrigins, MaxFrame: o.maxFrame,
		CommandTimeout: o.commandTimeout, Limits: limits, Logger: log, Auth: auth, Observer: m, Signals: signals,
	}, socketadapter.HandlersFor(deps), socketadapter.Queries{
		OnlineUsers:  projections.OnlineUsersQuery{DB: rdb.reader},
		UserSessions: projections.UserSessionsQuery{DB: rdb.reader},
		ChatHistory:  projections.ChatHistoryQuery{DB: rdb.reader},
		AppTotals:    projections.AppTotalsQuery{DB: rdb.reader},
	}, socketadapter.ReadModels{
		OnlineUsers: online,
		ChatHistory: runners[projections.ChatHistory{}.Name()],
		AppStatus:   runners[projections.AppStatus{}.Name()],
	}, store)
	if err := adapter.Run(ctx); err != nil {
		return err
	}
	if pgStore && o.reapInterval > 0 {
		sessions := projections.OpenSessionsQuery{DB: rdb.reader}
		stopReaper := lostNodes{
			self: o.nodeID, interval: o.reapInterval, liveness: liveness, nodes: sessions.NodesWithOpenSessions,
			end: commands.EndLostNodeHandler{Deps: deps, Sessions: sessions}, log: log.With("component", "reaper"),
		}.start()
		defer stopReaper()
	}
	stopAssistant, err := startAssistant(ctx, o.ai, store, rdb.writer, adapter, o.nodeID, log, m.aiCall)
	if err != nil {
		return err
	}
	defer stopAssistant()

	var all []*projections.Runner
	for _, p := range projections.All() {
		all = append(all, runners[p.Name()])
	}
	m.registry.MustRegister(newLiveCollector(adapter.SocketsByTransport, projections.OnlineCountQuery{DB: rdb.reader}.Handle, store.Head, all))
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", adapter.Handler())
	mux.HandleFunc("/healthz", healthz)
	mux.Handle("/readyz", readiness{store: store, readDB: rdb.reader, runners: all, maxLag: o.readyMaxLag, timeout: 2 * time.Second})
	mux.Handle("/metrics", promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{}))
	httpServer := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.addr, err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- httpServer.Serve(ln) }()
	if o.debugAddr != "" {
		stopDebug, err := serveDebug(o.debugAddr, log)
		if err != nil {
			return err
		}
		defer stopDebug()
	}
	log.Info("serving", "addr", ln.Addr().String(), "node", o.nodeID, "auth", o.auth, "event_store", storeKind(o.storage.EventStore), "data_dir", o.storage.DataDir)

	select {
	case <-ctx.Done():
		log.Info("stopping", "reason", "signal")
	case err := <-serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve: %w", err)
		}
	}
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.shutdownTimeout)
	defer cancel()
	_ = ln.Close() // stop accepting
	if err := adapter.Shutdown(stopCtx); err != nil {
		log.Warn("sockets did not all close in time", "err", err)
	}
	if err := httpServer.Shutdown(stopCtx); err != nil {
		log.Warn("HTTP server did not stop in time", "err", err)
	}
	stopRunners()
	runnersDone.Wait()
	log.Info("stopped")
	return nil
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
