package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/time/rate"

	"github.com/auraos/realtime/cmd/auraos/app"
	"github.com/auraos/realtime/internal/gcgoal"
	"github.com/auraos/realtime/internal/memreturn"
	"github.com/auraos/realtime/socketadapter"
	"github.com/auraos/realtime/socketadapter/jwtauth"
	"github.com/auraos/realtime/socketadapter/natssignal"
)

// serveOptions are the flags of `auraos serve`.
type serveOptions struct {
	storage         app.Storage
	addr            string
	nodeID          string
	statusInterval  time.Duration
	reapInterval    time.Duration
	signals         app.Signals
	corsOrigins     []string
	maxFrame        int64
	clientQueueMax  int64
	recoveryWindow  time.Duration
	recoveryMax     int
	presenceGrace   time.Duration
	maxRooms        int
	auth            string
	shutdownTimeout time.Duration
	commandTimeout  time.Duration
	limits          rateFlags
	jwt             jwtFlags
	ai              aiFlags
	adminUI         adminUIFlags
	readyMaxLag     uint64
	gcPercent       int
	gcHeadroom      int
	returnMemory    bool
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
	messageRate, typingRate, notificationRate, agentRate, joinRate      float64
	messageBurst, typingBurst, notificationBurst, agentBurst, joinBurst int
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
	f.Float64Var(&r.joinRate, "rate-join", float64(d.Join.Rate), "join_room/join_chat_room/join_system_room events per second per socket")
	f.IntVar(&r.joinBurst, "burst-join", d.Join.Burst, "join burst per socket")
}

