// Package sqlstore is the SQL event store on bun: embedded SQLite (the
// default) and PostgreSQL. It implements eventstore.Store.
//
// Appends go through one writer goroutine per store that groups the appends
// waiting at that moment into one transaction (group commit); each append keeps
// its own expected-version and idempotency check, and an append returns only
// after its transaction is committed and synced. Writers are serialized —
// inside the process by the writer goroutine, across processes by SQLite's
// write lock (BEGIN IMMEDIATE) or a PostgreSQL transaction-level advisory
// lock — and positions are assigned under that lock, so commit order equals
// position order and a reader never sees a position commit below one it has
// already read (gap safety).
//
// Every row carries a hash chained over the previous row's (package
// eventstore/chain documents the encoding): the writer computes it under the
// same lock, as it inserts the rows, so the chain follows position order
// across processes. A log written before the chain existed is hashed when a
// store opens it for writing (see OpenSQLite). ScanLog and ChainHead read the
// chain for verification; Import loads a whole log into an empty store in
// bulk, computing the chain for the new positions.
//
// Subscribers wake on commit: a channel in process, and LISTEN/NOTIFY for
// commits of other PostgreSQL processes. Other SQLite processes (such as
// `auraos events read --follow` beside a server) are noticed by checking
// SQLite's data_version at a modest interval.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lib/pq"
	"github.com/uptrace/bun"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/chain"
	"github.com/auraos/realtime/schema"
)

// Options tunes a Store. The zero value is usable.
type Options struct {
	// Now is the clock that stamps commit times (default time.Now).
	Now func() time.Time
	// NewID generates ids for events appended without one (default
	// eventstore.NewID).
	NewID func() string
	// MaxBatchEvents caps the events committed in one group transaction
	// (default 2000).
	MaxBatchEvents int
	// SubscriptionBatch is the default number of events a subscription
	// delivers at once (default 500).
	SubscriptionBatch int
	// CrossProcessPoll is how often a SQLite store checks whether another
	// process committed, for subscribers (default 250ms; in-process commits
	// wake subscribers at once).
	CrossProcessPoll time.Duration
	// Logger receives the store's warnings (default slog.Default()).
	Logger *slog.Logger
	// OnCommit, when set, is called by the writer after each group
	// transaction commits, with the number of appends and events it held and
	// how long it took. It must not block.
	OnCommit func(appends, events int, took time.Duration)
}

