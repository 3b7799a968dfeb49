// Package esdb is the EventStoreDB / KurrentDB event store: it implements
// eventstore.Store through the official Go client
// (github.com/EventStore/EventStore-Client-Go/v4/esdb). The server must send
// the CaughtUp message of catch-up subscriptions (EventStoreDB 23.10 or later,
// or KurrentDB); $all subscriptions also stop at the head of the log as it was
// when they started, which covers servers that only send checkpoints.
//
// # Streams and positions
//
// A port stream is an EventStoreDB stream of the same name (prefixed with
// Options.Namespace when set); its versions are the stream revisions. Names
// starting with "$" are system streams in EventStoreDB and are rejected with
// EINVALID. The global position of an event is its $all position, commit and
// prepare parts kept exactly as the server reports them, in results, events,
// checkpoints (Batch.Through) and resumptions (SubscribeOptions.After,
// ReadAllOptions.From). Since v20 the server writes every event as a
// self-committed record whose commit and prepare positions are both its log
// position, so the events of one append have distinct, increasing positions;
// older databases may hold events whose commit position is shared by a whole
// transaction, and the adapter orders and compares positions commit first,
// then prepare, as the server does. Event ids are the port's UUIDs (never
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
// # Reads, filters and subscriptions
//
// ReadStream reads the stream in either direction; a missing stream reads as
// empty. ReadAll and Subscribe use catch-up subscriptions to $all with a
// server-side filter, since the client's $all reads cannot filter. The server
// filters by one kind at a time, so the adapter asks for stream-name prefixes
// when the store has a namespace or the port filter has stream prefixes,
// otherwise for event-type prefixes when it has event types, otherwise for a
// stream-name regular expression (^[^$]) that leaves system streams out; it
// applies the whole port filter again on its side (types exactly, not as
// prefixes). A filtered subscription reports checkpoints while it skips
// events and when it reaches the head; Batch.Through carries the latest event
// or checkpoint position delivered, so a consumer's checkpoint advances past
// filtered-out events, and the batch that reaches the head for the first time
// is marked CaughtUp (later batches are CaughtUp when they leave nothing
// pending).
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
// The client closes itself for good when a discovery fails: every later call
// fails with "connection closed". The store then replaces it with a new client,
// so the next call discovers the cluster again; a call that failed before
// reaching the server is retried once on the new client. Calls still blocked
// inside the old client (it reports errors on a channel that nobody reads
// once its discovery has failed) are released when the old client is closed.
//
// The client sends credentials (esdb://user:password@host) only over TLS; with
// tls=false it drops them silently and every request is anonymous. Open logs a
// warning in that case. Use insecure mode only on a trusted network.
package esdb