func (r rateFlags) limits() (socketadapter.RateLimits, error) {
	for _, v := range []float64{r.messageRate, r.typingRate, r.notificationRate, r.agentRate, r.joinRate} {
		if v <= 0 {
			return socketadapter.RateLimits{}, fmt.Errorf("rate limits must be positive")
		}
	}
	for _, v := range []int{r.messageBurst, r.typingBurst, r.notificationBurst, r.agentBurst, r.joinBurst} {
		if v < 1 {
			return socketadapter.RateLimits{}, fmt.Errorf("rate-limit bursts must be at least 1")
		}
	}
	return socketadapter.RateLimits{
		Message:      socketadapter.RateLimit{Rate: rate.Limit(r.messageRate), Burst: r.messageBurst},
		Typing:       socketadapter.RateLimit{Rate: rate.Limit(r.typingRate), Burst: r.typingBurst},
		Notification: socketadapter.RateLimit{Rate: rate.Limit(r.notificationRate), Burst: r.notificationBurst},
		Agent:        socketadapter.RateLimit{Rate: rate.Limit(r.agentRate), Burst: r.agentBurst},
		Join:         socketadapter.RateLimit{Rate: rate.Limit(r.joinRate), Burst: r.joinBurst},
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
	o.storage.Register(f)
	host, _ := os.Hostname()
	if host == "" {
		host = "node"
	}
	f.StringVar(&o.addr, "addr", ":5000", "address to listen on")
	f.StringVar(&o.nodeID, "node-id", host, "this server's name in events; keep it stable across restarts (sessions a crashed run left open are ended by the next start of the same node)")
	f.DurationVar(&o.statusInterval, "status-interval", 30*time.Second, "period of system_status_update to every client")
	f.DurationVar(&o.reapInterval, "reap-interval", 10*time.Second, "unless --signals is none: how often to look for servers that died and end their sessions (0: never)")
	f.StringVar(&o.signals.Spec, "signals", "", "how typing and liveness cross servers: postgres (the default with a PostgreSQL event store), nats://host:4222[,nats://…], or none (a server alone; the default otherwise)")
	f.StringVar(&o.signals.Prefix, "signals-prefix", app.DefaultSignalsPrefix, "with NATS signals: the installation's name, which its subjects and lease bucket carry; installations sharing a broker need their own")
	f.DurationVar(&o.signals.LeaseTTL, "lease-ttl", natssignal.DefaultLeaseTTL, "with NATS signals: how long a server's lease outlives its last renewal (renewed every third of it); a dead server's sessions end within this plus --reap-interval")
	f.StringSliceVar(&o.corsOrigins, "cors-origins", []string{"*"}, "allowed origins (comma-separated), * for any")
	f.Int64Var(&o.maxFrame, "max-frame", 1<<20, "largest frame in bytes a client may send; a bigger one closes that socket")
	f.DurationVar(&o.recoveryWindow, "recovery-window", socketadapter.DefaultRecoveryWindow, "how long a disconnected client may recover its session (rooms and every event it missed, from the log, on any server sharing the stores); 0 turns recovery off")
	f.IntVar(&o.recoveryMax, "recovery-max-events", socketadapter.DefaultRecoveryMaxEvents, "most events a recovering client may have missed; one further behind connects afresh")
	f.DurationVar(&o.presenceGrace, "presence-grace", socketadapter.DefaultPresenceGrace, "how long a dropped session may take to come back before the others see it leave; 0: at once")
	f.IntVar(&o.maxRooms, "max-rooms", socketadapter.DefaultMaxRooms, "most rooms one socket may be in (join_room, join_chat_room, join_system_room); a join past it is FORBIDDEN")
	f.Int64Var(&o.clientQueueMax, "client-queue-max", socketadapter.DefaultClientQueueMax, "most bytes queued for one socket and not yet written to it; a socket past it is disconnected as a slow consumer (it can reconnect and recover)")
	f.StringVar(&o.auth, "auth", "open", "identity: open (a socket is bound to the first user it names) or jwt (a valid token is required at connect)")
	f.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long a stop may take")
	f.DurationVar(&o.commandTimeout, "command-timeout", 10*time.Second, "how long a client event may take before the client gets UNAVAILABLE")
	f.StringVar(&o.debugAddr, "debug-addr", "", "address of a separate listener for Go's /debug/pprof profiles (off when empty; keep it private)")
	f.IntVar(&o.gcHeadroom, "gc-headroom", 96, "MiB the heap may grow past its live data before a collection: the GC target falls below --gc-percent (to 50 at least) as the live heap grows; 0 keeps --gc-percent fixed")
	f.IntVar(&o.gcPercent, "gc-percent", 400, "Go garbage collector target (GOGC): higher trades memory for CPU; the GOGC variable, when set, wins")
	f.BoolVar(&o.returnMemory, "return-memory", true, "when the server goes quiet after a burst of allocation (clients connecting, a flood), collect once and give the freed heap back to the operating system")
	f.Uint64Var(&o.readyMaxLag, "ready-max-lag", 10000, "/readyz turns 503 when a projection trails the log by more positions than this")
	o.limits.register(f)
	o.jwt.register(f)
	o.ai.register(f)
	o.adminUI.register(f)
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
	if o.gcHeadroom < 0 {
		return fmt.Errorf("--gc-headroom %d: must be 0 (off) or a number of MiB", o.gcHeadroom)
	}
	if _, set := os.LookupEnv("GOGC"); !set && o.gcPercent > 0 {
		// A realtime server allocates per packet; collecting less often is
		// the cheapest throughput there is.
		debug.SetGCPercent(o.gcPercent)
		if o.gcHeadroom > 0 {
			// Idle connections make the live heap large; the target's
			// multiple of it would be memory no throughput needs.
			gcCtx, stopGC := context.WithCancel(context.WithoutCancel(ctx))
			var gcDone sync.WaitGroup
			gcDone.Go(func() {
				gcgoal.Run(gcCtx, gcgoal.Policy{MaxPercent: o.gcPercent, Headroom: uint64(o.gcHeadroom) << 20}, 250*time.Millisecond)
			})
			defer gcDone.Wait()
			defer stopGC()
		}
	}
	if o.returnMemory {
		// With that target a burst (thousands of websockets connecting)
		// leaves a heap several times the live one, which a quiet server
		// would keep: give it back once the burst is over.
		memCtx, stopMem := context.WithCancel(context.WithoutCancel(ctx))
		var memDone sync.WaitGroup
		memDone.Go(func() { memreturn.Run(memCtx, memreturn.Config{}) })
		defer memDone.Wait()
		defer stopMem()
	}
	// The verifier refreshes its key set until the server has stopped.
	authCtx, stopAuth := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAuth()
	cfg, err := o.appConfig(authCtx, log)
	if err != nil {
		return err
	}
	if o.storage.UsesDataDir() {
		// One server per data directory: a second one would share the
		// SQLite files and end the first one's sessions.
		release, err := lockDataDir(o.storage.DataDir)
		if err != nil {
			return err
		}
		defer release()
	}
	srv := app.New(cfg)
	if err := srv.Open(ctx); err != nil {
		return err
	}
	runErr := srv.Run(ctx)
	if err := srv.Close(); err != nil && runErr == nil {
		log.Warn("the server did not stop cleanly", "err", err)
	}
	return runErr
}

// orOff turns a flag's 0 ("none") into the adapter's negative, which its
// zero value would read as "the default".
func orOff(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// appConfig checks the flags and turns them into the server's
// configuration; the token verifier it builds lives as long as ctx.
func (o serveOptions) appConfig(ctx context.Context, log *slog.Logger) (app.Config, error) {
	auth, err := o.authenticator(ctx, log)
	if err != nil {
		return app.Config{}, err
	}
	limits, err := o.limits.limits()
	if err != nil {
		return app.Config{}, err
	}
	if o.ai.url != "" {
		if err := o.ai.check(); err != nil {
			return app.Config{}, err
		}
	}
	switch {
	case o.maxFrame < 1024:
		return app.Config{}, fmt.Errorf("--max-frame %d: must be at least 1024 bytes", o.maxFrame)
	case o.recoveryWindow < 0:
		return app.Config{}, fmt.Errorf("--recovery-window %s: must not be negative", o.recoveryWindow)
	case o.presenceGrace < 0:
		return app.Config{}, fmt.Errorf("--presence-grace %s: must not be negative", o.presenceGrace)
	case o.recoveryMax < 1:
		return app.Config{}, fmt.Errorf("--recovery-max-events %d: must be at least 1", o.recoveryMax)
	case o.maxRooms < 1:
		return app.Config{}, fmt.Errorf("--max-rooms %d: must be at least 1", o.maxRooms)
	case o.clientQueueMax < 64<<10:
		return app.Config{}, fmt.Errorf("--client-queue-max %d: must be at least 65536 bytes", o.clientQueueMax)
	case o.reapInterval < 0:
		return app.Config{}, fmt.Errorf("--reap-interval %s: must not be negative", o.reapInterval)
	case o.statusInterval < time.Second:
		return app.Config{}, fmt.Errorf("--status-interval %s: must be at least 1s", o.statusInterval)
	}
	if _, err := o.signals.Kind(o.storage.EventStore); err != nil {
		return app.Config{}, err
	}
	var tokens socketadapter.Authenticator
	if _, open := auth.(socketadapter.OpenAuth); !open {
		tokens = auth
	}
	admin, err := o.adminUI.config(tokens)
	if err != nil {
		return app.Config{}, err
	}
	return app.Config{
		Storage: o.storage,
		Addr:    o.addr,
		NodeID:  o.nodeID,
		Socket: socketadapter.Config{
			StatusInterval: o.statusInterval, CORSOrigins: o.corsOrigins, MaxFrame: o.maxFrame, ClientQueueMax: o.clientQueueMax,
			CommandTimeout: o.commandTimeout, Limits: limits, Auth: auth,
			RecoveryWindow: orOff(o.recoveryWindow), RecoveryMaxEvents: o.recoveryMax,
			PresenceGrace: orOff(o.presenceGrace), MaxRooms: o.maxRooms, Admin: admin,
		},
		Signals:         o.signals,
		ReapInterval:    o.reapInterval,
		ShutdownTimeout: o.shutdownTimeout,
		ReadyMaxLag:     o.readyMaxLag,
		DebugAddr:       o.debugAddr,
		AI:              o.ai.config(),
		Logger:          log,
	}, nil
}
