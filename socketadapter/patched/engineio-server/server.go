// Package engine provides the Engine.IO server implementation, including HTTP/WebSocket/WebTransport handling and protocol management.
package engine

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/quic-go/webtransport-go"
	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/parsers/engine/v3/parser"
	"github.com/zishang520/socket.io/servers/engine/v3/config"
	"github.com/zishang520/socket.io/servers/engine/v3/emitter"
	"github.com/zishang520/socket.io/servers/engine/v3/errors"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/v3/pkg/types"
	"github.com/zishang520/socket.io/v3/pkg/utils"
	webtrans "github.com/zishang520/socket.io/v3/pkg/webtransport"
)

// wsWriteBufferPool lends websocket connections their write buffer for the
// length of one message instead of for their whole life. PATCH(auraos):
// upstream keeps a buffer per connection; idle connections, the common case
// of a realtime server, then hold memory they do not use. A busy connection
// takes a buffer from the pool for each frame and gives it back at once.
var wsWriteBufferPool = &sync.Pool{}

const (
	// DefaultWSReadBufferSize is the default read buffer size for WebSocket connections.
	DefaultWSReadBufferSize = 1024

	// DefaultWSWriteBufferSize is the default write buffer size for WebSocket connections.
	DefaultWSWriteBufferSize = 1024
)

type server struct {
	BaseServer

	httpServer *types.HttpServer

	// PATCH(auraos): waits for the websockets to become readable (see
	// transports/pollconn.go); stopped by Cleanup, when the server closes.
	poller transports.Poller
}

// new server.
func MakeServer() Server {
	s := &server{BaseServer: MakeBaseServer()}

	s.Prototype(s)

	return s
}

// create server.
func NewServer(opt any) Server {
	s := MakeServer()

	s.Construct(opt)

	return s
}

func (s *server) SetHttpServer(httpServer *types.HttpServer) {
	s.httpServer = httpServer
}

func (s *server) HttpServer() *types.HttpServer {
	return s.httpServer
}

func (s *server) Init() {
}

func (s *server) Cleanup() {
	s.poller.Stop() // PATCH(auraos): the poller's goroutine ends with the server
}

func (s *server) CreateTransport(transportName string, ctx *types.HttpContext) (transports.Transport, error) {
	if transport, ok := s.TransportsByName()[transportName]; ok {
		return transport.New(ctx), nil
	}
	return nil, errors.ErrUnsupportedTransport
}

// Handles an Engine.IO HTTP request.
func (s *server) HandleRequest(ctx *types.HttpContext) {
	serverLog.Debug(`handling "%s" http request "%s"`, ctx.Method(), ctx.Request().RequestURI)

	callback := func(codeMessage *types.CodeMessage, errorContext map[string]any) {
		if ctx.IsDone() || ctx.Context().Err() != nil {
			return
		}
		if codeMessage != nil {
			s.emitAbortRequest(ctx, codeMessage, errorContext)
			return
		}

		if sid := ctx.Query().Peek("sid"); sid != "" {
			serverLog.Debug("setting new request for existing client")
			if socket, ok := s.Clients().Load(sid); ok {
				socket.Transport().OnRequest(ctx)
			} else {
				abortRequest(ctx, UNKNOWN_SID, map[string]any{"sid": sid})
			}
		} else {
			if codeMessage, t := s.Proto().Handshake(ctx.Query().Peek("transport"), ctx); t == nil {
				abortRequest(ctx, codeMessage, nil)
			}
		}
	}

	s.Proto().ApplyMiddlewares(ctx, func(err error) {
		// Middleware may resume after the response ended or the request was canceled.
		if ctx.IsDone() || ctx.Context().Err() != nil {
			return
		}
		if err != nil {
			callback(BAD_REQUEST, map[string]any{"name": "MIDDLEWARE_FAILURE"})
		} else {
			callback(s.Proto().Verify(ctx, false))
		}
	})

	// Wait for data to be written to the client.
	<-ctx.Done()
}