func (o *Options) setDefaults() {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.NewID == nil {
		o.NewID = eventstore.NewID
	}
	if o.MaxBatchEvents <= 0 {
		o.MaxBatchEvents = 2000
	}
	if o.SubscriptionBatch <= 0 {
		o.SubscriptionBatch = 500
	}
	if o.CrossProcessPoll <= 0 {
		o.CrossProcessPoll = 250 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Store is the SQL event store. It is safe for concurrent use.
type Store struct {
	opts    Options
	dialect dialect
	writeDB *bun.DB // SQLite: one connection; PostgreSQL: the shared pool
	readDB  *bun.DB // SQLite: a reader pool; PostgreSQL: the same pool

	requests   chan *appendRequest
	notifier   notifier
	closing    chan struct{}
	closeOnce  sync.Once
	background sync.WaitGroup // the writer and the wake-up goroutines
	writerDone chan struct{}
	submitMu   sync.RWMutex // held for reading while a request is queued
	stopped    bool         // no more requests are queued (guarded by submitMu)

	cache versionCache // owned by the writer goroutine
	chain chainState   // owned by the writer goroutine
	stmts statements   // owned by the writer goroutine

	headCommits atomic.Int64 // group commits made in one statement at the known head
	tail        tail         // the latest commits of this process
	// unseen counts the times the log may have changed without the tail
	// knowing: another process's commit, an import, a commit whose outcome
	// is unknown. A subscription caught up with the tail asks the database
	// only when it moved (subscription.read).
	unseen        atomic.Uint64
	databaseReads atomic.Int64 // subscription reads that asked the database
}

// wakeUnseen wakes the subscribers for a change to the log that the tail
// does not hold, so that each asks the database.
func (s *Store) wakeUnseen() {
	s.unseen.Add(1)
	s.notifier.broadcast()
}

// The file of the SQLite event store inside the data directory.
const sqliteFile = "events.db"

// OpenSQLite opens (creating if needed) the SQLite event store in dataDir and
// applies its migrations, hashing the events of a log written before the
// chain existed (see package eventstore/chain).
func OpenSQLite(ctx context.Context, dataDir string, opts Options) (*Store, error) {
	path := filepath.Join(dataDir, sqliteFile)
	writeDB, err := schema.OpenSQLite(path, schema.SQLiteOptions{Mode: schema.SQLiteWriter})
	if err != nil {
		return nil, eventstore.Unavailable("open "+path, err)
	}
	if err := schema.Migrate(ctx, writeDB, schema.EventStore); err != nil {
		writeDB.Close()
		return nil, err
	}
	readDB, err := schema.OpenSQLite(path, schema.SQLiteOptions{Mode: schema.SQLiteReader, MaxReaders: 8})
	if err != nil {
		writeDB.Close()
		return nil, eventstore.Unavailable("open "+path, err)
	}
	s, err := startSQLite(ctx, path, opts, writeDB, readDB)
	if err != nil {
		return nil, err
	}
	return s.afterMigrations(ctx)
}

// afterMigrations finishes the migrations that are not SQL: it hashes the
// events stored before the chain existed. On an error it closes s.
func (s *Store) afterMigrations(ctx context.Context) (*Store, error) {
	if err := s.backfill(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// startSQLite starts the store on the opened databases of the file at path.
func startSQLite(ctx context.Context, path string, opts Options, writeDB, readDB *bun.DB) (*Store, error) {
	s := newStore(opts, sqliteDialect{}, writeDB, readDB)
	// The watcher's first reading is taken now, before any subscriber reads,
	// so a commit of another process after this point is always noticed.
	conn, err := readDB.Conn(ctx)
	if err != nil {
		s.Close()
		return nil, eventstore.Unavailable("open "+path, err)
	}
	var version int64
	if err := conn.QueryRowContext(ctx, "PRAGMA data_version").Scan(&version); err != nil {
		conn.Close()
		s.Close()
		return nil, eventstore.Unavailable("open "+path, err)
	}
	s.background.Add(1)
	go s.watchOtherSQLiteWriters(conn, version)
	return s, nil
}

// OpenPostgres opens the PostgreSQL event store at dsn and applies its
// migrations, hashing the events of a log written before the chain existed. The store lives in the connection's current schema (set
// search_path in the URL to keep several apart); appends of every process
// using that schema are serialized by one advisory lock.
func OpenPostgres(ctx context.Context, dsn string, opts Options) (*Store, error) {
	db, err := schema.OpenPostgres(ctx, dsn, 10)
	if err != nil {
		return nil, eventstore.Unavailable("connect", err)
	}
	if err := schema.Migrate(ctx, db, schema.EventStore); err != nil {
		db.Close()
		return nil, err
	}
	s, err := startPostgres(ctx, dsn, opts, db)
	if err != nil {
		return nil, err
	}
	return s.afterMigrations(ctx)
}

// startPostgres starts the store on the opened pool db of dsn.
func startPostgres(ctx context.Context, dsn string, opts Options, db *bun.DB) (*Store, error) {
	var current string
	if err := db.QueryRowContext(ctx, "SELECT current_schema()").Scan(&current); err != nil {
		db.Close()
		return nil, eventstore.Unavailable("read current schema", err)
	}
	d := newPGDialect(current)
	s := newStore(opts, d, db, db)
	listener := pq.NewListener(dsn, 100*time.Millisecond, 5*time.Second, func(ev pq.ListenerEventType, err error) {
		if err != nil {
			s.opts.Logger.Warn("event store notification listener", "event", ev, "err", err)
		}
	})
	if err := listener.Listen(d.notifyChannel); err != nil {
		listener.Close()
		db.Close()
		return nil, eventstore.Unavailable("listen for commits", err)
	}
	s.background.Add(1)
	go s.forwardNotifications(listener, d)
	return s, nil
}

func newStore(opts Options, d dialect, writeDB, readDB *bun.DB) *Store {
	opts.setDefaults()
	s := &Store{
		opts:       opts,
		dialect:    d,
		writeDB:    writeDB,
		readDB:     readDB,
		requests:   make(chan *appendRequest, 1024),
		closing:    make(chan struct{}),
		writerDone: make(chan struct{}),
		stmts:      statements{db: writeDB.DB},
	}
	s.notifier.init()
	s.cache.reset(-1)
	s.chain = chainState{hasher: chain.NewHasher(), at: -1}
	go s.writeLoop()
	return s
}

// Close stops the store. Appends already handed to the writer finish; the
// ones still waiting fail with eventstore.ErrClosed; subscriptions end.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.submitMu.Lock()
		s.stopped = true
		s.submitMu.Unlock()
		close(s.closing)
		<-s.writerDone
		s.stmts.close()
		s.notifier.broadcast()
		s.background.Wait()
		err = s.writeDB.Close()
		if s.readDB != s.writeDB {
			err = errors.Join(err, s.readDB.Close())
		}
	})
	return err
}

func (s *Store) isClosed() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}

