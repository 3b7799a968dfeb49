package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/uptrace/bun"

	"github.com/auraos/realtime/eventstore"
)

// selectColumns are the events columns every read scans, in scanRow's order.
const selectColumns = "position, event_id, stream, version, type, data, metadata, created_at"

// ReadStream implements eventstore.Store.
func (s *Store) ReadStream(ctx context.Context, stream string, opts eventstore.ReadStreamOptions) ([]eventstore.RecordedEvent, error) {
	if s.isClosed() {
		return nil, eventstore.ErrClosed
	}
	if err := eventstore.ValidateStream(stream); err != nil {
		return nil, err
	}
	var q strings.Builder
	args := []any{stream}
	q.WriteString("SELECT " + selectColumns + " FROM events WHERE stream = ?")
	if opts.Direction == eventstore.Backwards {
		if opts.From != eventstore.End && opts.From <= 1<<62 {
			q.WriteString(" AND version <= ?")
			args = append(args, int64(opts.From))
		}
		q.WriteString(" ORDER BY version DESC")
	} else {
		if opts.From > 1<<62 {
			return []eventstore.RecordedEvent{}, nil
		}
		q.WriteString(" AND version >= ? ORDER BY version")
		args = append(args, int64(opts.From))
	}
	if opts.Limit > 0 {
		q.WriteString(" LIMIT ?")
		args = append(args, opts.Limit)
	}
	return s.query(ctx, s.readDB, "read stream", q.String(), args...)
}

// ReadAll implements eventstore.Store.
func (s *Store) ReadAll(ctx context.Context, opts eventstore.ReadAllOptions) ([]eventstore.RecordedEvent, error) {
	if s.isClosed() {
		return nil, eventstore.ErrClosed
	}
	var q strings.Builder
	args := []any{int64(opts.From.Commit)}
	q.WriteString("SELECT " + selectColumns + " FROM events WHERE position >= ?")
	args = appendFilter(&q, args, opts.Filter)
	q.WriteString(" ORDER BY position")
	if opts.Limit > 0 {
		q.WriteString(" LIMIT ?")
		args = append(args, opts.Limit)
	}
	return s.query(ctx, s.readDB, "read log", q.String(), args...)
}

// appendFilter adds the WHERE terms of f. Prefixes compare the first
// characters of the stream name (substr counts characters in both SQLite and
// PostgreSQL), so names in any script compare exactly and case-sensitively.
func appendFilter(q *strings.Builder, args []any, f eventstore.Filter) []any {
	if len(f.StreamPrefixes) > 0 {
		q.WriteString(" AND (")
		for i, p := range f.StreamPrefixes {
			if i > 0 {
				q.WriteString(" OR ")
			}
			q.WriteString("substr(stream, 1, ?) = ?")
			args = append(args, utf8.RuneCountInString(p), p)
		}
		q.WriteString(")")
	}
	if len(f.EventTypes) > 0 {
		q.WriteString(" AND type IN (?)")
		args = append(args, bun.List(f.EventTypes))
	}
	return args
}

