package socketadapter

// The server side of the official Socket.IO Admin UI (@socket.io/admin-ui),
// in Go: the namespace /admin speaks the protocol of the Node package's
// instrument() (its lib/index.ts and lib/typed-events.ts), so the UI, pointed
// at this server, lists its sockets, rooms and traffic and can make sockets
// join, leave or disconnect.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	engine "github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/auraos/realtime/domain"
)

// AdminNamespace is the namespace the Admin UI connects to.
const AdminNamespace = "/admin"

// DefaultAdminStatsInterval is how often server_stats goes to the Admin UI,
// as the Node package sends it.
const DefaultAdminStatsInterval = 2 * time.Second

// AdminConfig turns on the Admin UI namespace. Without one (Config.Admin
// nil) the namespace does not exist and a client asking for it gets the
// library's "Invalid namespace" refusal.
type AdminConfig struct {
	// Credentials say who may connect: the handshake's auth.username and
	// auth.password, or an admin token in auth.token. Required.
	Credentials *AdminCredentials
	// ReadOnly refuses the UI's emit, join, leave and _disconnect commands
	// (with FORBIDDEN when the command asks for an acknowledgement), and
	// the config the UI gets lists no such feature.
	ReadOnly bool
	// StatsInterval is the period of server_stats (default 2s).
	StatsInterval time.Duration
	// SessionTTL is how long the session id the UI gets after a password
	// login lets it reconnect without the password (default 24h).
	SessionTTL time.Duration
}

// Admin UI features (typed-events.ts's Feature).
const (
	featureEmit             = "EMIT"
	featureJoin             = "JOIN"
	featureLeave            = "LEAVE"
	featureDisconnect       = "DISCONNECT"
	featureMJoin            = "MJOIN"
	featureMLeave           = "MLEAVE"
	featureMDisconnect      = "MDISCONNECT"
	featureAggregatedEvents = "AGGREGATED_EVENTS"
	featureAllEvents        = "ALL_EVENTS"
)

// adminUI is the Admin UI namespace of one server.
type adminUI struct {
	srv      *Server
	cfg      AdminConfig
	nsp      socket.Namespace
	hostname string
	features []string

	mu       sync.Mutex
	sessions map[string]time.Time // session id → expiry

	traffic traffic
}

// traffic counts what the Admin UI's dashboard charts: Engine.IO
// connections, disconnections (by reason), packets and bytes in and out,
// since the last server_stats.
type traffic struct {
	connections, packetsIn, packetsOut, bytesIn, bytesOut atomic.Int64
	polling                                               atomic.Int64 // clients on the polling transport now

	mu            sync.Mutex
	disconnection map[string]int64 // reason → count
}

// aggregatedEvent is typed-events.ts's NamespaceEvent.
type aggregatedEvent struct {
	Timestamp int64  `json:"timestamp"`
	Type      string `json:"type"`
	SubType   string `json:"subType,omitempty"`
	Count     int64  `json:"count"`
}

// take returns the counts since the last call, stamped with now (in
// milliseconds, on a whole second, as the Node package buckets them), and
// starts counting afresh.
func (t *traffic) take(now time.Time) []aggregatedEvent {
	ts := now.Truncate(time.Second).UnixMilli()
	out := []aggregatedEvent{}
	for _, c := range []struct {
		typ string
		n   *atomic.Int64
	}{{"rawConnection", &t.connections}, {"packetsIn", &t.packetsIn}, {"packetsOut", &t.packetsOut}, {"bytesIn", &t.bytesIn}, {"bytesOut", &t.bytesOut}} {
		if n := c.n.Swap(0); n > 0 {
			out = append(out, aggregatedEvent{Timestamp: ts, Type: c.typ, Count: n})
		}
	}
	t.mu.Lock()
	for reason, n := range t.disconnection {
		out = append(out, aggregatedEvent{Timestamp: ts, Type: "rawDisconnection", SubType: reason, Count: n})
	}
	t.disconnection = nil
	t.mu.Unlock()
	return out
}

func (t *traffic) disconnected(reason string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.disconnection == nil {
		t.disconnection = map[string]int64{}
	}
	t.disconnection[reason]++
}