// Head returns the position of the last committed event.
func (s *Store) Head(ctx context.Context) (eventstore.Position, error) {
	if s.isClosed() {
		return eventstore.Start, eventstore.ErrClosed
	}
	var head int64
	if err := s.readDB.QueryRowContext(ctx, "SELECT COALESCE(MAX(position), 0) FROM events").Scan(&head); err != nil {
		return eventstore.Start, s.classify(ctx, "read head", err)
	}
	return eventstore.Pos(uint64(head)), nil
}

// forwardNotifications wakes subscribers when any process commits to this
// schema, and after the listener reconnects (a commit may have been missed).
func (s *Store) forwardNotifications(l *pq.Listener, d pgDialect) {
	defer s.background.Done()
	defer l.Close()
	for {
		select {
		case <-s.closing:
			return
		case n, ok := <-l.Notify:
			if !ok {
				return
			}
			if n != nil && d.ownNotice(n.Extra) {
				continue // this store's own commit: its subscribers were woken already
			}
			s.wakeUnseen()
		}
	}
}

// watchOtherSQLiteWriters wakes subscribers when another process has written
// to the database file. In-process commits wake them directly; this only
// covers other processes, so its interval is not on the hot path.
func (s *Store) watchOtherSQLiteWriters(conn bun.Conn, last int64) {
	defer s.background.Done()
	defer conn.Close()
	t := time.NewTicker(s.opts.CrossProcessPoll)
	defer t.Stop()
	for {
		select {
		case <-s.closing:
			return
		case <-t.C:
		}
		var v int64
		// data_version changes when another connection commits; this
		// connection's own view stays cheap to check.
		if err := conn.QueryRowContext(context.Background(), "PRAGMA data_version").Scan(&v); err != nil {
			continue
		}
		if v != last {
			s.wakeUnseen()
		}
		last = v
	}
}

// classify turns a database error into the port's errors: a canceled context
// stays itself, everything else becomes EUNAVAILABLE or ECONFLICT with a
// message saying what failed.
func (s *Store) classify(ctx context.Context, what string, err error) error {
	if err == nil {
		return nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ctxErr)) {
		return ctxErr
	}
	if s.isClosed() && (errors.Is(err, sql.ErrConnDone) || errors.Is(err, sql.ErrTxDone) || isDBClosed(err)) {
		return eventstore.ErrClosed
	}
	var de *domain.Error
	if errors.As(err, &de) {
		return err
	}
	return s.dialect.classify(what, err)
}

func isDBClosed(err error) bool {
	return err != nil && err.Error() == "sql: database is closed"
}
