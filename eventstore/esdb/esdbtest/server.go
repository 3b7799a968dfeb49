// Package esdbtest is an in-process, in-memory stand-in for an EventStoreDB /
// KurrentDB node, for tests. It serves, over plaintext gRPC, the services the
// official Go client (github.com/EventStore/EventStore-Client-Go/v4) calls to
// connect, append, read and subscribe: ServerFeatures.GetSupportedMethods,
// Gossip.Read (so esdb+discover:// and multi-seed connection strings work),
// Streams.Append and Streams.Read (stream and $all reads in both directions,
// catch-up subscriptions to a stream or to $all, with or without a server-side
// filter). It uses the client module's own generated protos, so a message the
// client cannot decode fails here too.
//
// It follows KurrentDB's documented behaviour:
//
//   - Expected revisions: Any, NoStream, StreamExists and an exact revision.
//     A failed check answers with the WrongExpectedVersion result (not a gRPC
//     error), carrying the stream's current revision or "no stream".
//   - Idempotency: a write whose expected revision lies before the stream's
//     end and whose event ids equal the events that follow that revision is
//     answered with the original write's result and stores nothing; partly
//     equal ids are a wrong expected version. With Any or StreamExists the
//     ids are looked up in a bounded cache of recently committed events
//     (Options.IdempotencyCache), as KurrentDB does, so repeats older than
//     the cache are stored again.
//   - Reads: a stream with no events answers StreamNotFound; backwards reads
//     from a revision past the end start at the last event; $all reads from a
//     position include the event at it (forwards) or stop before it
//     (backwards). Recorded events carry the "type", "content-type" and
//     "created" (.NET ticks since the Unix epoch) metadata the client needs.
//   - Positions: every event is a self-committed record, as KurrentDB writes
//     them since v20, so its commit and prepare positions both equal its log
//     position; the log position grows by the record's size, the records of
//     one append are contiguous, and a fresh log starts above zero. An append
//     answers with the position of its last event.
//   - Subscriptions: the confirmation comes first; then the events after the
//     start position (exclusive); a filtered $all subscription sends a
//     checkpoint every (max search window × checkpoint multiplier) considered
//     events and one at the end of the catch-up phase (the position of the
//     last record considered); then CaughtUp; then live events, as
//     KurrentDB's AllSubscriptionFiltered does. Unfiltered subscriptions send
//     no checkpoints.
//   - The log starts with two system events ($settings and $$$stats-…), and
//     AppendSystemEvent adds more, so clients must filter system streams out.
//
// It does not implement authentication (credentials are counted, not checked),
// deletes, persistent subscriptions, projections or BatchAppend.
package esdbtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/gossip"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/serverfeatures"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
)

// Options configures a Server. The zero value gives KurrentDB's defaults.
type Options struct {
	// MaxAppendSize is the largest append, in bytes of event data, metadata
	// and type, the server accepts (default 1 MiB, KurrentDB's default;
	// larger appends fail with InvalidArgument).
	MaxAppendSize int
	// IdempotencyCache is the number of recently committed event ids the
	// server remembers for the idempotency of Any and StreamExists appends
	// (default 100000; a negative value disables the cache).
	IdempotencyCache int
	// Version is the server version ServerFeatures reports (default
	// "24.10.0").
	Version string
	// Now is the clock that stamps recorded events (default time.Now).
	Now func() time.Time
}

// Server is the in-memory node. Its data outlives Stop: Serve may be called
// again after Stop, on a new listener, as a restarted node.
type Server struct {
	opts Options
	db   *db

	mu      sync.Mutex
	grpc    *grpc.Server
	addr    string
	subs    map[*subscriber]struct{}
	serving sync.WaitGroup // Serve calls in progress

	credentials atomic.Int64
	requests    []SubscribeRequest
	requested   chan struct{} // closed and replaced on every subscription request
}

