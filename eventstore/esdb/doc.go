// Package esdb is the EventStoreDB / KurrentDB event store: it implements
// eventstore.Store through the official Go client
// (github.com/EventStore/EventStore-Client-Go/v4/esdb), selected with
// `--event-store esdb://host:2113?tls=false` or any other connection string
// the client accepts (see Open). Subscriptions report CaughtUp when the server
// sends the caught-up message of catch-up subscriptions, as KurrentDB and
// EventStoreDB 23.10 and later do.
//
// # Streams and positions
//
// A port stream is an EventStoreDB stream of the same name (prefixed with
// Options.Namespace when set); its versions are the stream revisions. Names
// starting with "$" are system streams in EventStoreDB and are rejected with
// EINVALID. The global position of an event is its $all position, commit and
// prepare parts kept exactly as the server reports them, in results, events,
// checkpoints (Batch.Through) and resumptions (SubscribeOptions.After,
// ReadAllOptions.From). The server writes every event of an append as a
// self-committed record whose commit and prepare positions are both its log
// position, so the events of one append have distinct, increasing positions.
// Events written inside the legacy TCP API's explicit transactions share the
// commit position of their commit record and differ in their prepare
// positions; the adapter orders and compares positions commit first, then
// prepare, as the server does (stream reads report such events at the maximum
// position, as the server sends no position for them there). Event ids are the port's UUIDs (never
// left to the client, which would pick random ones); data and metadata are
// stored as JSON; Time is the server's "created" stamp cut to microseconds.
//
// The system streams ("$…": statistics, settings, scavenges, projections) are
// never part of the store's view of the log: subscriptions and $all reads
// leave them out on the server, and the adapter drops any that get through.
//
// # Appends and idempotency
//
// Append maps the port's expected versions to the client's Any, NoStream,
// StreamExists and revisions, and a wrong expected version to
// *eventstore.WrongExpectedVersionError with the stream's actual version. The
// server answers an append with one position, so the adapter reads the
// appended events back to return each one's position (one more round trip).
//
// The port promises that an append whose ids are all stored in the stream
// already (in order, consecutively) stores nothing and returns the original
// result, whatever its expected version, and that ids stored in another stream
// or only partly stored are ErrDuplicateEventID. EventStoreDB's own check is
// weaker: for an exact revision or NoStream it recognises a repeat only when
// the original events directly follow that revision, and for Any and
// StreamExists only while the ids are in the node's cache of recently
// committed events (lost on restart or leader change). The adapter closes
// the gap on its side, in this order:
//
//  1. ids appended through this Store (an in-process cache of Options.IDCache
//     ids, with stream, version and position) are answered from the cache:
//     the original result, or ErrDuplicateEventID for another stream or a
//     partial match — without asking the server;
//  2. for Any and StreamExists, the stream's latest Options.IdempotencyWindow
//     events are read and searched for the ids;
//  3. the append goes to the server, whose own check covers exact revisions
//     and concurrent repeats (its cache holds ids it has just committed);
//  4. when the server reports a wrong expected version, the stream's latest
//     events are searched again, so a repeat whose expected version no longer
//     holds still returns the original result, and a partial match is
//     ErrDuplicateEventID.
//
// What remains weaker than the SQL store, and is not checked by the server:
// an id reused in another stream is recognised only when this process
// appended it (derive ids from the stream name, as eventstore.NameID with the
// stream among its parts does, and this cannot happen); and a repeat from
// another process whose original events lie further back in the stream than
// the window, once the server's cache has forgotten them, is stored again.
//
// # Hash chains per stream
//
// Appends are not serialized by auraos (the server orders them, across
// processes), so there is no global chain as in the SQL stores; each stream
// carries its own instead, in the event metadata: the stored metadata is
// {"auraosChain":"<hex link>","metadata":<the metadata as appended>}, and
// every read unwraps it, so the port returns the metadata byte for byte.
// The link is package chain's function over the stream's previous link
// with position and time 0 (see chain.go). To keep a stream's links in
// order, Append sends Any and StreamExists as the exact revision it linked
// to (retrying, re-linked, when another process took it), and this
// process's appends to one stream take turns. VerifyChains recomputes every
// stream's chain.
//
// # Reads, filters and subscriptions
//
// ReadStream reads the stream in either direction; a missing stream reads as
// empty. ReadAll and Subscribe use catch-up subscriptions to $all with a
// server-side filter, since the client's $all reads cannot filter; ReadAll
// reads the event at From itself first (subscriptions start after their
// position) and stops at the head of the log as it was when it started (or
// at the caught-up message). Head reads $all backwards to the last event of the
// store's view.
//
// The server filters by one kind at a time, so the adapter asks for
// stream-name prefixes when the store has a namespace or the port filter has
// stream prefixes (the namespace prepended to each), otherwise for event-type
// prefixes when it has event types, otherwise for a stream-name regular
// expression (^[^$]) that leaves system streams out. It applies the whole port
// filter again on its side (event types exactly, not as prefixes).
//
// A filtered subscription sends checkpoints: the position of the last event
// the server considered, every "max search window" events and when it reaches
// the head. Batch.Through is the latest event or checkpoint position
// delivered, commit and prepare exactly, so a consumer's checkpoint moves past
// the events a filter leaves out; resuming after it (SubscribeOptions.After)
// skips nothing and repeats nothing. A subscription catches up with a window
// of 32 (efficient reads). Once caught up, if the port filter leaves events
// out, it resubscribes from where it is with a window of one: the server then
// sends a checkpoint for each event it leaves out, and Next delivers that as
// an empty batch whose Through moved, so a consumer waiting for a position
// (its own write, say) is not stuck behind a filter. Checkpoints that pass
// only system events or other namespaces' events, and checkpoints met while
// catching up, move the Through of the next batch instead (at the latest the
// caught-up one). While catching up, batches hold BatchSize events (the last
// one fewer); the batch that first reaches the head is marked CaughtUp, and
// live batches are when nothing is pending.
//
// Each subscription has one goroutine that reads the server subscription
// ahead of Next. When the server subscription drops (a node restart, a leader
// change, a lost connection) it resubscribes from the last position it read,
// so every event is still delivered once and in order, retrying with backoff
// for up to Options.ResubscribeTimeout before Next reports EUNAVAILABLE. The
// goroutine stops on Subscription.Close and on Store.Close.
//
// # Errors and connections
//
// Lost connections, failed discovery, timeouts and refused credentials are
// EUNAVAILABLE (eventstore.Unavailable); a closed store is
// eventstore.ErrClosed; an append the server rejects as too large (KurrentDB
// limits one append to 1 MiB unless --max-append-size says otherwise) is
// EINVALID; a deleted stream is ECONFLICT. Errors of the client are examined
// with errors.As (esdb.FromError returns ok=false exactly when there is an
// error).
//
// The client runs its connection management in one goroutine that stops for
// good when a discovery fails: every later call on that client fails with
// "connection closed", and calls that were already waiting on it (or that
// report a lost connection to it) wait forever. The store therefore keeps a
// pool of Options.Connections clients and lends each to one call at a time:
// the call that ran the failed discovery gets its error (EUNAVAILABLE), no
// other call waits on that client, and the store closes it and makes a new
// one for the next call, which discovers the cluster again. A call that failed
// before reaching the server is retried once on a new client. Subscriptions
// borrow a client only to (re)subscribe; their stream then runs on that
// client's connection.
//
// The client sends credentials (esdb://user:password@host) only over TLS; with
// tls=false it drops them silently and every request is anonymous. Open logs a
// warning in that case. Use insecure mode only on a trusted network.
package esdb
