// Package transports implements the WebSocket transport for Engine.IO.
package transports

import (
	"errors"
	"io"
	"net"
	"runtime"
	"sync/atomic"
	"time"

	ws "github.com/gorilla/websocket"
	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/v3/pkg/log"
	"github.com/zishang520/socket.io/v3/pkg/queue"
	"github.com/zishang520/socket.io/v3/pkg/slices"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

var wsLog = log.NewLog("engine:ws")

type websocket struct {
	Transport

	idleTimeout time.Duration

	socket     *types.WebSocketConn
	writeQueue *queue.Queue
	// PATCH(auraos): the connection's WriteBatcher, nil when it has none
	// (see writebatch.go).
	batcher WriteBatcher

	hooks atomic.Pointer[sendHooks] // PATCH(auraos): see SetSendHooks

	// PATCH(auraos): the connection when the server's Poller waits for it
	// (pollconn.go); nil when this transport reads on a goroutine of its own.
	poll *PollConn
	// readBy is when the read deadline of a polled read runs out.
	readBy time.Time
}

// sendHooks are the socket's drain and ready handlers, called directly.
type sendHooks struct{ drain, ready func() }

// SetSendHooks makes every send call drain and ready directly, where
// upstream emitted "drain" and "ready" to listeners (PATCH(auraos)): the
// Engine.IO socket is their only listener, and an emit with listeners
// copies its listener list and runs each behind a recover, twice per send
// to every socket. Nil hooks stop the calls; listeners added with On still
// get the events.
func (w *websocket) SetSendHooks(drain, ready func()) {
	if drain == nil && ready == nil {
		w.hooks.Store(nil)
		return
	}
	w.hooks.Store(&sendHooks{drain: drain, ready: ready})
}

// WebSocket transport
func MakeWebSocket() Websocket {
	w := &websocket{Transport: MakeTransport()}

	w.Prototype(w)

	return w
}

func NewWebSocket(ctx *types.HttpContext) Websocket {
	w := MakeWebSocket()

	w.Construct(ctx)

	return w
}

func (w *websocket) Construct(ctx *types.HttpContext) {
	w.Transport.Construct(ctx)

	w.idleTimeout = ctx.IdleTimeout
	w.socket = ctx.Websocket
	w.writeQueue = queue.New()

	_ = w.socket.On("error", func(errs ...any) {
		w.OnError("websocket error", slices.TryGetAny[error](errs, 0))
	})
	_ = w.socket.Once("close", func(...any) {
		w.OnClose()
	})

	w.SetWritable(true)
	w.SetPerMessageDeflate(nil)

	w.batcher = writeBatcher(w.socket.NetConn()) // PATCH(auraos): see send

	// PATCH(auraos): a polled connection (see pollconn.go) waits for the
	// server's poller instead of on a reading goroutine of its own. The
	// server polls only connections whose heartbeat ends sooner than the
	// idle timeout, which a poller does not keep (see pollHijacker).
	if pc, ok := w.socket.NetConn().(*PollConn); ok {
		w.poll = pc
		StartReader(w, ctx.TransportReadPermission(), w.startPolling)
		return
	}
	StartReader(w, ctx.TransportReadPermission(), w.message)
}

// Transport name
func (w *websocket) Name() string {
	return WEBSOCKET
}

// Advertise upgrade support.
func (w *websocket) HandlesUpgrades() bool {
	return true
}

func (w *websocket) _error(err error) {
	if ws.IsUnexpectedCloseError(err) || errors.Is(err, net.ErrClosed) {
		w.socket.Emit("close")
	} else {
		w.socket.Emit("error", err)
	}
}

// Receiving Messages
func (w *websocket) message() {
	// Guarantee cleanup on any exit path — covers errors that _error()
	// routes as "error" (not "close") on the socket and any future paths
	// that return without calling _error at all.
	defer w.readerDone()

	for {
		if w.idleTimeout > 0 {
			_ = w.socket.SetReadDeadline(time.Now().Add(w.idleTimeout))
		}
		if !w.readMessage() {
			return
		}
	}
}

// readerDone closes the connection when reading ends, unless it is closing.
func (w *websocket) readerDone() {
	if !w.writeQueue.IsShuttingDown() {
		w.socket.Emit("close")
	}
}

// startPolling hands the connection to the server's poller (PATCH(auraos)).
// If the poller is gone, this goroutine reads as upstream's does.
func (w *websocket) startPolling() {
	if err := w.poll.start(w.pollRead); err != nil {
		wsLog.Debug("websocket not polled: %v", err)
		if errors.Is(err, errPollerClosed) {
			w.poll.readPlain()
			w.message() // with the idle timeout the poll went without
			return
		}
		w.readerDone()
	}
}

// pollRead runs on a goroutine of its own when the polled connection is
// readable (PATCH(auraos)): it reads messages until nothing read is left
// unhandled, then arms the connection again. A client that stops in the
// middle of a frame holds it for the poll's stall time at most.
func (w *websocket) pollRead() {
	pc := w.poll
	pc.readMu.Lock()
	for {
		// Refresh the deadline when half of it has passed: once per
		// message would be a timer update per message.
		if now := time.Now(); w.readBy.Sub(now) < pc.stall/2 {
			w.readBy = now.Add(pc.stall)
			_ = w.socket.SetReadDeadline(w.readBy)
		}
		if !w.readMessage() {
			pc.readMu.Unlock()
			w.readerDone()
			return
		}
		if pc.drained() {
			break
		}
	}
	// An idle connection keeps no deadline (and no runtime timer).
	w.readBy = time.Time{}
	_ = w.socket.SetReadDeadline(time.Time{})
	pc.readMu.Unlock()
	if err := pc.arm(); err != nil {
		wsLog.Debug("websocket not armed: %v", err)
		w.readerDone()
	}
}

// readMessage reads and handles one message, and reports whether to read on.
func (w *websocket) readMessage() bool {
	mt, message, err := w.socket.NextReader()
	if err != nil {
		w._error(err)
		return false
	}

	switch mt {
	case ws.BinaryMessage:
		read := types.NewBytesBuffer(nil)
		if _, err := read.ReadFrom(message); err != nil {
			w._error(err)
		} else {
			w.onMessage(read)
		}
	case ws.TextMessage:
		read := types.NewStringBuffer(nil)
		if _, err := read.ReadFrom(message); err != nil {
			w._error(err)
		} else {
			w.onMessage(read)
		}
	case ws.CloseMessage:
		w.socket.Emit("close")
		if c, ok := message.(io.Closer); ok {
			_ = c.Close()
		}
		return false
	case ws.PingMessage:
	case ws.PongMessage:
	}
	if c, ok := message.(io.Closer); ok {
		_ = c.Close()
	}
	return true
}

func (w *websocket) onMessage(data types.BufferInterface) {
	wsLog.Debug(`websocket received "%s"`, data)
	w.OnData(data)
}

// Writes a packet payload.
func (w *websocket) Send(packets []*packet.Packet) {
	w.SetWritable(false)
	w.writeQueue.Enqueue(func() { w.send(packets) })
}

// send runs exclusively on writeQueue, including its completion events.
func (w *websocket) send(packets []*packet.Packet) {
	defer func() {
		h := w.hooks.Load() // PATCH(auraos): see SetSendHooks
		if h != nil && h.drain != nil {
			h.drain()
		}
		if w.ListenerCount("drain") > 0 {
			w.Emit("drain")
		}
		w.SetWritable(true)
		if h != nil && h.ready != nil {
			h.ready()
		}
		if w.ListenerCount("ready") > 0 {
			w.Emit("ready")
		}
		w.releaseWrites() // PATCH(auraos)
	}()

	// PATCH(auraos): the frames of this batch are held, and leave with the
	// batches that follow it on this goroutine (see releaseWrites, run
	// last by the deferred function above).
	if w.batcher != nil {
		w.batcher.HoldWrites()
	}

	for _, packet := range packets {
		// always creates a new object since ws modifies it
		compress := true
		if packet.Options != nil {
			if packet.Options.Compress != nil && !*packet.Options.Compress {
				compress = false
			}

			if w.PerMessageDeflate() == nil && packet.Options.WsPreEncodedFrame != nil {
				mt := ws.BinaryMessage
				if _, ok := packet.Options.WsPreEncodedFrame.(*types.StringBuffer); ok {
					mt = ws.TextMessage
				}
				// PATCH(auraos): write the broadcast's pre-encoded frame with
				// WriteMessage, whose server fast path frames it in the
				// connection's (pooled) write buffer without allocating.
				// Upstream built a gorilla PreparedMessage for every socket: a
				// 4 KiB buffer and a throwaway connection per socket per packet.
				if err := w.socket.WriteMessage(mt, packet.Options.WsPreEncodedFrame.Bytes()); err != nil {
					wsLog.Debug(`Send Error "%s"`, err.Error())
					w._error(err)
					return
				}
				continue

			}
		}

		data, err := w.Parser().EncodePacket(packet, w.SupportsBinary())
		if err != nil {
			wsLog.Debug(`Send Error "%s"`, err.Error())
			w._error(err)
			return
		}
		w.write(data, compress)
	}
}

// gatherBelow bounds what a send's hold gathers: from this many bytes held
// it is written out even with more sends queued, so a socket under a steady
// stream is not held back until the connection's own bound.
const gatherBelow = 16 << 10

// releaseWrites ends a send's hold on its writes (PATCH(auraos)): upstream
// made one write system call per frame. The ready hook has just handed the
// packets queued meanwhile to Send, which queued the next send behind this
// one; while little is held, that send then runs on this goroutine and
// holds on, so its frames join these. When no send is queued, the
// goroutines that are ready run first (under load, broadcasts with more
// packets for this socket); then what is held is written, on this
// goroutine, in one system call.
func (w *websocket) releaseWrites() {
	b := w.batcher
	if b == nil {
		return
	}
	if b.Held() < gatherBelow {
		if w.writeQueue.Size() > 0 {
			return
		}
		runtime.Gosched()
		if w.writeQueue.Size() > 0 {
			return
		}
	}
	if err := b.ReleaseWrites(); err != nil {
		wsLog.Debug(`Send Error "%s"`, err.Error())
		w._error(err)
	}
}

func (w *websocket) write(data types.BufferInterface, compress bool) {
	if w.PerMessageDeflate() != nil {
		if data.Len() < w.PerMessageDeflate().Threshold {
			compress = false
		}
	}
	wsLog.Debug(`writing %#v`, data)

	w.socket.EnableWriteCompression(compress)
	mt := ws.BinaryMessage
	if _, ok := data.(*types.StringBuffer); ok {
		mt = ws.TextMessage
	}
	write, err := w.socket.NextWriter(mt)
	if err != nil {
		w._error(err)
		return
	}
	defer func() {
		if err := write.Close(); err != nil {
			w._error(err)
			return
		}
	}()
	if _, err := io.Copy(write, data); err != nil {
		w._error(err)
		return
	}
}

// OnClose releases the write queue and hijacked connection for every close path,
// including peer/error closes that bypass DoClose after the state becomes closed.
func (w *websocket) OnClose() {
	w.writeQueue.TryClose()
	w.Transport.OnClose()
	_ = w.socket.Close()
}

// Closes the transport.
func (w *websocket) DoClose(fn types.Callable) {
	wsLog.Debug(`closing`)
	w.writeQueue.TryClose()
	defer func() { _ = w.socket.Close() }()
	if fn != nil {
		fn()
	}
}