// SubscribeRequest describes one subscription request the server received:
// whether it started at the beginning, the position (for $all) or revision
// (for a stream) it started after, and its filter.
type SubscribeRequest struct {
	Stream      string // empty for $all
	FromStart   bool
	FromEnd     bool
	Commit      uint64
	Prepare     uint64
	Revision    uint64
	Filtered    bool
	StreamRegex string
	Prefixes    []string
	ByEventType bool
	Window      uint64 // max search window × checkpoint multiplier
}

// NewServer returns a Server holding an empty log (plus the two system events
// a fresh node writes).
func NewServer(opts Options) *Server {
	if opts.MaxAppendSize <= 0 {
		opts.MaxAppendSize = 1 << 20
	}
	if opts.IdempotencyCache == 0 {
		opts.IdempotencyCache = 100000
	}
	if opts.Version == "" {
		opts.Version = "24.10.0"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{opts: opts, db: newDB(opts.IdempotencyCache), subs: make(map[*subscriber]struct{}), requested: make(chan struct{})}
	s.AppendSystemEvent("$settings", "$settings")
	s.AppendSystemEvent("$$$stats-127.0.0.1:2113", "$metadata")
	return s
}

// Serve accepts gRPC connections on l until Stop is called. It returns nil
// after Stop, and the listener's error otherwise.
func (s *Server) Serve(l net.Listener) error {
	g, err := s.start(l)
	if err != nil {
		return err
	}
	defer s.serving.Done()
	return run(g, l)
}

// start builds the gRPC server for l and publishes it, so that Stop ends it.
func (s *Server) start(l net.Listener) (*grpc.Server, error) {
	g := grpc.NewServer(
		grpc.MaxRecvMsgSize(64<<20),
		// The client pings every 10 s, idle or not, as KurrentDB allows.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Second, PermitWithoutStream: true}),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			s.countCredentials(ctx)
			return h(ctx, req)
		}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			s.countCredentials(ss.Context())
			return h(srv, ss)
		}),
	)
	streams.RegisterStreamsServer(g, &streamsService{s: s})
	serverfeatures.RegisterServerFeaturesServer(g, &featuresService{s: s})
	gossip.RegisterGossipServer(g, &gossipService{s: s})

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.grpc != nil {
		return nil, errors.New("esdbtest: Serve called while already serving")
	}
	s.grpc = g
	s.addr = l.Addr().String()
	s.serving.Add(1)
	return g, nil
}

func run(g *grpc.Server, l net.Listener) error {
	err := g.Serve(l)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// Stop closes the listener and every connection, ending calls in progress
// (subscriptions included) with Unavailable, and waits for Serve to return.
// The data stays; Serve may be called again.
func (s *Server) Stop() {
	s.mu.Lock()
	g := s.grpc
	s.grpc = nil
	s.mu.Unlock()
	if g != nil {
		g.Stop()
	}
	s.serving.Wait()
}

// Addr returns the address of the last listener Serve was given.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// URL returns a connection string for the server: esdb://ADDR?tls=false.
func (s *Server) URL() string { return "esdb://" + s.Addr() + "?tls=false" }

// Start starts a Server with default options on a free local TCP port for the
// duration of the test and returns its connection string.
func Start(t testing.TB) string {
	t.Helper()
	return StartServer(t, Options{}).URL()
}

// StartServer starts a Server with opts on a free local TCP port and stops it
// when the test ends.
func StartServer(t testing.TB, opts Options) *Server {
	t.Helper()
	s := NewServer(opts)
	if err := s.Listen("127.0.0.1:0"); err != nil {
		t.Fatalf("esdbtest: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Listen serves on a new TCP listener at addr in a goroutine that Stop ends.
// The server accepts connections when Listen returns.
func (s *Server) Listen(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	g, err := s.start(l)
	if err != nil {
		l.Close()
		return err
	}
	go func() {
		defer s.serving.Done()
		_ = run(g, l)
	}()
	return nil
}

// AppendSystemEvent appends an event of type eventType to the system stream
// stream (which should start with "$"), as the node itself does for
// statistics, settings and scavenges.
func (s *Server) AppendSystemEvent(stream, eventType string) {
	s.db.append(stream, expectation{kind: expectAny}, []proposed{{
		id: uuid.New(), eventType: eventType, contentType: "application/json",
		data: []byte(`{}`), meta: []byte{},
	}}, s.ticks())
}

// DropSubscriptions ends every active subscription with an Unavailable error,
// as a node does when it shuts down or loses leadership, and returns how many
// it ended.
func (s *Server) DropSubscriptions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for sub := range s.subs {
		sub.dropOnce.Do(func() { close(sub.drop) })
		delete(s.subs, sub)
		n++
	}
	return n
}

// Subscriptions returns the number of subscriptions currently open.
func (s *Server) Subscriptions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.subs)
}

// SubscribeRequests returns every subscription request received so far, in
// order.
func (s *Server) SubscribeRequests() []SubscribeRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SubscribeRequest(nil), s.requests...)
}