// newAdminUI creates the namespace and hooks the listeners that feed it. It
// runs in New, after the engine exists.
func newAdminUI(srv *Server, cfg AdminConfig) *adminUI {
	if cfg.StatsInterval <= 0 {
		cfg.StatsInterval = DefaultAdminStatsInterval
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 24 * time.Hour
	}
	host, _ := os.Hostname()
	a := &adminUI{srv: srv, cfg: cfg, hostname: host, sessions: map[string]time.Time{}}
	if !cfg.ReadOnly {
		a.features = []string{featureEmit, featureJoin, featureLeave, featureDisconnect, featureMJoin, featureMLeave, featureMDisconnect}
	}
	// The UI lists sockets only in its "development mode", which
	// ALL_EVENTS turns on with the aggregated charts.
	a.features = append(a.features, featureAggregatedEvents, featureAllEvents)

	a.nsp = srv.io.Of(AdminNamespace, nil)
	a.nsp.Use(a.authenticate)
	a.nsp.On("connection", func(args ...any) {
		if s, ok := args[0].(*socket.Socket); ok {
			a.onAdminConnection(s)
		}
	})
	for _, nsp := range []socket.Namespace{srv.io.Sockets(), a.nsp} {
		a.watch(nsp)
	}
	_ = srv.io.Engine().On("connection", func(args ...any) {
		if c, ok := args[0].(engine.Socket); ok {
			a.onEngineConnection(c)
		}
	})
	return a
}

// authenticate is the namespace's middleware: a live session id, the
// operator's username and password, or an admin token. A refusal's message
// is "invalid credentials", which the UI shows in its connection form.
func (a *adminUI) authenticate(s *socket.Socket, next func(*socket.ExtendedError)) {
	if a.srv.closing.Load() {
		next(socket.NewExtendedError("server is shutting down", map[string]any{"code": domain.EUNAVAILABLE}))
		return
	}
	auth := s.Auth()
	str := func(k string) string { v, _ := auth[k].(string); return v }
	switch {
	case str("sessionId") != "" && a.sessionValid(str("sessionId")):
	case str("username") != "" && a.cfg.Credentials.CheckPassword(str("username"), str("password")):
		s.SetData(&adminLogin{session: a.newSession()})
	case str("token") != "":
		ctx, cancel := context.WithTimeout(a.srv.ctx, a.srv.cfg.CommandTimeout)
		defer cancel()
		if err := a.cfg.Credentials.CheckToken(ctx, str("token")); err != nil {
			a.refuse(s, next, err)
			return
		}
	default:
		a.refuse(s, next, domain.Errorf(domain.EAUTH, "invalid credentials"))
		return
	}
	next(nil)
}

func (a *adminUI) refuse(s *socket.Socket, next func(*socket.ExtendedError), err error) {
	code := domain.ErrorCode(err)
	a.srv.cfg.Logger.Info("admin connection refused", "code", code, "reason", domain.ErrorMessage(err), "address", s.Conn().RemoteAddress())
	next(socket.NewExtendedError("invalid credentials", map[string]any{"code": code, "message": domain.ErrorMessage(err)}))
}

// adminLogin is the Data of an admin socket that logged in with a password:
// it gets a session id to reconnect with.
type adminLogin struct{ session string }

func (a *adminUI) newSession() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	now := a.srv.cfg.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, exp := range a.sessions {
		if now.After(exp) {
			delete(a.sessions, k)
		}
	}
	a.sessions[id] = now.Add(a.cfg.SessionTTL)
	return id
}

func (a *adminUI) sessionValid(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	exp, ok := a.sessions[id]
	return ok && a.srv.cfg.Now().Before(exp)
}

// onAdminConnection answers a new admin socket as instrument() does: its
// session id (after a password login), config, its commands, the current
// stats and every socket.
func (a *adminUI) onAdminConnection(s *socket.Socket) {
	if l, ok := s.Data().(*adminLogin); ok {
		_ = s.Emit("session", l.session)
	}
	for _, ev := range []string{"emit", "join", "leave", "_disconnect"} {
		s.On(ev, func(args ...any) { a.command(ev, args) })
	}
	_ = s.Emit("config", map[string]any{"supportedFeatures": a.features})
	_ = s.Emit("server_stats", a.stats(nil))
	_ = s.Emit("all_sockets", a.allSockets())
}