// querier is a *bun.DB or a bun.Tx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func (s *Store) query(ctx context.Context, db querier, what, query string, args ...any) ([]eventstore.RecordedEvent, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, s.classify(ctx, what, err)
	}
	defer rows.Close()
	out := []eventstore.RecordedEvent{}
	for rows.Next() {
		e, err := scanRow(rows)
		if err != nil {
			return nil, s.classify(ctx, what, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, s.classify(ctx, what, err)
	}
	return out, nil
}

func scanRow(rows *sql.Rows) (eventstore.RecordedEvent, error) {
	var (
		e                 eventstore.RecordedEvent
		position, version int64
		data, metadata    []byte
		created           commitTime
	)
	if err := rows.Scan(&position, &e.ID, &e.Stream, &version, &e.Type, &data, &metadata, &created); err != nil {
		return e, err
	}
	e.Position = eventstore.Pos(uint64(position))
	e.Version = uint64(version)
	e.Data = json.RawMessage(data)
	e.Metadata = json.RawMessage(metadata)
	e.Time = time.Time(created)
	return e, nil
}

// commitTime scans created_at: unix microseconds from SQLite, a timestamp
// from PostgreSQL.
type commitTime time.Time

func (c *commitTime) Scan(v any) error {
	switch x := v.(type) {
	case int64:
		*c = commitTime(time.UnixMicro(x).UTC())
	case time.Time:
		*c = commitTime(x.UTC())
	default:
		return fmt.Errorf("created_at: unexpected %T", v)
	}
	return nil
}

// Subscribe implements eventstore.Store.
func (s *Store) Subscribe(ctx context.Context, opts eventstore.SubscribeOptions) (eventstore.Subscription, error) {
	if s.isClosed() {
		return nil, eventstore.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = s.opts.SubscriptionBatch
	}
	return &subscription{store: s, unseen: ^uint64(0), after: opts.After, filter: opts.Filter, limit: opts.BatchSize, closed: make(chan struct{})}, nil
}

// subscription reads the log after its checkpoint in snapshots; when there is
// nothing new it waits for the next commit notice.
type subscription struct {
	store        *Store
	unseen       uint64 // Store.unseen at the last read from the database
	after        eventstore.Position
	filter       eventstore.Filter
	limit        int
	caughtUpSent bool
	closeOnce    sync.Once
	closed       chan struct{}
}

func (sub *subscription) Next(ctx context.Context) (eventstore.Batch, error) {
	s := sub.store
	for {
		select {
		case <-sub.closed:
			return eventstore.Batch{}, fmt.Errorf("subscription closed: %w", eventstore.ErrClosed)
		default:
		}
		if s.isClosed() {
			return eventstore.Batch{}, eventstore.ErrClosed
		}
		// Take the wake-up channel before reading, so a commit between the
		// read and the wait is not missed.
		wake := s.notifier.wait()
		before := sub.after
		b, err := sub.read(ctx)
		if err != nil {
			return eventstore.Batch{}, err
		}
		sub.after = b.Through
		if len(b.Events) > 0 || b.Through != before || (b.CaughtUp && !sub.caughtUpSent) {
			sub.caughtUpSent = sub.caughtUpSent || b.CaughtUp
			return b, nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return eventstore.Batch{}, ctx.Err()
		case <-sub.closed:
		case <-s.closing:
		}
	}
}

// read returns the next batch after sub.after, reading the head and the rows
// from one snapshot so that Through never claims more than was read.
func (sub *subscription) read(ctx context.Context) (eventstore.Batch, error) {
	s := sub.store
	unseen := s.unseen.Load()
	events, through, ok := s.tail.read(int64(sub.after.Commit), sub.filter, sub.limit)
	if ok {
		return eventstore.Batch{Events: events, Through: eventstore.Pos(uint64(through)), CaughtUp: through == s.tail.end()}, nil
	}
	// Caught up with the tail, and nothing has changed the log that the
	// tail would not hold since this subscription last asked the database:
	// the database has nothing newer either. This spares a read
	// transaction per subscriber per commit.
	if unseen == sub.unseen && int64(sub.after.Commit) == through {
		return eventstore.Batch{Through: sub.after, CaughtUp: true}, nil
	}
	b, err := sub.readDatabase(ctx)
	if err == nil {
		sub.unseen = unseen
	}
	return b, err
}

// readDatabase is read from the database, in one read transaction.
func (sub *subscription) readDatabase(ctx context.Context) (eventstore.Batch, error) {
	s := sub.store
	s.databaseReads.Add(1)
	tx, err := s.readDB.BeginTx(ctx, s.dialect.readTxOptions())
	if err != nil {
		return eventstore.Batch{}, s.classify(ctx, "subscription read", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	var head int64
	if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(position), 0) FROM events").Scan(&head); err != nil {
		return eventstore.Batch{}, s.classify(ctx, "subscription read", err)
	}
	if uint64(head) <= sub.after.Commit {
		return eventstore.Batch{Through: sub.after, CaughtUp: true}, nil
	}
	upper := head
	if w := readWindow(sub.limit); upper-int64(sub.after.Commit) > w {
		upper = int64(sub.after.Commit) + w
	}
	var q strings.Builder
	args := []any{int64(sub.after.Commit), upper}
	q.WriteString("SELECT " + selectColumns + " FROM events WHERE position > ? AND position <= ?")
	args = appendFilter(&q, args, sub.filter)
	q.WriteString(" ORDER BY position LIMIT ?")
	args = append(args, sub.limit)
	events, err := s.query(ctx, tx, "subscription read", q.String(), args...)
	if err != nil {
		return eventstore.Batch{}, err
	}
	b := eventstore.Batch{Events: events, Through: eventstore.Pos(uint64(upper)), CaughtUp: upper == head}
	if len(events) == sub.limit {
		last := events[len(events)-1].Position
		b.Through = last
		b.CaughtUp = last.Commit == uint64(head)
	}
	return b, nil
}

// readWindow is how many positions past its checkpoint one subscription
// read of limit events may look at: twice the batch, at least 4096. The
// bound keeps a read's cost independent of how far the head is, whatever
// plan the database picks: PostgreSQL without statistics on a freshly
// filled events table (autovacuum has not analyzed it yet, or is off)
// estimates a few hundred rows for "position > after AND position <= head"
// and picks a bitmap scan of every position up to the head and a sort of
// them for each batch of a catch-up, which made a rebuild of a long log
// take time growing with the square of its length. A window with fewer
// matching events than limit returns them, through its end, not caught up.
func readWindow(limit int) int64 {
	return max(2*int64(limit), 4096)
}

func (sub *subscription) Close() error {
	sub.closeOnce.Do(func() { close(sub.closed) })
	return nil
}

// notifier wakes every waiter at once: wait returns a channel that the next
// broadcast closes.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func (n *notifier) init() { n.ch = make(chan struct{}) }

func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ch
}

func (n *notifier) broadcast() {
	n.mu.Lock()
	defer n.mu.Unlock()
	close(n.ch)
	n.ch = make(chan struct{})
}
