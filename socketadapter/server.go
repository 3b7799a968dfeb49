// Package socketadapter serves the AuraOS Socket.IO protocol (SOCKET_EVENTS.md
// and PROTOCOL.md) on the event-sourced core: every client event is decoded,
// checked and turned into a command; durable events are pushed to sockets
// from the live event feed after they are stored; online_users and
// chat_history come from the read models. Typing indicators are ephemeral.
//
// It declares the small interfaces it needs of the commands, the read models
// and the event feed; cmd/auraos wires the concrete types.
package socketadapter

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/auraos/realtime/commands"
	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/follow"
	"github.com/auraos/realtime/projections"
)

// Handlers are the command handlers the adapter calls, one per command.
type Handlers struct {
	JoinUserRoom interface {
		Handle(context.Context, commands.JoinUserRoom) (commands.JoinedPresence, error)
	}
	JoinChatRoom interface {
		Handle(context.Context, commands.JoinChatRoom) (commands.JoinedChat, error)
	}
	LeaveChatRoom interface {
		Handle(context.Context, commands.LeaveChatRoom) (commands.Stored, error)
	}
	SendMessage interface {
		Submit(context.Context, commands.SendMessage) (commands.SubmittedMessage, error)
	}
	SendNotification interface {
		Handle(context.Context, commands.SendNotification) (commands.Stored, error)
	}
	BroadcastSystemAlert interface {
		Handle(context.Context, commands.BroadcastSystemAlert) (commands.Stored, error)
	}
	UpdateAppStatus interface {
		Handle(context.Context, commands.UpdateAppStatus) (commands.AppStatusUpdated, error)
	}
	UpdateDataAgent interface {
		Handle(context.Context, commands.UpdateDataAgent) (commands.DataAgentUpdated, error)
	}
	EndSession interface {
		Handle(context.Context, commands.EndSession) (commands.Stored, error)
	}
}

// Queries are the read-model queries the adapter answers clients from.
type Queries struct {
	OnlineUsers interface {
		Handle(context.Context) ([]projections.OnlineUser, error)
	}
	UserSessions interface {
		Handle(ctx context.Context, uid string) (int, error)
	}
	ChatHistory interface {
		Handle(ctx context.Context, room string, through eventstore.Position, limit int) ([]projections.ChatMessage, error)
	}
	AppTotals interface {
		Handle(context.Context) (projections.AppTotals, error)
	}
}

// Waiter lets the adapter read its own writes: WaitFor returns once a read
// model has processed the log through p.
type Waiter interface {
	WaitFor(ctx context.Context, p eventstore.Position) error
}

// ReadModels are the projections the adapter waits for before querying.
type ReadModels struct {
	OnlineUsers Waiter
	ChatHistory Waiter
	AppStatus   Waiter
}

// Feed is the log as the live feed follows it: the adapter follows it from
// its head at start and pushes what is stored afterwards, and reads what a
// recovering client missed.
type Feed interface {
	follow.Log
	Head(ctx context.Context) (eventstore.Position, error)
	ReadAll(ctx context.Context, opts eventstore.ReadAllOptions) ([]eventstore.RecordedEvent, error)
}

// Identity is who a verified handshake says the client is. A zero Identity
// is an anonymous connection (open mode without a token).
type Identity struct {
	UserID  string
	Profile *domain.UserProfile
	Admin   bool
}

// Handshake is what a client presents when it connects. Header is the
// connection's own: an Authenticator reads it and never changes it.
type Handshake struct {
	Auth   map[string]any
	Header http.Header
	Query  url.Values
}

// Authenticator decides who a connecting client is. It returns an EAUTH
// error to refuse the connection; the message reaches the client's
// connect_error (never a token or a secret).
type Authenticator interface {
	Authenticate(ctx context.Context, h Handshake) (Identity, error)
}

// OpenAuth is the default open mode: nobody is authenticated at connect and
// a socket is bound to the first user it names.
type OpenAuth struct{}

// Authenticate accepts every handshake as anonymous.
func (OpenAuth) Authenticate(context.Context, Handshake) (Identity, error) { return Identity{}, nil }