// watch makes a namespace's sockets and rooms visible to the UI.
func (a *adminUI) watch(nsp socket.Namespace) {
	name := nsp.Name()
	nsp.On("connection", func(args ...any) {
		s, ok := args[0].(*socket.Socket)
		if !ok {
			return
		}
		a.emit("socket_connected", a.serialize(s), a.srv.cfg.Now())
		if name != AdminNamespace {
			s.OnAny(func(args ...any) {
				if a.watched() {
					a.emit("event_received", name, string(s.Id()), withoutAck(args), a.srv.cfg.Now())
				}
			})
			s.OnAnyOutgoing(func(args ...any) {
				if a.watched() {
					a.emit("event_sent", name, string(s.Id()), args, a.srv.cfg.Now())
				}
			})
		}
		_ = s.Conn().On("upgrade", func(args ...any) {
			a.emit("socket_updated", map[string]any{"id": string(s.Id()), "nsp": name, "transport": s.Conn().Transport().Name()})
		})
		s.On("disconnect", func(args ...any) {
			reason, _ := firstString(args)
			a.emit("socket_disconnected", name, string(s.Id()), reason, a.srv.cfg.Now())
		})
	})
	if name == AdminNamespace {
		return // an admin socket is only ever in its own room
	}
	_ = nsp.Adapter().On("join-room", func(args ...any) {
		if room, id, ok := roomAndSocket(args); ok {
			a.emit("room_joined", name, room, id, a.srv.cfg.Now())
		}
	})
	_ = nsp.Adapter().On("leave-room", func(args ...any) {
		if room, id, ok := roomAndSocket(args); ok {
			a.emit("room_left", name, room, id, a.srv.cfg.Now())
		}
	})
}

func roomAndSocket(args []any) (string, string, bool) {
	if len(args) < 2 {
		return "", "", false
	}
	room, ok1 := args[0].(socket.Room)
	id, ok2 := args[1].(socket.SocketId)
	return string(room), string(id), ok1 && ok2
}

func withoutAck(args []any) []any {
	if n := len(args); n > 0 {
		if _, ok := args[n-1].(socket.Ack); ok {
			return args[:n-1]
		}
	}
	return args
}

// watched reports whether an admin socket is connected, so that no event
// is copied for nobody.
func (a *adminUI) watched() bool { return a.nsp.Sockets().Len() > 0 }

// adminUpdated tells the Admin UI, when it is on, that a socket's data
// (the user it is bound to) changed.
func (srv *Server) adminUpdated(sid string) {
	a := srv.admin
	if a == nil || !a.watched() {
		return
	}
	a.emit("socket_updated", map[string]any{"id": sid, "nsp": "/", "data": a.data(sid)})
}

// emit sends an event to every admin socket of this server.
func (a *adminUI) emit(event string, args ...any) {
	_ = a.nsp.Emit(event, args...)
}

// onEngineConnection counts an Engine.IO connection's traffic, as the Node
// package's engine listeners do.
func (a *adminUI) onEngineConnection(c engine.Socket) {
	t := &a.traffic
	t.connections.Add(1)
	var polling atomic.Bool
	if c.Transport().Name() == "polling" {
		polling.Store(true)
		t.polling.Add(1)
	}
	leavePolling := func() {
		if polling.CompareAndSwap(true, false) {
			t.polling.Add(-1)
		}
	}
	_ = c.On("upgrade", func(...any) { leavePolling() })
	_ = c.On("close", func(args ...any) {
		leavePolling()
		reason, _ := firstString(args)
		t.disconnected(reason)
	})
	_ = c.On("packetCreate", func(args ...any) {
		if n, ok := packetBytes(args); ok {
			t.packetsOut.Add(1)
			t.bytesOut.Add(n)
		}
	})
	_ = c.On("packet", func(args ...any) {
		if n, ok := packetBytes(args); ok {
			t.packetsIn.Add(1)
			t.bytesIn.Add(n)
		}
	})
}

// packetBytes is the length of an Engine.IO packet's data; packets without
// data (pings) do not count, as in the Node package.
func packetBytes(args []any) (int64, bool) {
	if len(args) == 0 {
		return 0, false
	}
	p, ok := args[0].(*packet.Packet)
	if !ok || p.Data == nil {
		return 0, false
	}
	if l, ok := p.Data.(interface{ Len() int }); ok && l.Len() > 0 {
		return int64(l.Len()), true
	}
	return 0, false
}