// Handles an Engine.IO HTTP Upgrade.
func (s *server) HandleUpgrade(ctx *types.HttpContext) {
	callback := func(codeMessage *types.CodeMessage, errorContext map[string]any) {
		if ctx.IsDone() || ctx.Context().Err() != nil {
			return
		}
		if codeMessage != nil {
			s.emitAbortUpgrade(ctx, codeMessage, errorContext)
			return
		}

		wsc := &types.WebSocketConn{EventEmitter: emitter.New()} // PATCH(auraos): see the emitter package

		ws := &websocket.Upgrader{
			ReadBufferSize:    DefaultWSReadBufferSize,
			WriteBufferSize:   DefaultWSWriteBufferSize,
			WriteBufferPool:   wsWriteBufferPool, // PATCH(auraos): see the variable
			EnableCompression: s.Opts().PerMessageDeflate() != nil,
			Error: func(_ http.ResponseWriter, _ *http.Request, _ int, reason error) {
				// response is written by emitAbortRequest below
				wsc.Emit("error", reason)
			},
		}

		if cors := s.Opts().Cors(); cors != nil && cors.Origin != nil {
			ws.CheckOrigin = func(r *http.Request) bool {
				origin := r.Header.Get("Origin")
				if origin == "" {
					return true
				}
				return cors.IsOriginAllowed(origin, cors.Origin)
			}
		}

		// PATCH(auraos): the hijacked connection becomes a polled one where
		// it can (see transports/pollconn.go).
		var w http.ResponseWriter = ctx.Response()
		if hj, ok := w.(http.Hijacker); ok {
			w = &pollHijacker{ResponseWriter: w, hj: hj, s: s, up: ws}
		}

		// delegate to ws
		if conn, err := ws.Upgrade(w, ctx.Request(), ctx.ResponseHeaders().All()); err != nil {
			s.emitAbortRequest(ctx, BAD_REQUEST, map[string]any{"name": "UPGRADE_FAILURE"})
			serverLog.Debug("websocket error before upgrade: %s", err.Error())
		} else {
			conn.SetReadLimit(s.Opts().MaxHttpBufferSize())
			wsc.Conn = conn
			s.onWebSocket(ctx, wsc)
		}
	}

	s.Proto().ApplyMiddlewares(ctx, func(err error) {
		// Middleware may resume after the response ended or the request was canceled.
		if ctx.IsDone() || ctx.Context().Err() != nil {
			return
		}
		if err != nil {
			callback(BAD_REQUEST, map[string]any{"name": "MIDDLEWARE_FAILURE"})
		} else {
			callback(s.Proto().Verify(ctx, true))
		}
	})
}

// pollHijacker wraps the connection gorilla hijacks in a transports.PollConn
// when the server's poller can wait for it (PATCH(auraos)), and then gives
// gorilla the small read buffer a polled connection needs: its reads go
// through the PollConn's lent buffer. The server's idle timeout (120 s by
// default) is a read deadline over the whole wait, which a poller does not
// have; the heartbeat (45 s by default) closes a silent connection before,
// so only an idle timeout shorter than the heartbeat keeps connections on a
// reading goroutine of their own.
type pollHijacker struct {
	http.ResponseWriter
	hj http.Hijacker
	s  *server
	up *websocket.Upgrader
}

func (h *pollHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := h.hj.Hijack()
	if err != nil {
		return c, brw, err
	}
	// The heartbeat gives up on a silent client after this long; a reading
	// goroutine waits at most as long for the rest of a frame.
	heartbeat := h.s.Opts().PingInterval() + h.s.Opts().PingTimeout()
	if heartbeat <= 0 {
		return c, brw, nil
	}
	if idle := h.s.Opts().IdleTimeout(); idle > 0 && idle < heartbeat {
		// Only a reading goroutine's deadline closes a connection silent
		// for less than the heartbeat allows.
		return c, brw, nil
	}
	stall := heartbeat
	if pc := h.s.poller.Wrap(c, stall); pc != nil {
		h.up.ReadBufferSize = transports.PollReadBufferSize // read by Upgrade after the hijack
		return pc, brw, nil
	}
	return c, brw, nil
}

// Called upon a ws.io connection.
func (s *server) onWebSocket(ctx *types.HttpContext, wsc *types.WebSocketConn) {
	onUpgradeError := func(...any) {
		serverLog.Debug("websocket error before upgrade")
		// wsc.close() not needed
	}

	_ = wsc.On("error", onUpgradeError)

	transportName := ctx.Query().Peek("transport")
	if transport, ok := s.TransportsByName()[transportName]; ok && !transport.HandlesUpgrades() {
		serverLog.Debug("transport doesnt handle upgraded requests")
		_ = wsc.Close()
		return
	}

	// get client id
	id := ctx.Query().Peek("sid")

	// keep a reference to the ws.Socket
	ctx.Websocket = wsc

	if len(id) == 0 {
		if codeMessage, t := s.Proto().Handshake(transportName, ctx); t == nil {
			abortUpgrade(ctx, codeMessage, nil)
		} else {
			// transport error handling takes over
			wsc.RemoveListener("error", onUpgradeError)
		}
		return
	}

	client, ok := s.Clients().Load(id)

	if !ok {
		serverLog.Debug("upgrade attempt for closed client")
		_ = wsc.Close()
	} else if client.Upgrading() {
		serverLog.Debug("transport has already been trying to upgrade")
		_ = wsc.Close()
	} else if client.Upgraded() {
		serverLog.Debug("transport had already been upgraded")
		_ = wsc.Close()
	} else {
		serverLog.Debug("upgrading existing transport")

		// transport error handling takes over
		wsc.RemoveListener("error", onUpgradeError)

		s.prepareUpgrade(transportName, ctx, client)
	}
}

