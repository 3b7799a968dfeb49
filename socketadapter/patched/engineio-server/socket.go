// Package engine implements the Engine.IO socket, which manages client connections, transport upgrades, and protocol state.
package engine

import (
	"crypto/tls"
	"encoding/json"
	stderrors "errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/servers/engine/v3/emitter"
	"github.com/zishang520/socket.io/servers/engine/v3/errors"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/v3/pkg/log"
	"github.com/zishang520/socket.io/v3/pkg/slices"
	"github.com/zishang520/socket.io/v3/pkg/types"
	"github.com/zishang520/socket.io/v3/pkg/utils"
)

var socketLog = log.NewLog("engine:socket")

const (
	// DefaultUpgradeCheckInterval is the interval between upgrade readiness checks during transport upgrade.
	DefaultUpgradeCheckInterval = 100 * time.Millisecond
)

type socket struct {
	types.EventEmitter

	// The revision of the protocol:
	//
	// - 3rd is used in Engine.IO v3 / Socket.IO v2
	// - 4th is used in Engine.IO v4 and above / Socket.IO v3 and above
	//
	// It is found in the `EIO` query parameters of the HTTP requests.
	//
	// See: https://github.com/socketio/engine.io-protocol
	protocol int
	// A reference to the first HTTP request of the session
	//
	// TODO for the next major release: remove it
	//
	// PATCH(auraos): what the Socket.IO handshake reads of it (see
	// firstRequest), not the request itself; Request builds a request from
	// it, in a context of its own, on each call.
	request firstRequest
	// The IP address of the client.
	remoteAddress string

	// The current state of the socket.
	readyState types.Atomic[string]
	// The current low-level transport.
	transport atomic.Pointer[transports.Transport]

	// This is the session identifier that the client will use in the subsequent HTTP requests. It must not be shared with
	// others parties, as it might lead to session hijacking.
	id                string
	server            BaseServer
	upgrading         atomic.Bool
	upgraded          atomic.Bool
	writeBuffer       *types.Slice[*packet.Packet]
	packetsFn         *types.Slice[SendCallback]
	sentCallbackFn    *types.Slice[[]SendCallback]
	cleanupFn         *types.Slice[types.Callable]
	pingTimeoutTimer  atomic.Pointer[heartbeatTimer] // PATCH(auraos): no goroutine per timer
	pingIntervalTimer atomic.Pointer[heartbeatTimer]

	flushMu sync.Mutex
	out     outbound // PATCH(auraos): bounded outbound queue, see outbound.go
}

func (s *socket) Protocol() int {
	return s.protocol
}

func (s *socket) Upgraded() bool {
	return s.upgraded.Load()
}

func (s *socket) Upgrading() bool {
	return s.upgrading.Load()
}

func (s *socket) Id() string {
	return s.id
}

func (s *socket) RemoteAddress() string {
	return s.remoteAddress
}

// Request returns the first request of the session, as kept (see
// firstRequest), in a new context on each call (PATCH(auraos)): a context
// per socket for life would be most of a kilobyte, for the Socket.IO
// handshake of each namespace the client connects to.
func (s *socket) Request() *types.HttpContext {
	return types.NewHttpContext(sentResponse{}, s.request.build())
}

func (s *socket) Transport() transports.Transport {
	if v := s.transport.Load(); v != nil {
		return *v
	}
	return nil
}

func (s *socket) Server() BaseServer {
	return s.server
}

func (s *socket) ReadyState() string {
	return s.readyState.Load()
}

func (s *socket) SetReadyState(state string) {
	socketLog.Debug("readyState updated from %s to %s", s.ReadyState(), state)

	s.readyState.Store(state)
}

// Client class.
func MakeSocket() Socket {
	s := &socket{
		EventEmitter: emitter.New(), // PATCH(auraos): see the emitter package

		writeBuffer:    types.NewSlice[*packet.Packet](),
		packetsFn:      types.NewSlice[SendCallback](),
		sentCallbackFn: types.NewSlice[[]SendCallback](),
		cleanupFn:      types.NewSlice[types.Callable](),
	}
	s.readyState.Store("opening")

	return s
}