// run sends server_stats every StatsInterval until ctx ends.
func (a *adminUI) run(ctx context.Context) {
	t := time.NewTicker(a.cfg.StatsInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			stats := a.stats(a.traffic.take(a.srv.cfg.Now()))
			a.emit("server_stats", stats)
			a.publishStats(stats)
		}
	}
}

// publishStats sends this server's stats to the other servers sharing the
// signal bus, whose Admin UI lists this server beside them (the Node
// package gets the same from its cluster adapter's broadcast).
func (a *adminUI) publishStats(stats map[string]any) {
	bus := a.srv.cfg.Signals
	if bus == nil {
		return
	}
	raw, err := json.Marshal(stats)
	if err != nil {
		return
	}
	b, err := json.Marshal(typingSignal{Node: a.srv.cfg.NodeID, AdminStats: raw})
	if err == nil && !bus.Publish(b) {
		a.srv.cfg.Logger.Debug("admin stats signal dropped")
	}
}

// relayStats shows another server's stats to this server's Admin UI.
func (a *adminUI) relayStats(raw json.RawMessage) {
	if !a.watched() {
		return
	}
	var stats map[string]any
	if json.Unmarshal(raw, &stats) != nil {
		return
	}
	a.emit("server_stats", stats)
}

// namespaceDetails is typed-events.ts's NamespaceDetails.
type namespaceDetails struct {
	Name         string `json:"name"`
	SocketsCount int    `json:"socketsCount"`
}

// stats is typed-events.ts's ServerStats with the aggregated events: the
// server id is the node id, so that each server of a cluster is its own
// line in the UI.
func (a *adminUI) stats(events []aggregatedEvent) map[string]any {
	if events == nil {
		events = []aggregatedEvent{}
	}
	return map[string]any{
		"serverId":            a.srv.cfg.NodeID,
		"hostname":            a.hostname,
		"pid":                 os.Getpid(),
		"uptime":              a.srv.cfg.Now().Sub(a.srv.started).Seconds(),
		"clientsCount":        a.srv.io.Engine().ClientsCount(),
		"pollingClientsCount": a.traffic.polling.Load(),
		"aggregatedEvents":    events,
		"namespaces": []namespaceDetails{
			{Name: "/", SocketsCount: a.srv.io.Sockets().Sockets().Len()},
			{Name: AdminNamespace, SocketsCount: a.nsp.Sockets().Len()},
		},
	}
}

// serializedSocket is typed-events.ts's SerializedSocket.
type serializedSocket struct {
	ID        string         `json:"id"`
	ClientID  string         `json:"clientId"`
	Transport string         `json:"transport"`
	Nsp       string         `json:"nsp"`
	Data      map[string]any `json:"data"`
	Handshake map[string]any `json:"handshake"`
	Rooms     []string       `json:"rooms"`
}

// secretHeaders are the handshake headers the UI never sees: they carry
// tokens and cookies.
var secretHeaders = map[string]bool{"authorization": true, "cookie": true, "proxy-authorization": true}

func (a *adminUI) serialize(s *socket.Socket) serializedSocket {
	hs := s.Handshake()
	headers := map[string]string{}
	for k, v := range hs.Headers.Header() {
		k = strings.ToLower(k)
		if secretHeaders[k] {
			headers[k] = "[hidden]"
			continue
		}
		headers[k] = strings.Join(v, ", ")
	}
	query := map[string]string{}
	for k, v := range hs.Query.Query() {
		if k == "token" {
			query[k] = "[hidden]"
			continue
		}
		query[k] = strings.Join(v, ", ")
	}
	address := hs.Address
	for _, h := range []string{"cf-connecting-ip", "x-forwarded-for"} {
		if v := headers[h]; v != "" {
			address = v
			break
		}
	}
	url := hs.Url
	if i := strings.IndexByte(url, '?'); i >= 0 {
		url = url[:i] // the query is above, with its token hidden
	}
	clientID := string(s.Conn().Id())
	if len(clientID) > 12 {
		clientID = clientID[:12] // as the Node package: the whole id is sensitive
	}
	rooms := []string{}
	for _, r := range s.Rooms().Keys() {
		rooms = append(rooms, string(r))
	}
	return serializedSocket{
		ID: string(s.Id()), ClientID: clientID, Transport: s.Conn().Transport().Name(), Nsp: s.Nsp().Name(),
		Data: a.data(string(s.Id())),
		Handshake: map[string]any{
			"address": address, "headers": headers, "query": query, "issued": hs.Issued, "secure": hs.Secure,
			"time": hs.Time, "url": url, "xdomain": hs.Xdomain,
		},
		Rooms: rooms,
	}
}