func (s *server) prepareUpgrade(transportName string, ctx *types.HttpContext, client Socket) {
	ctx.IdleTimeout = s.Opts().IdleTimeout()
	var transport transports.Transport
	if !withTransportInitialization(ctx, s.Opts().UpgradeTimeout(), func(aborted func() bool) bool {
		var err error
		transport, err = s.Proto().CreateTransport(transportName, ctx)
		if err != nil {
			serverLog.Debug("upgrading not existing transport")
			return false
		}
		if state := transport.ReadyState(); aborted() || state == "closing" || state == "closed" {
			return false
		}
		transport.SetPerMessageDeflate(s.Opts().PerMessageDeflate())
		client.MaybeUpgrade(transport)
		return true
	}) && transport != nil {
		transport.Close()
	}
}

func (s *server) OnWebTransportSession(ctx *types.HttpContext, wt *webtransport.Server) {
	if allowRequest := s.Opts().AllowRequest(); allowRequest != nil {
		if err := allowRequest(ctx); err != nil {
			s.emitAbortRequest(ctx, FORBIDDEN, map[string]any{"message": err.Error()})
			return
		}
	}

	// Validate Engine CORS per request without changing the shared WT server's
	// origin policy, which belongs to its caller and is configured before serving.
	if cors := s.Opts().Cors(); cors != nil && cors.Origin != nil {
		origin := ctx.Request().Header.Get("Origin")
		if origin != "" && !cors.IsOriginAllowed(origin, cors.Origin) {
			s.emitAbortRequest(ctx, FORBIDDEN, map[string]any{"message": "origin not allowed"})
			return
		}
	}

	session, err := wt.Upgrade(ctx.Response(), ctx.Request())
	if err != nil {
		serverLog.Debug("upgrading failed: %s", err.Error())
		s.emitAbortRequest(ctx, BAD_REQUEST, map[string]any{"name": "UPGRADE_FAILURE"})
		return
	}

	timeout := utils.SetTimeout(func() {
		serverLog.Debug("the client failed to establish a bidirectional stream in the given period")
		_ = session.CloseWithError(0, "")
	}, s.Opts().UpgradeTimeout())
	defer utils.ClearTimeout(timeout)

	stream, err := session.AcceptStream(ctx.Context())
	if err != nil {
		serverLog.Debug("accepting WebTransport stream failed: %s", err.Error())
		_ = session.CloseWithError(http.StatusBadRequest, BAD_REQUEST.Message)
		return
	}

	wtc := webtrans.NewConn(session, stream, true, 0, 0, nil, nil, nil)
	wtc.SetReadLimit(s.Opts().MaxHttpBufferSize())

	ctx.WebTransport = &types.WebTransportConn{EventEmitter: emitter.New(), Conn: wtc} // PATCH(auraos): see the emitter package

	if s.Opts().IdleTimeout() > 0 {
		_ = wtc.SetReadDeadline(time.Now().Add(s.Opts().IdleTimeout()))
	}

	mt, message, err := wtc.NextReader()
	if err != nil {
		serverLog.Debug("stream is closed: %s", err.Error())
		abortUpgrade(ctx, BAD_REQUEST, nil)
		return
	}

	var data types.BufferInterface

	switch mt {
	case webtrans.BinaryMessage:
		data = types.NewBytesBuffer(nil)
		if _, err := data.ReadFrom(message); err != nil {
			serverLog.Debug("WebTransport handshake data read failed: %s", err.Error())
			abortUpgrade(ctx, BAD_REQUEST, nil)
			return
		}
	case webtrans.TextMessage:
		data = types.NewStringBuffer(nil)
		if _, err := data.ReadFrom(message); err != nil {
			serverLog.Debug("WebTransport handshake data read failed: %s", err.Error())
			abortUpgrade(ctx, BAD_REQUEST, nil)
			return
		}
	}
	if c, ok := message.(io.Closer); ok {
		_ = c.Close()
	}

	utils.ClearTimeout(timeout)

	value, _ := parser.Parserv4().DecodePacket(data)

	if v, ok := value.Data.(io.Closer); ok {
		defer func() { _ = v.Close() }()
	}

	if value.Type != packet.OPEN {
		serverLog.Debug("invalid WebTransport handshake")
		abortUpgrade(ctx, BAD_REQUEST, nil)
		return
	}

	// WebTransport uses protocol v4 for both new sessions and upgrades.
	ctx.Query().Set("EIO", "4")
	if data, ok := value.Data.(types.BufferInterface); ok && data.Len() == 0 {
		if codeMessage, t := s.Proto().Handshake(transports.WEBTRANSPORT, ctx); t == nil {
			abortUpgrade(ctx, codeMessage, nil)
		}
		return
	}

	var wth struct {
		Sid string `json:"sid"`
	}

	decoder := json.NewDecoder(value.Data)
	if decoder.Decode(&wth) != nil || decoder.Decode(&struct{}{}) != io.EOF {
		serverLog.Debug("invalid WebTransport handshake")
		abortUpgrade(ctx, BAD_REQUEST, nil)
		return
	}

	if len(wth.Sid) == 0 {
		serverLog.Debug("invalid WebTransport handshake")
		abortUpgrade(ctx, BAD_REQUEST, nil)
		return
	}

	client, ok := s.Clients().Load(wth.Sid)

	if !ok {
		serverLog.Debug("upgrade attempt for closed client")
		_ = session.CloseWithError(0, "")
	} else if client.Protocol() != 4 {
		serverLog.Debug("WebTransport requires protocol version 4")
		_ = session.CloseWithError(0, "")
	} else if client.Upgrading() {
		serverLog.Debug("transport has already been trying to upgrade")
		_ = session.CloseWithError(0, "")
	} else if client.Upgraded() {
		serverLog.Debug("transport had already been upgraded")
		_ = session.CloseWithError(0, "")
	} else {
		serverLog.Debug("upgrading existing transport")

		s.prepareUpgrade(transports.WEBTRANSPORT, ctx, client)
	}
}

