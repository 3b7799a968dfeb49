package socket

import (
	"net/url"
	stdslices "slices"
	"sync"
	"sync/atomic"

	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/v3/pkg/log"
	"github.com/zishang520/socket.io/v3/pkg/types"
	"github.com/zishang520/socket.io/v3/pkg/utils"
)

var client_log = log.NewLog("socket.io:client")

// Client represents a Socket.IO client connection.
type Client struct {
	conn engine.Socket

	id      string
	server  *Server
	encoder parser.Encoder
	decoder parser.Decoder
	// PATCH(auraos): the sockets of the namespaces the client joined, in
	// one small list; see clientSockets.
	sockets        clientSockets
	connectTimeout atomic.Pointer[utils.Timer]
	closed         atomic.Bool

	mu sync.Mutex
}

// MakeClient creates a new Client instance.
func MakeClient() *Client {
	return &Client{}
}

// NewClient creates a new Client and initializes it with the given server and connection.
func NewClient(server *Server, conn engine.Socket) *Client {
	c := MakeClient()

	c.Construct(server, conn)

	return c
}

// Conn returns the underlying Engine.IO socket connection.
func (c *Client) Conn() engine.Socket {
	return c.conn
}

// Construct initializes the client with the given server and connection.
func (c *Client) Construct(server *Server, conn engine.Socket) {
	c.server = server
	c.conn = conn
	c.encoder = server.Encoder()
	c.decoder = server._parser.NewDecoder()
	c.id = conn.Id()
	c.setup()
}

// Request returns the reference to the request that originated the Engine.IO connection.
func (c *Client) Request() *types.HttpContext {
	return c.conn.Request()
}

// setup sets up event listeners for the client.
func (c *Client) setup() {
	_ = c.decoder.On("decoded", c.ondecoded)
	_ = c.conn.On("data", c.ondata)
	_ = c.conn.On("error", c.onerror)

	c.connectTimeout.Store(utils.SetTimeout(func() {
		if c.sockets.len() == 0 {
			client_log.Debug("no namespace joined yet, close the client")
			c.close()
		} else {
			client_log.Debug("the client has already joined a namespace, nothing to do")
		}
	}, c.server._connectTimeout))
	// Publish the timer before subscribing to close so teardown cannot miss a
	// timer installed later. Initialization may already have timed out.
	_ = c.conn.Once("close", c.onclose)
	if c.closed.Load() {
		// An immediate connect timeout can finish before its timer is stored.
		c.destroy()
	} else if c.conn.ReadyState() == "closed" {
		c.onclose("transport close")
	}
}

// connect connects a client to a namespace with optional auth parameters.
func (c *Client) connect(name string, auth map[string]any) {
	if _, ok := c.server._nsps.Load(name); ok {
		client_log.Debug("connecting to namespace %s", name)
		c.doConnect(name, auth)
		return
	}
	c.server._checkNamespace(name, auth, func(dynamicNspName Namespace) {
		if dynamicNspName != nil {
			c.doConnect(name, auth)
		} else {
			client_log.Debug("creation of namespace %s was denied", name)
			c._packet(&parser.Packet{
				Type: parser.CONNECT_ERROR,
				Nsp:  name,
				Data: map[string]any{
					"message": "Invalid namespace",
				},
			}, nil)
		}
	})
}

// doConnect connects a client to a namespace and adds the socket to the client.
func (c *Client) doConnect(name string, auth map[string]any) {
	nsp := c.server.Of(name, nil)
	nsp.Add(c, auth, func(socket *Socket) {
		c.sockets.add(socket)
		if connectTimeout := c.connectTimeout.Load(); connectTimeout != nil {
			utils.ClearTimeout(connectTimeout)
			c.connectTimeout.Store(nil)
		}
	})
}

// _disconnect disconnects from all namespaces and closes the transport.
func (c *Client) _disconnect() {
	for _, socket := range c.sockets.clear() {
		socket.Disconnect(false)
	}
	c.close()
}

// _remove removes a socket from the client. Called by each Socket.
func (c *Client) _remove(socket *Socket) {
	if !c.sockets.remove(socket.Id()) {
		client_log.Debug("ignoring remove for %s", socket.Id())
	}
}

// close closes the underlying connection.
func (c *Client) close() {
	if c.conn.ReadyState() == "open" {
		client_log.Debug("forcing transport close")
		c.conn.Close(false)
		c.onclose("forced server close")
	}
}

// _packet writes a packet to the transport.
func (c *Client) _packet(packet *parser.Packet, opts *WriteOptions) {
	if c.conn.ReadyState() != "open" {
		client_log.Debug("ignoring packet write %v", packet)
		return
	}

	if opts == nil {
		opts = &WriteOptions{}
	}

	c.WriteToEngine(c.encoder.Encode(packet), opts)
}