// AwaitSubscribeRequests waits until the server has received at least n
// subscription requests (each is open by then, unless it ended since) and
// returns them all, or returns ctx's error.
func (s *Server) AwaitSubscribeRequests(ctx context.Context, n int) ([]SubscribeRequest, error) {
	for {
		s.mu.Lock()
		if len(s.requests) >= n {
			defer s.mu.Unlock()
			return append([]SubscribeRequest(nil), s.requests...), nil
		}
		wait := s.requested
		s.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// CredentialsSeen returns the number of calls that carried an authorization
// header.
func (s *Server) CredentialsSeen() int64 { return s.credentials.Load() }

// Head returns the log position of the last record (system records
// included), and false when the log is empty.
func (s *Server) Head() (uint64, bool) { return s.db.head() }

func (s *Server) countCredentials(ctx context.Context) {
	md, _ := metadata.FromIncomingContext(ctx)
	if len(md.Get("authorization")) > 0 {
		s.credentials.Add(1)
	}
}

func (s *Server) ticks() int64 { return s.opts.Now().UnixNano() / 100 }

// subscriber is an open subscription, registered so DropSubscriptions can end
// it.
type subscriber struct {
	drop     chan struct{}
	dropOnce sync.Once
}

func (s *Server) register(req SubscribeRequest) *subscriber {
	sub := &subscriber{drop: make(chan struct{})}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs[sub] = struct{}{}
	s.requests = append(s.requests, req)
	close(s.requested)
	s.requested = make(chan struct{})
	return sub
}

func (s *Server) unregister(sub *subscriber) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.subs, sub)
}

// featuresService answers ServerFeatures.GetSupportedMethods.
type featuresService struct {
	serverfeatures.UnimplementedServerFeaturesServer
	s *Server
}

func (f *featuresService) GetSupportedMethods(context.Context, *shared.Empty) (*serverfeatures.SupportedMethods, error) {
	return &serverfeatures.SupportedMethods{
		EventStoreServerVersion: f.s.opts.Version,
		Methods: []*serverfeatures.SupportedMethod{
			{ServiceName: "event_store.client.streams.streams", MethodName: "read"},
			{ServiceName: "event_store.client.streams.streams", MethodName: "append"},
			{ServiceName: "event_store.client.server_features.serverfeatures", MethodName: "getsupportedmethods"},
			{ServiceName: "event_store.client.gossip.gossip", MethodName: "read"},
		},
	}, nil
}

// gossipService answers Gossip.Read with a one-node cluster whose leader is
// this server, so cluster connection strings discover it.
type gossipService struct {
	gossip.UnimplementedGossipServer
	s *Server
}

func (g *gossipService) Read(context.Context, *shared.Empty) (*gossip.ClusterInfo, error) {
	host, portText, err := net.SplitHostPort(g.s.Addr())
	if err != nil {
		return nil, err
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, err
	}
	return &gossip.ClusterInfo{Members: []*gossip.MemberInfo{{
		InstanceId:   uuidProto(uuid.NewSHA1(uuid.NameSpaceURL, []byte(g.s.Addr()))),
		TimeStamp:    time.Now().UnixNano() / 100,
		State:        gossip.MemberInfo_Leader,
		IsAlive:      true,
		HttpEndPoint: &gossip.EndPoint{Address: host, Port: uint32(port)},
	}}}, nil
}