// Client class.
func NewSocket(id string, server BaseServer, transport transports.Transport, ctx *types.HttpContext, protocol int) Socket {
	s := MakeSocket()

	s.Construct(id, server, transport, ctx, protocol)

	return s
}

func (s *socket) Construct(id string, server BaseServer, transport transports.Transport, ctx *types.HttpContext, protocol int) {
	s.id = id
	s.server = server
	s.request = keepRequest(ctx) // PATCH(auraos)
	s.protocol = protocol

	// Cache IP since it might not be in the req later
	if ctx.WebTransport != nil {
		s.remoteAddress = ctx.WebTransport.RemoteAddr().String()
	} else if ctx.Websocket != nil && ctx.Websocket.Conn != nil {
		s.remoteAddress = ctx.Websocket.RemoteAddr().String()
	} else {
		s.remoteAddress = ctx.Request().RemoteAddr
	}
	if s.remoteAddress == s.request.remoteAddr {
		s.remoteAddress = s.request.remoteAddr // PATCH(auraos): one string, not two
	}

	s.setTransport(transport)
	opened := s.onOpen()
	if ctx.TransportReadPermission() != nil {
		// Managed streams start heartbeat when their initialization completes.
		ctx.SetTransportReady(s.startHeartbeat)
	} else if opened {
		s.startHeartbeat()
	}
}

// firstRequest is what a socket keeps of its first request (PATCH(auraos)):
// the method, URL, headers, host, remote address and TLS state, which the
// Socket.IO handshake of every namespace the client connects to reads.
// Upstream kept the request's context for the life of the socket: net/http's
// request with its context chain, the lazily built parameter bags, the
// response and its listeners, kilobytes per connection. A copy of the
// http.Request and its URL was still about 400 bytes of every idle
// connection; these fields, kept in the socket itself, are what build needs
// to make one when it is asked for.
type firstRequest struct {
	method, proto           string
	protoMajor, protoMinor  int
	header                  http.Header
	host, remoteAddr, uri   string
	path, rawPath, rawQuery string
	tls                     *tls.ConnectionState
}

// keepRequest takes what firstRequest keeps from ctx's request.
func keepRequest(ctx *types.HttpContext) firstRequest {
	r := ctx.Request()
	kept := firstRequest{
		method: r.Method, proto: r.Proto, protoMajor: r.ProtoMajor, protoMinor: r.ProtoMinor,
		header: r.Header, host: r.Host, remoteAddr: r.RemoteAddr, uri: r.RequestURI, tls: r.TLS,
	}
	if r.URL != nil {
		kept.path, kept.rawPath, kept.rawQuery = r.URL.Path, r.URL.RawPath, r.URL.RawQuery
	}
	return kept
}

// build returns a new request with what was kept; its body is empty and its
// headers are the connection's own, shared with every request build makes.
func (f *firstRequest) build() *http.Request {
	return &http.Request{
		Method:     f.method,
		Proto:      f.proto,
		ProtoMajor: f.protoMajor,
		ProtoMinor: f.protoMinor,
		Header:     f.header,
		Body:       http.NoBody,
		Host:       f.host,
		RemoteAddr: f.remoteAddr,
		RequestURI: f.uri,
		TLS:        f.tls,
		URL:        &url.URL{Path: f.path, RawPath: f.rawPath, RawQuery: f.rawQuery},
	}
}

// sentResponse stands for the response of a request whose response was
// sent: writing to it fails.
type sentResponse struct{}

var errResponseSent = stderrors.New("engine: the handshake request's response was sent")

func (sentResponse) Header() http.Header       { return http.Header{} }
func (sentResponse) Write([]byte) (int, error) { return 0, errResponseSent }
func (sentResponse) WriteHeader(int)           {}