// Captures upgrade requests for a types.HttpServer.
func (s *server) Attach(server *types.HttpServer, opts any) {
	options, _ := opts.(config.AttachOptionsInterface)
	path := s.ComputePath(options)

	_ = server.Once("close", func(...any) {
		s.Close()
	})

	_ = server.Once("listening", func(...any) {
		s.Proto().Init()
	})

	server.HandleFunc(path, s.ServeHTTP)
}

// Captures upgrade requests for a http.Handler, Need to handle server shutdown disconnecting client connections.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !websocket.IsWebSocketUpgrade(r) {
		serverLog.Debug(`intercepting request for path "%s"`, utils.CleanPath(r.URL.Path))
		s.HandleRequest(types.NewHttpContext(w, r))
	} else if s.Transports().Has(transports.WEBSOCKET) {
		s.HandleUpgrade(types.NewHttpContext(w, r))
	} else {
		http.Error(w, "Not Implemented", http.StatusNotImplemented)
	}
}

// Close the HTTP long-polling request
func abortRequest(ctx *types.HttpContext, codeMessage *types.CodeMessage, errorContext map[string]any) {
	serverLog.Debug("abortRequest %d, %+v", codeMessage.Code, errorContext)
	statusCode := http.StatusBadRequest
	if codeMessage == FORBIDDEN {
		statusCode = http.StatusForbidden
	}
	message := codeMessage.Message
	if errorContext != nil {
		if m, ok := errorContext["message"]; ok {
			message = utils.TryCast[string](m)
		}
	}
	ctx.ResponseHeaders().Set("Content-Type", "application/json")
	_ = ctx.SetStatusCode(statusCode)
	if b, err := json.Marshal(types.CodeMessage{Code: codeMessage.Code, Message: message}); err == nil {
		_, _ = ctx.Write(b)
		return
	}
	_, _ = io.WriteString(ctx, `{"code":400,"message":"Bad request"}`)
}

func (s *server) emitAbortRequest(ctx *types.HttpContext, codeMessage *types.CodeMessage, errorContext map[string]any) {
	s.Emit("connection_error", &types.ErrorMessage{
		CodeMessage: codeMessage,
		Req:         ctx,
		Context:     errorContext,
	})
	abortRequest(ctx, codeMessage, errorContext)
}

// Close the WebSocket connection
func abortUpgrade(ctx *types.HttpContext, codeMessage *types.CodeMessage, errorContext map[string]any) {
	_ = ctx.On("error", func(...any) {
		serverLog.Debug("ignoring error from closed connection")
	})

	message := codeMessage.Message
	if errorContext != nil {
		if m, ok := errorContext["message"]; ok {
			message = utils.TryCast[string](m)
		}
	}

	if ctx.Websocket != nil {
		defer func() { _ = ctx.Websocket.Close() }()
		_ = ctx.Websocket.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, message))
	} else if ctx.WebTransport != nil {
		_ = ctx.WebTransport.CloseWithError(http.StatusBadRequest, message)
	} else {
		_ = ctx.SetStatusCode(http.StatusBadRequest)
		_, _ = io.WriteString(ctx, message)
	}
}

func (s *server) emitAbortUpgrade(ctx *types.HttpContext, codeMessage *types.CodeMessage, errorContext map[string]any) {
	s.Emit("connection_error", &types.ErrorMessage{
		CodeMessage: codeMessage,
		Req:         ctx,
		Context:     errorContext,
	})
	abortUpgrade(ctx, codeMessage, errorContext)
}