// WriteToEngine writes encoded packets to the Engine.IO transport.
func (c *Client) WriteToEngine(encodedPackets []types.BufferInterface, opts *WriteOptions) {
	c.mu.Lock()
	defer c.mu.Unlock()

	if opts.Volatile && !c.conn.Transport().Writable() {
		client_log.Debug("volatile packet is discarded since the transport is not currently writable")
		return
	}

	// PATCH(auraos): a websocket sends a broadcast's pre-encoded frame and
	// never reads the packet data, so it needs no copy of it per socket
	// (polling reads, and consumes, its own copy).
	shared := opts.WsPreEncodedFrame != nil && c.conn.Transport().Name() == "websocket"
	for _, encodedPacket := range encodedPackets {
		if shared {
			c.conn.Write(encodedPacket, &opts.Options, nil)
			continue
		}
		c.conn.Write(encodedPacket.Clone(), &opts.Options, nil)
	}
}

// ondata is called with incoming transport data.
func (c *Client) ondata(args ...any) {
	// error is needed for protocol violations (GH-1880)
	if err := c.decoder.Add(args[0]); err != nil {
		client_log.Debug("invalid packet format")
		c.onerror(err)
	}
}

// ondecoded is called when the parser fully decodes a packet.
func (c *Client) ondecoded(args ...any) {
	packet, _ := args[0].(*parser.Packet)
	var namespace string
	var authPayload map[string]any
	if c.conn.Protocol() == 3 {
		if parsed, err := url.Parse(packet.Nsp); err == nil {
			namespace = parsed.Path
			authPayload = utils.MapValues(parsed.Query(), func(value []string) any {
				return value
			})
		}
	} else {
		namespace = packet.Nsp
		authPayload, _ = packet.Data.(map[string]any)
	}
	socket, ok := c.sockets.inNamespace(namespace)
	if !ok && packet.Type == parser.CONNECT {
		c.connect(namespace, authPayload)
	} else if ok && packet.Type != parser.CONNECT && packet.Type != parser.CONNECT_ERROR {
		socket.Enqueue(func() { socket._onpacket(packet) })
	} else {
		client_log.Debug("invalid state (packet type: %s)", packet.Type.String())
		c.close()
	}
}

// onerror handles an error from the transport or parser.
func (c *Client) onerror(args ...any) {
	for _, socket := range c.sockets.snapshot() {
		socket._onerror(args[0])
	}
	c.conn.Close(false)
}

// onclose is called upon transport close.
func (c *Client) onclose(args ...any) {
	if !c.closed.CompareAndSwap(false, true) {
		return
	}
	client_log.Debug("client close with reason %v", args[0])

	// ignore a potential subsequent `close` event
	c.destroy()

	// `nsps` and `sockets` are cleaned up seamlessly
	// PATCH(auraos): close each socket on its task queue, behind the
	// packets it has yet to handle. Upstream closed it at once, so a client
	// that sends DISCONNECT (socket.disconnect()) and closes its transport
	// right after was often seen to drop ("transport close") instead of to
	// leave ("client namespace disconnect").
	for _, socket := range c.sockets.clear() {
		socket.Enqueue(func() { socket._onclose(args...) })
	}

	c.decoder.Destroy() // clean up decoder
}

// destroy cleans up event listeners and timers for the client.
func (c *Client) destroy() {
	c.conn.RemoveListener("data", c.ondata)
	c.conn.RemoveListener("error", c.onerror)
	c.conn.RemoveListener("close", c.onclose)
	c.decoder.RemoveListener("decoded", c.ondecoded)

	if connectTimeout := c.connectTimeout.Load(); connectTimeout != nil {
		utils.ClearTimeout(connectTimeout)
		c.connectTimeout.Store(nil)
	}
}

// clientSockets is a client's sockets, one for each namespace it joined
// (PATCH(auraos)). Upstream kept two concurrent maps per client, by socket
// id and by namespace name, about 600 bytes of every connection for the
// one or two sockets a client has; a short list behind a mutex serves
// both lookups.
type clientSockets struct {
	mu   sync.Mutex
	list []*Socket
}

// add keeps socket; a later socket of the same namespace is the one
// inNamespace finds, as upstream's map by name kept the last one stored.
func (cs *clientSockets) add(socket *Socket) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.list = append(cs.list, socket)
}

// remove drops the socket with id and reports whether it was kept.
func (cs *clientSockets) remove(id SocketId) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for i, s := range cs.list {
		if s.Id() == id {
			cs.list = stdslices.Delete(cs.list, i, i+1)
			return true
		}
	}
	return false
}

// inNamespace returns the socket of the namespace called name.
func (cs *clientSockets) inNamespace(name string) (*Socket, bool) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for i := len(cs.list) - 1; i >= 0; i-- {
		if cs.list[i].Nsp().Name() == name {
			return cs.list[i], true
		}
	}
	return nil, false
}

func (cs *clientSockets) len() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.list)
}

// snapshot returns the sockets kept now, for a caller that acts on each
// without the lock (acting may remove them).
func (cs *clientSockets) snapshot() []*Socket {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return stdslices.Clone(cs.list)
}

// clear forgets every socket and returns them.
func (cs *clientSockets) clear() []*Socket {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	list := cs.list
	cs.list = nil
	return list
}