// onOpen queues OPEN and reports whether it reached the open event.
func (s *socket) onOpen() bool {
	// Initialization can lose to a transport error or its startup deadline.
	if !s.readyState.CompareAndSwap("opening", "open") {
		return false
	}

	// sends an `open` packet
	s.Transport().SetSid(s.id)

	data, err := json.Marshal(map[string]any{
		"sid":          s.id,
		"upgrades":     s.getAvailableUpgrades(),
		"pingInterval": int64(s.server.Opts().PingInterval() / time.Millisecond),
		"pingTimeout":  int64(s.server.Opts().PingTimeout() / time.Millisecond),
		"maxPayload":   s.server.Opts().MaxHttpBufferSize(),
	})

	if err != nil {
		socketLog.Debug("json.Marshal err: %s", err)
		s.OnClose("encode error")
		return false
	}
	s.sendPacket(
		packet.OPEN,
		types.NewStringBuffer(data),
		nil, nil,
	)

	if i := s.server.Opts().InitialPacket(); i != nil {
		s.sendPacket(packet.MESSAGE, i, nil, nil)
	}

	if s.ReadyState() != "open" {
		return false
	}
	s.Emit("open")
	return true
}

func (s *socket) startHeartbeat() {
	if s.ReadyState() == "closed" {
		return
	}
	if s.protocol == 3 {
		// in protocol v3, the client sends a ping, and the server answers with a pong
		s.resetPingTimeout()
	} else {
		// in protocol v4, the server sends a ping, and the client answers with a pong
		s.schedulePing()
	}
}

// Called upon transport packet.
func (s *socket) onPacket(data *packet.Packet) {
	if data == nil {
		socketLog.Debug("packet received nil")
		return
	}

	if s.ReadyState() != "open" {
		socketLog.Debug("packet received with closed socket")
		return
	}

	// export packet event
	if log.DEBUG.Load() { // PATCH(auraos): the arguments are allocations
		socketLog.Debug(`received packet %s`, data.Type)
	}
	s.Emit("packet", data)

	switch data.Type {
	case packet.PING:
		if s.Transport().Protocol() != 3 {
			s.onError(errors.ErrInvalidHeartbeat)
			return
		}
		socketLog.Debug("got ping")
		if timer := s.pingTimeoutTimer.Load(); timer != nil {
			timer.Refresh()
		}
		s.sendPacket(packet.PONG, nil, nil, nil)
		s.Emit("heartbeat")
	case packet.PONG:
		if s.Transport().Protocol() == 3 {
			s.onError(errors.ErrInvalidHeartbeat)
			return
		}
		socketLog.Debug("got pong")
		clearHeartbeatTimeout(s.pingTimeoutTimer.Load())
		if timer := s.pingIntervalTimer.Load(); timer != nil {
			timer.Refresh()
		}
		s.Emit("heartbeat")
	case packet.ERROR:
		s.OnClose("parse error")
	case packet.MESSAGE:
		s.Emit("data", data.Data)
		s.Emit("message", data.Data)
	}
}

// Called upon transport error.
func (s *socket) onError(err error) {
	socketLog.Debug("transport error %v", err)
	s.OnClose("transport error", err)
}

// Pings client every `this.pingInterval` and expects response
// within `this.pingTimeout` or closes connection.
func (s *socket) schedulePing() {
	timer := setHeartbeatTimeout(func() {
		if s.ReadyState() == "closed" {
			return
		}
		socketLog.Debug("writing ping packet - expecting pong within %dms", int64(s.server.Opts().PingTimeout()/time.Millisecond))
		s.sendPacket(packet.PING, nil, nil, nil)
		s.resetPingTimeout()
	}, s.server.Opts().PingInterval())
	s.pingIntervalTimer.Store(timer)
	// A close may have cleared the old timer before this one was published.
	if s.ReadyState() == "closed" {
		clearHeartbeatTimeout(timer)
	}
}