// Config holds the adapter's settings. Zero values take the defaults.
type Config struct {
	// NodeID names this server process in events; sessions are keyed by node
	// and socket.
	NodeID string
	// StatusInterval is the period of system_status_update (default 30s).
	StatusInterval time.Duration
	// CORSOrigins are the allowed origins; empty or "*" allows any. Listed
	// origins may also send credentials (cookies), as the Admin UI's page
	// does.
	CORSOrigins []string
	// MaxFrame is the largest frame a client may send (default 1 MiB);
	// a bigger one closes that socket.
	MaxFrame int64
	// ClientQueueMax bounds, in bytes, what the server queues for one
	// socket and has not yet written to it (default 1 MiB, as Centrifugo's
	// client.queue_max_size); a socket whose queue would pass it is
	// disconnected as a slow consumer, so it cannot make the server hold
	// more, and other sockets are never slowed by it. It can reconnect and
	// recover what it missed.
	ClientQueueMax int64
	// CommandTimeout bounds each client event's work, so a client gets
	// UNAVAILABLE instead of waiting on an unreachable store (default 10s).
	CommandTimeout time.Duration
	// PresenceWindow is how long online_users changes are coalesced before
	// the list goes out on a quiet server (default 50ms; PROTOCOL.md allows
	// up to 100ms).
	PresenceWindow time.Duration
	// PresenceBandwidth is the rate in bytes per second that online_users
	// rounds aim to stay under: the window grows with the bytes a round
	// sends (default 128 MiB/s).
	PresenceBandwidth int64
	// RecoveryWindow is how long a disconnected client may recover its
	// session, from the log, on any server sharing the stores (default 24
	// hours; negative turns recovery off).
	RecoveryWindow time.Duration
	// RecoveryMaxEvents is the most pushes a recovering client may have
	// missed; one further behind connects afresh (default 10000).
	RecoveryMaxEvents int
	// PresenceGrace is how long a dropped session may take to recover
	// before its presence and chat memberships end in the log (default 5s;
	// negative: at once). A blip within it shows the others nothing.
	PresenceGrace time.Duration
	// MaxRooms caps the rooms one socket may be in (default 1000); a join
	// past it is FORBIDDEN.
	MaxRooms int
	// Sessions keeps the sessions clients may recover (nil: recovery is
	// off and a dropped session ends at once).
	Sessions SessionStore
	// PingInterval and PingTimeout tune Engine.IO's heartbeat (defaults
	// 25s and 20s).
	PingInterval, PingTimeout time.Duration
	// DirectWrites turns off the coalescing of websocket writes (see
	// coalesce.go), leaving one write system call per frame.
	DirectWrites bool
	// Signals carries typing indicators to and from the other servers that
	// share the event store (nil: this server is alone).
	Signals SignalBus
	// Limits are the per-socket rate limits.
	Limits RateLimits
	Auth   Authenticator
	// Admin serves the Admin UI's namespace /admin (nil: the namespace
	// does not exist).
	Admin *AdminConfig
	// Observer receives measurements (default: none are kept).
	Observer Observer
	Logger   *slog.Logger
	Now      func() time.Time
	NewID    func() string
}