// data is what the UI shows as a socket's data: the user it acts as.
func (a *adminUI) data(sid string) map[string]any {
	out := map[string]any{}
	if sess, ok := a.srv.sessionByID(sid); ok {
		actor := sess.currentActor()
		if actor.UserID != "" {
			out["userId"] = actor.UserID
		}
		if actor.Admin {
			out["admin"] = true
		}
	}
	return out
}

// allSockets lists this server's sockets in every namespace.
func (a *adminUI) allSockets() []serializedSocket {
	out := []serializedSocket{}
	for _, nsp := range []socket.Namespace{a.srv.io.Sockets(), a.nsp} {
		nsp.Sockets().Range(func(_ socket.SocketId, s *socket.Socket) bool {
			out = append(out, a.serialize(s))
			return true
		})
	}
	return out
}

// command runs one of the UI's commands with the semantics of Socket.IO v4
// (the M* features): filter, when given, is a room (a socket id is its own
// room) and the command applies to the sockets in it, otherwise to every
// socket of the namespace. Only the namespaces this server has are served;
// others are ignored. In read-only mode every command is refused. A command
// sent with an acknowledgement gets {ok: true} or {ok: false, error}.
func (a *adminUI) command(event string, args []any) {
	var ack socket.Ack
	if n := len(args); n > 0 {
		if f, ok := args[n-1].(socket.Ack); ok {
			ack, args = f, args[:n-1]
		}
	}
	err := a.run1(event, args)
	if err != nil {
		a.srv.cfg.Logger.Info("admin command refused", "command", event, "code", domain.ErrorCode(err), "reason", domain.ErrorMessage(err))
	} else {
		a.srv.cfg.Logger.Info("admin command", "command", event)
	}
	if ack == nil {
		return
	}
	if err != nil {
		ack([]any{map[string]any{"ok": false, "error": ackError{Code: domain.ErrorCode(err), Message: domain.ErrorMessage(err)}}}, nil)
		return
	}
	ack([]any{map[string]any{"ok": true}}, nil)
}

func (a *adminUI) run1(event string, args []any) error {
	if a.cfg.ReadOnly {
		return domain.Errorf(domain.EFORBIDDEN, "the Admin UI is read-only on this server")
	}
	str := func(i int) string {
		if i < len(args) {
			s, _ := args[i].(string)
			return s
		}
		return ""
	}
	var nsp socket.Namespace
	switch str(0) {
	case "/":
		nsp = a.srv.io.Sockets()
	case AdminNamespace:
		nsp = a.nsp
	default:
		return domain.Errorf(domain.EINVALID, "unknown namespace %q", str(0))
	}
	target := func(filter string) *socket.BroadcastOperator {
		if filter != "" {
			return nsp.In(socket.Room(filter))
		}
		return nsp.Except()
	}
	switch event {
	case "emit":
		if str(2) == "" {
			return domain.FieldErrorf("ev", "the event name is missing")
		}
		_ = target(str(1)).Emit(str(2), args[3:]...)
		a.srv.cfg.Observer.Pushed(str(2))
	case "join", "leave":
		if str(1) == "" {
			return domain.FieldErrorf("room", "the room is missing")
		}
		if event == "join" {
			target(str(2)).SocketsJoin(socket.Room(str(1)))
		} else {
			target(str(2)).SocketsLeave(socket.Room(str(1)))
		}
	case "_disconnect":
		var closeAll bool
		if len(args) > 1 {
			closeAll, _ = args[1].(bool)
		}
		target(str(2)).DisconnectSockets(closeAll)
	}
	return nil
}