// Resets ping timeout.
func (s *socket) resetPingTimeout() {
	clearHeartbeatTimeout(s.pingTimeoutTimer.Load())
	if s.ReadyState() == "closed" {
		return
	}
	timer := setHeartbeatTimeout(func() {
		if s.ReadyState() == "closed" {
			return
		}
		s.OnClose("ping timeout")
	}, s.resetPingTimeoutDuration())
	s.pingTimeoutTimer.Store(timer)
	if s.ReadyState() == "closed" {
		clearHeartbeatTimeout(timer)
	}
}
func (s *socket) resetPingTimeoutDuration() time.Duration {
	if s.protocol == 3 {
		return s.server.Opts().PingInterval() + s.server.Opts().PingTimeout()
	}
	return s.server.Opts().PingTimeout()
}

// Attaches handlers for the given transport.
func (s *socket) setTransport(transport transports.Transport) {
	onError := func(err ...any) {
		s.onError(slices.TryGetAny[error](err, 0))
	}
	onReady := func(...any) { s.flush() }
	onPacket := func(packets ...any) {
		s.onPacket(slices.TryGetAny[*packet.Packet](packets, 0))
	}
	onDrain := func(...any) { s.onDrain() }
	onClose := func(...any) { s.OnClose("transport close") }

	s.transport.Store(&transport)

	_ = transport.Once("error", onError)
	_ = transport.On("packet", onPacket)
	_ = transport.Once("close", onClose)
	// PATCH(auraos): a websocket calls the drain and ready handlers
	// directly (see its SetSendHooks); other transports emit them.
	hooked, _ := transport.(interface{ SetSendHooks(drain, ready func()) })
	if hooked != nil {
		hooked.SetSendHooks(s.onDrain, s.flush)
	} else {
		_ = transport.On("ready", onReady)
		_ = transport.On("drain", onDrain)
	}

	s.cleanupFn.Push(func() {
		transport.RemoveListener("error", onError)
		transport.RemoveListener("packet", onPacket)
		transport.RemoveListener("close", onClose)
		if hooked != nil {
			hooked.SetSendHooks(nil, nil)
		} else {
			transport.RemoveListener("ready", onReady)
			transport.RemoveListener("drain", onDrain)
		}
	})
	// Closing can finish before the listener cleanup is published.
	if s.ReadyState() == "closed" {
		s.clearTransport()
	}
}

// Upon transport "drain" event
func (s *socket) onDrain() {
	if seqFn, err := s.sentCallbackFn.Shift(); err == nil {
		socketLog.Debug("executing batch send callback")
		for _, fn := range seqFn {
			fn(s.Transport())
		}
	}
}