func (c *Config) setDefaults() {
	if c.NodeID == "" {
		c.NodeID = "node"
	}
	if c.StatusInterval <= 0 {
		c.StatusInterval = 30 * time.Second
	}
	if c.MaxFrame <= 0 {
		c.MaxFrame = 1 << 20
	}
	if c.ClientQueueMax <= 0 {
		c.ClientQueueMax = DefaultClientQueueMax
	}
	if c.CommandTimeout <= 0 {
		c.CommandTimeout = 10 * time.Second
	}
	if c.PresenceWindow <= 0 {
		c.PresenceWindow = 50 * time.Millisecond
	}
	if c.PresenceBandwidth <= 0 {
		c.PresenceBandwidth = 128 << 20
	}
	if c.RecoveryWindow == 0 {
		c.RecoveryWindow = DefaultRecoveryWindow
	}
	if c.RecoveryMaxEvents <= 0 {
		c.RecoveryMaxEvents = DefaultRecoveryMaxEvents
	}
	if c.PresenceGrace == 0 {
		c.PresenceGrace = DefaultPresenceGrace
	}
	if c.MaxRooms <= 0 {
		c.MaxRooms = DefaultMaxRooms
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 25 * time.Second
	}
	if c.PingTimeout <= 0 {
		c.PingTimeout = 20 * time.Second
	}
	c.Limits.setDefaults()
	if c.Auth == nil {
		c.Auth = OpenAuth{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.NewID == nil {
		c.NewID = eventstore.NewID
	}
}

// Server is the Socket.IO adapter. Create it with New, mount Handler, run it
// with Run, and stop it with Shutdown.
type Server struct {
	cfg      Config
	handlers Handlers
	queries  Queries
	models   ReadModels
	feed     Feed

	io       *socket.Server
	handler  http.Handler
	started  time.Time
	sessions sync.Map // socket id → *session

	dispatch *dispatcher
	presence *presenceBroadcaster
	replays  *replayReader
	admin    *adminUI // nil unless Config.Admin is set

	ctx      context.Context // ends at Shutdown; parent of command contexts
	cancel   context.CancelFunc
	closing  atomic.Bool
	inflight *tracker       // client events being handled and sessions being ended
	ends     endQueue       // session ends waiting for the store
	loops    sync.WaitGroup // dispatcher, presence broadcaster, status ticker, signal relay
}

// New returns an adapter over the given handlers, queries, read models and
// feed.
func New(cfg Config, h Handlers, q Queries, m ReadModels, feed Feed) *Server {
	cfg.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	srv := &Server{cfg: cfg, handlers: h, queries: q, models: m, feed: feed, started: cfg.Now(), ctx: ctx, cancel: cancel,
		inflight: newTracker()}
	srv.presence = newPresenceBroadcaster(srv)
	srv.replays = newReplayReader(srv)

	opts := socket.DefaultServerOptions()
	opts.SetTransports(types.NewSet(socket.Polling, socket.WebSocket))
	opts.SetPingInterval(cfg.PingInterval)
	opts.SetPingTimeout(cfg.PingTimeout)
	opts.SetMaxHttpBufferSize(cfg.MaxFrame)
	opts.SetMaxBufferedBytes(cfg.ClientQueueMax)
	opts.SetCors(srv.cors())
	if !allowsAnyOrigin(cfg.CORSOrigins) {
		// The CORS allow-list guards websocket upgrades; the handshake check
		// also turns away polling clients from other origins.
		opts.SetAllowRequest(func(ctx *types.HttpContext) error {
			if o := ctx.Headers().Peek("Origin"); o != "" && !originAllowed(cfg.CORSOrigins, o) {
				return errors.New("origin not allowed")
			}
			return nil
		})
	}
	if cfg.RecoveryWindow > 0 && cfg.Sessions != nil {
		// The library's recovery machinery (private session ids, restored
		// socket ids and rooms, recovered === true) with sessions restored
		// from the log by this adapter instead of its in-memory buffer.
		csr := socket.DefaultConnectionStateRecovery()
		csr.SetMaxDisconnectionDuration(cfg.RecoveryWindow.Milliseconds())
		csr.SetSkipMiddlewares(false) // a recovered socket proves its identity again
		opts.SetConnectionStateRecovery(csr)
		opts.SetAdapter(&recoveryAdapterBuilder{srv: srv})
	}

	srv.io = socket.NewServer(nil, opts)
	srv.io.Use(srv.authenticate)
	srv.io.On("connection", func(args ...any) {
		if s, ok := args[0].(*socket.Socket); ok {
			srv.onConnection(s)
		}
	})
	srv.handler = srv.io.ServeHandler(nil)
	if cfg.Admin != nil {
		srv.admin = newAdminUI(srv, *cfg.Admin)
	}
	if !cfg.DirectWrites {
		srv.handler = coalesceWebsocketWrites(srv.handler)
	}
	return srv
}

func (srv *Server) cors() *types.Cors {
	if allowsAnyOrigin(srv.cfg.CORSOrigins) {
		return &types.Cors{Origin: "*"}
	}
	// Listed origins may send credentials: the Admin UI's page connects
	// with withCredentials (for cookie-based sticky sessions), which a
	// browser refuses against "*".
	return &types.Cors{Origin: srv.cfg.CORSOrigins, Credentials: true}
}

func allowsAnyOrigin(origins []string) bool {
	if len(origins) == 0 {
		return true
	}
	for _, o := range origins {
		if o == "*" {
			return true
		}
	}
	return false
}

func originAllowed(origins []string, origin string) bool {
	for _, o := range origins {
		if strings.EqualFold(o, origin) {
			return true
		}
	}
	return false
}

// Handler serves Socket.IO; mount it on "/socket.io/".
func (srv *Server) Handler() http.Handler { return srv.handler }

// Run subscribes to the live feed from the log's head and runs the
// dispatcher, the online_users broadcaster, the periodic status and, with
// the Admin UI on, its server_stats until Shutdown. It returns once they run; their errors are logged and retried.
func (srv *Server) Run(ctx context.Context) error {
	head, err := srv.feed.Head(ctx)
	if err != nil {
		return err
	}
	srv.dispatch = newDispatcher(srv, head)
	srv.loops.Add(4)
	go func() { defer srv.loops.Done(); srv.dispatch.run(srv.ctx) }()
	go func() { defer srv.loops.Done(); srv.presence.run(srv.ctx) }()
	go func() { defer srv.loops.Done(); srv.statusLoop(srv.ctx) }()
	go func() { defer srv.loops.Done(); srv.retryEnds(srv.ctx) }()
	if srv.cfg.Sessions != nil {
		srv.loops.Add(1)
		go func() { defer srv.loops.Done(); srv.graceLoop(srv.ctx) }()
	}
	if srv.admin != nil {
		srv.loops.Add(1)
		go func() { defer srv.loops.Done(); srv.admin.run(srv.ctx) }()
	}
	if srv.cfg.Signals != nil {
		srv.loops.Add(1)
		go func() { defer srv.loops.Done(); srv.relaySignals(srv.ctx, srv.cfg.Signals.Signals()) }()
	}
	return nil
}

// Shutdown stops accepting connections, disconnects every socket (ending
// their sessions in the log), waits for client events in flight to finish
// their appends, and stops the loops. It returns ctx's error if that takes
// longer than ctx allows.
func (srv *Server) Shutdown(ctx context.Context) error {
	srv.closing.Store(true)
	closed := make(chan struct{})
	srv.io.Close(func(error) { close(closed) })
	select {
	case <-closed:
	case <-ctx.Done():
	}
	err := srv.inflight.wait(ctx)
	srv.cancel()
	srv.loops.Wait()
	return err
}

// authenticate is the connection middleware: it refuses new connections
// while shutting down and asks the Authenticator who the client is.
func (srv *Server) authenticate(s *socket.Socket, next func(*socket.ExtendedError)) {
	if srv.closing.Load() {
		next(socket.NewExtendedError("server is shutting down", map[string]any{"code": domain.EUNAVAILABLE}))
		return
	}
	// The request the Engine.IO socket keeps, read as it is: the
	// Socket.IO handshake would copy every header twice over.
	req := s.Request().Request()
	h := Handshake{Auth: s.Auth(), Header: req.Header, Query: req.URL.Query()}
	ctx, cancel := context.WithTimeout(srv.ctx, srv.cfg.CommandTimeout)
	defer cancel()
	id, err := srv.cfg.Auth.Authenticate(ctx, h)
	if err != nil {
		code := domain.ErrorCode(err)
		if code == domain.EINTERNAL {
			code = domain.EAUTH
		}
		if ci, ok := s.Data().(*connectionIdentity); ok && ci.restored != nil {
			srv.abandonRestore(ci.restored)
		}
		srv.cfg.Logger.Info("connection refused", "code", code, "reason", domain.ErrorMessage(err), "address", s.Conn().RemoteAddress())
		next(socket.NewExtendedError(domain.ErrorMessage(err), map[string]any{"code": code, "message": domain.ErrorMessage(err)}))
		return
	}
	if ci, ok := s.Data().(*connectionIdentity); ok && ci.restored != nil && s.Recovered() {
		// A recovering socket keeps the session's identity; a token it
		// presents must name the same user.
		if id.UserID != "" && ci.UserID != "" && id.UserID != ci.UserID {
			srv.abandonRestore(ci.restored)
			srv.cfg.Logger.Info("connection refused", "code", domain.EAUTH, "reason", "token names another user than the recovered session", "address", s.Conn().RemoteAddress())
			next(socket.NewExtendedError("the token names another user than the session", map[string]any{"code": domain.EAUTH, "message": "the token names another user than the session"}))
			return
		}
		if id.UserID != "" {
			ci.Identity = id
		}
		next(nil)
		return
	}
	s.SetData(&connectionIdentity{Identity: id})
	next(nil)
}

// abandonRestore undoes the claim of a session whose recovery was refused
// after it was restored: its live pushes flow again (to nobody) and it is
// suspended again, so the grace ends it unless it is recovered properly.
func (srv *Server) abandonRestore(r *restoredSession) {
	srv.dispatch.closeReplay(r.gate, nil)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(srv.ctx), srv.cfg.CommandTimeout)
	defer cancel()
	if _, err := srv.cfg.Sessions.Suspend(ctx, r.row.PIDHash, r.row.Generation, srv.cfg.Now(), r.row.EndReason); err != nil {
		srv.cfg.Logger.Warn("could not suspend a session whose recovery was refused", "socket", r.row.SessionID, "err", err)
	}
}

// connectionIdentity carries the authenticated identity from the middleware
// to the connection handler, and a recovered socket's session across its
// reconnection (Socket.IO restores Data on recovery).
type connectionIdentity struct {
	Identity
	restored *restoredSession // set for a socket whose session is being recovered
}

// Room names: client rooms live apart from users' private rooms and system
// rooms, so no client event can name a private room.
func clientRoom(name string) socket.Room { return socket.Room(clientRoomPrefix + name) }

// clientRoomPrefix starts the Socket.IO room of every client room.
const clientRoomPrefix = "room:"

func userRoom(uid string) socket.Room    { return socket.Room("user:" + uid) }
func systemRoom(name string) socket.Room { return socket.Room("sys:" + name) }

// socketRoom is the room holding exactly one socket.
func socketRoom(sid string) socket.Room { return socket.Room(sid) }

// Observer receives the adapter's measurements; cmd/auraos exports them as
// Prometheus metrics. Its methods must be cheap and must not block.
type Observer interface {
	// ClientEvent reports a handled client event: its outcome ("ok" or the
	// error code) and how long it took until the ack.
	ClientEvent(event, outcome string, took time.Duration)
	// Pushed reports one server→client event sent to a socket, a room or
	// everyone.
	Pushed(event string)
	// SlowDisconnect reports a socket disconnected because its outbound
	// queue passed ClientQueueMax.
	SlowDisconnect()
	// SessionEndBacklog reports how many session ends wait to be stored.
	SessionEndBacklog(n int)
}

type nopObserver struct{}

func (nopObserver) ClientEvent(string, string, time.Duration) {}
func (nopObserver) Pushed(string)                             {}
func (nopObserver) SlowDisconnect()                           {}
func (nopObserver) SessionEndBacklog(int)                     {}

// Defaults of Config.
const (
	DefaultClientQueueMax    = 1 << 20
	DefaultRecoveryWindow    = 24 * time.Hour
	DefaultRecoveryMaxEvents = 10000
	DefaultPresenceGrace     = 5 * time.Second
	DefaultMaxRooms          = 1000
)

// emit sends an event through a broadcast operator and counts it.
func (srv *Server) emit(op *socket.BroadcastOperator, event string, payload any) {
	_ = op.Emit(event, payload)
	srv.cfg.Observer.Pushed(event)
}

// emitAt sends an event made by the stored event at pos, with pos as its
// offset: the last argument, a string, which Socket.IO clients keep and
// present when they reconnect, so that they recover what came after it.
func (srv *Server) emitAt(op *socket.BroadcastOperator, event string, payload any, pos eventstore.Position) {
	_ = op.Emit(event, payload, pos.String())
	srv.cfg.Observer.Pushed(event)
}

// emitTo sends an event to one socket by id, from any goroutine.
func (srv *Server) emitTo(sid, event string, payload any) {
	srv.emit(srv.io.To(socketRoom(sid)), event, payload)
}

// emitAll sends an event to every socket of this node.
func (srv *Server) emitAll(event string, payload any) {
	srv.emit(srv.io.Sockets().Except(), event, payload)
}

// SocketsByTransport counts this node's connected sockets by their current
// transport ("websocket" or "polling").
func (srv *Server) SocketsByTransport() map[string]int {
	out := map[string]int{}
	srv.io.Sockets().Sockets().Range(func(_ socket.SocketId, s *socket.Socket) bool {
		out[s.Conn().Transport().Name()]++
		return true
	})
	return out
}

// socketByID returns the live socket with this id on this node.
func (srv *Server) socketByID(sid string) (*socket.Socket, bool) {
	return srv.io.Sockets().Sockets().Load(socket.SocketId(sid))
}

// sessionByID returns the session of a live socket on this node.
func (srv *Server) sessionByID(sid string) (*session, bool) {
	v, ok := srv.sessions.Load(sid)
	if !ok {
		return nil, false
	}
	return v.(*session), true
}