// Upgrades socket to the given transport
func (s *socket) MaybeUpgrade(transport transports.Transport) {
	socketLog.Debug(`might upgrade socket transport from "%s" to "%s"`, s.Transport().Name(), transport.Name())

	s.upgrading.Store(true)

	var check, cleanup func()
	var onPacket, onError, onTransportClose, onClose types.EventListener
	var upgradeTimeoutTimer, checkIntervalTimer atomic.Pointer[utils.Timer]

	onPacket = func(datas ...any) {
		data, ok := datas[0].(*packet.Packet)
		if !ok {
			return
		}
		sb := new(strings.Builder)
		_, _ = io.Copy(sb, data.Data)
		if data.Type == packet.PING && sb.String() == "probe" {
			socketLog.Debug("got probe ping packet, sending pong")
			transport.Send([]*packet.Packet{{Type: packet.PONG, Data: strings.NewReader("probe")}})
			s.Emit("upgrading", transport)

			utils.ClearInterval(checkIntervalTimer.Load())
			checkIntervalTimer.Store(utils.SetInterval(check, DefaultUpgradeCheckInterval))

		} else if packet.UPGRADE == data.Type && s.ReadyState() != "closed" {
			socketLog.Debug("got upgrade packet - upgrading")
			cleanup()
			s.Transport().Discard()

			s.upgraded.Store(true)

			s.clearTransport()
			s.setTransport(transport)
			s.Emit("upgrade", transport)
			s.flush()
			if s.ReadyState() == "closing" {
				transport.Close(func() {
					s.OnClose("forced close")
				})
			}
		} else {
			cleanup()
			transport.Close()
		}
	}

	// we force a polling cycle to ensure a fast upgrade
	check = func() {
		if transports.POLLING == s.Transport().Name() && s.Transport().Writable() {
			socketLog.Debug("writing a noop packet to polling for fast upgrade")
			s.Transport().Send([]*packet.Packet{{Type: packet.NOOP}})
		}
	}

	cleanup = func() {
		s.upgrading.Store(false)

		utils.ClearInterval(checkIntervalTimer.Load())
		utils.ClearTimeout(upgradeTimeoutTimer.Load())

		transport.RemoveListener("packet", onPacket)
		transport.RemoveListener("close", onTransportClose)
		transport.RemoveListener("error", onError)
		s.RemoveListener("close", onClose)
	}

	onError = func(errs ...any) {
		socketLog.Debug("client did not complete upgrade - %v", slices.TryGetAny[error](errs, 0))
		cleanup()
		transport.Close()
	}

	onTransportClose = func(...any) {
		onError("transport closed")
	}

	onClose = func(...any) {
		onError("socket closed")
	}

	// set transport upgrade timer
	upgradeTimeoutTimer.Store(utils.SetTimeout(func() {
		socketLog.Debug("client did not complete upgrade - closing transport")
		cleanup()
		transport.Close()
	}, s.server.Opts().UpgradeTimeout()))

	_ = transport.On("packet", onPacket)
	_ = transport.Once("close", onTransportClose)
	_ = transport.Once("error", onError)

	_ = s.Once("close", onClose)
	// A startup deadline may have closed the candidate before these listeners
	// were installed. Do not leave a dead candidate marked as upgrading.
	if state := transport.ReadyState(); state == "closing" || state == "closed" || s.ReadyState() == "closed" {
		cleanup()
		transport.Close()
	}
}

// Clears listeners and timers associated with current transport.
func (s *socket) clearTransport() {
	s.cleanupFn.DoWrite(func(cleanups []types.Callable) []types.Callable {
		for _, cleanup := range cleanups {
			cleanup()
		}
		return cleanups[:0]
	})

	// silence further transport errors and prevent uncaught exceptions
	_ = s.Transport().On("error", func(...any) {
		socketLog.Debug("error triggered by discarded transport")
	})

	// ensure transport won't stay open
	s.Transport().Close()

	clearHeartbeatTimeout(s.pingTimeoutTimer.Load())
}

// Called upon transport considered closed.
// Possible reasons: `ping timeout`, `client error`, `parse error`,
// `transport error`, `server close`, `transport close`
func (s *socket) OnClose(reason string, description ...error) {
	if s.readyState.Swap("closed") != "closed" {
		description = append(description, nil)

		// clear timers
		clearHeartbeatTimeout(s.pingIntervalTimer.Load())

		clearHeartbeatTimeout(s.pingTimeoutTimer.Load())

		// clean writeBuffer in defer, so developers can still
		// grab the writeBuffer on 'close' event
		defer s.writeBuffer.Clear()

		s.packetsFn.Clear()

		s.sentCallbackFn.Clear()

		s.clearTransport()
		s.Emit("close", reason, description[0])
	}
}

// Sends a message packet.
func (s *socket) Send(
	data io.Reader,
	options *packet.Options,
	callback SendCallback,
) Socket {
	s.sendPacket(packet.MESSAGE, data, options, callback)
	return s
}

// Alias of [Send]
func (s *socket) Write(
	data io.Reader,
	options *packet.Options,
	callback SendCallback,
) Socket {
	s.sendPacket(packet.MESSAGE, data, options, callback)
	return s
}

// Sends a packet.
func (s *socket) sendPacket(
	packetType packet.Type,
	data io.Reader,
	options *packet.Options,
	callback SendCallback,
) {
	if readystate := s.ReadyState(); readystate != "closing" && readystate != "closed" {
		if log.DEBUG.Load() { // PATCH(auraos): the arguments are allocations
			socketLog.Debug(`sending packet "%s" (%p)`, packetType, data)
		}

		// PATCH(auraos): the packet, its options and its compress flag in one
		// allocation (upstream made three), and packetCreate emitted only
		// when someone listens (its argument list is an allocation too).
		//
		// Clone options to avoid data races when the same Options pointer
		// is shared across multiple sockets during broadcast.
		q := &queuedPacket{}
		opts := &q.opts
		q.compress = true
		if options != nil {
			opts.WsPreEncodedFrame = options.WsPreEncodedFrame
			if options.Compress != nil {
				q.compress = *options.Compress
			}
		}
		opts.Compress = &q.compress

		packet := &q.packet
		packet.Type, packet.Data, packet.Options = packetType, data, opts

		// exports packetCreate event
		if s.ListenerCount("packetCreate") > 0 {
			s.Emit("packetCreate", packet)
		}

		size := packetSize(packet) // PATCH(auraos): before a flush may hand it to the transport
		s.writeBuffer.Push(packet)
		s.queued(size)

		// add send callback to object, if defined
		if callback != nil {
			s.packetsFn.Push(callback)
		}

		s.flush()
	}
}

// Attempts to flush the packets buffer.
func (s *socket) flush() {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()

	if s.ReadyState() != "closed" && s.Transport().Writable() {
		if wbuf := s.writeBuffer.AllAndClear(); len(wbuf) > 0 {
			s.handedOver(wbuf) // PATCH(auraos)
			clear(s.out.state)
			s.out.states.Store(0)
			socketLog.Debug("flushing buffer to transport")
			// PATCH(auraos): flush and drain emitted only when someone listens.
			if s.ListenerCount("flush") > 0 {
				s.Emit("flush", wbuf)
			}
			if s.server.ListenerCount("flush") > 0 {
				s.server.Emit("flush", s, wbuf)
			}
			if packetsFn := s.packetsFn.AllAndClear(); len(packetsFn) > 0 {
				s.sentCallbackFn.Push(packetsFn)
			} else {
				s.sentCallbackFn.Push(nil)
			}
			s.Transport().Send(wbuf)
			if s.ListenerCount("drain") > 0 {
				s.Emit("drain")
			}
			if s.server.ListenerCount("drain") > 0 {
				s.server.Emit("drain", s)
			}
		}
	}
}

// Get available upgrades for this socket.
func (s *socket) getAvailableUpgrades() []string {
	availableUpgrades := []string{}
	for _, upg := range s.server.Upgrades(s.Transport().Name()) {
		if s.server.Transports().Has(upg) && (s.protocol == 4 || upg != transports.WEBTRANSPORT) {
			availableUpgrades = append(availableUpgrades, upg)
		}
	}
	return availableUpgrades
}

// Closes the socket and underlying transport.
func (s *socket) Close(discard bool) {
	if discard {
		if state := s.ReadyState(); state == "open" || state == "closing" {
			// The transport may have closed before its listeners were installed.
			// Finalize the socket even when Transport.Close cannot call back.
			s.Transport().Discard()
			s.OnClose("forced close")
		}
		return
	}

	if !s.readyState.CompareAndSwap("open", "closing") {
		return
	}

	if length := s.writeBuffer.Len(); length > 0 {
		socketLog.Debug("there are %d remaining packets in the buffer, waiting for the 'drain' event", length)
		_ = s.Once("drain", func(...any) {
			socketLog.Debug("all packets have been sent, closing the transport")
			s.closeTransport()
		})
		return
	}

	socketLog.Debug("the buffer is empty, closing the transport right away")
	s.closeTransport()
}

// Closes the underlying transport.
func (s *socket) closeTransport() {
	socketLog.Debug("closing the transport")
	s.Transport().Close(func() { s.OnClose("forced close") })
}
