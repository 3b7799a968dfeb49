package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/uptrace/bun"

	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/chain"
)

// appendRequest is one Append waiting for the writer.
type appendRequest struct {
	ctx      context.Context
	stream   string
	expected eventstore.ExpectedVersion
	events   []eventstore.EventData
	done     *eventstore.Pending // resolved exactly once, by the writer or at Close
}

type appendOutcome struct {
	result eventstore.AppendResult
	err    error
}

// resolve answers a request.
func (r *appendRequest) resolve(o appendOutcome) { r.done.Resolve(o.result, o.err) }

// eventRow is a row of the events table.
type eventRow struct {
	bun.BaseModel `bun:"table:events"`

	Position  int64  `bun:"position,pk"`
	EventID   string `bun:"event_id"`
	Stream    string `bun:"stream"`
	Version   int64  `bun:"version"`
	Type      string `bun:"type"`
	Data      string `bun:"data"`
	Metadata  string `bun:"metadata"`
	CreatedAt any    `bun:"created_at"`
	Hash      []byte `bun:"hash"` // the chain link (package eventstore/chain)
}

// commitTimeout bounds one group transaction, so a hung database turns into
// errors for the waiting appends instead of a stuck writer.
const commitTimeout = 30 * time.Second

// insertChunk keeps one INSERT statement well below the parameter and
// statement-size limits of both databases.
const insertChunk = 500

// Append implements eventstore.Store.
func (s *Store) Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	return s.Submit(ctx, stream, expected, events...).Wait(ctx)
}

// Submit implements eventstore.Submitter: it validates the append and hands
// it to the writer, in the order of the calls, and returns at once (unless
// the writer's queue is full). The append is skipped if ctx has ended by the
// time the writer takes it.
func (s *Store) Submit(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events ...eventstore.EventData) *eventstore.Pending {
	if err := ctx.Err(); err != nil {
		return eventstore.Resolved(eventstore.AppendResult{}, err)
	}
	if s.isClosed() {
		return eventstore.Resolved(eventstore.AppendResult{}, eventstore.ErrClosed)
	}
	evs := append([]eventstore.EventData(nil), events...) // validation fills ids and metadata
	if err := eventstore.ValidateAppend(stream, evs, s.opts.NewID); err != nil {
		return eventstore.Resolved(eventstore.AppendResult{}, err)
	}
	req := &appendRequest{ctx: ctx, stream: stream, expected: expected, events: evs, done: eventstore.NewPending()}
	// Close waits for submissions in progress, so every queued request is
	// answered by the writer before it stops.
	s.submitMu.RLock()
	defer s.submitMu.RUnlock()
	if s.stopped {
		return eventstore.Resolved(eventstore.AppendResult{}, eventstore.ErrClosed)
	}
	select {
	case s.requests <- req:
	case <-ctx.Done():
		return eventstore.Resolved(eventstore.AppendResult{}, ctx.Err())
	}
	return req.done
}

// writeLoop is the single writer: it takes the appends waiting at the moment
// and commits them in one transaction, so concurrent appenders share fsyncs.
func (s *Store) writeLoop() {
	defer close(s.writerDone)
	for {
		var first *appendRequest
		select {
		case first = <-s.requests:
		case <-s.closing:
			s.failWaiting()
			return
		}
		batch := []*appendRequest{first}
		n := len(first.events)
		// Appenders answered by the last commit are usually about to send
		// their next append: yield to them, again while yielding brings
		// more, so they share this commit's sync instead of waiting for the
		// next one.
		for round := 0; round < 8 && n < s.opts.MaxBatchEvents; round++ {
			runtime.Gosched()
			before := len(batch)
		gather:
			for n < s.opts.MaxBatchEvents {
				select {
				case r := <-s.requests:
					batch = append(batch, r)
					n += len(r.events)
				default:
					break gather
				}
			}
			if len(batch) == before {
				break
			}
		}
		s.commitBatch(batch)
	}
}

// failWaiting answers the appends still queued at Close.
func (s *Store) failWaiting() {
	for {
		select {
		case r := <-s.requests:
			r.resolve(appendOutcome{err: eventstore.ErrClosed})
		default:
			return
		}
	}
}

// commitBatch commits batch in one transaction. If the transaction as a whole
// fails, each append is retried alone, so that one bad append (say, one too
// large for the disk) fails only itself.
func (s *Store) commitBatch(batch []*appendRequest) {
	live := batch[:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.resolve(appendOutcome{err: err})
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	outcomes, err := s.commit(live)
	if err != nil {
		// A failed commit may still have reached the log (a connection
		// lost during COMMIT): subscribers ask the database.
		s.unseen.Add(1)
	}
	if err != nil && len(live) > 1 {
		for _, r := range live {
			one, err := s.commit([]*appendRequest{r})
			if err != nil {
				r.resolve(appendOutcome{err: err})
				continue
			}
			r.resolve(one[0])
		}
		s.notifier.broadcast()
		return
	}
	if err != nil {
		live[0].resolve(appendOutcome{err: err})
		return
	}
	for i, r := range live {
		r.resolve(outcomes[i])
	}
	s.notifier.broadcast()
}

// storedEvent is what the batch knows about an event id already stored.
type storedEvent struct {
	stream   string
	version  int64
	position int64
}

// commit runs one group transaction and returns each append's outcome. A
// returned error means the transaction did not commit and nothing of it is
// stored.
//
// The fast path trusts the writer's cache of stream versions (valid while the
// log's head is where this writer left it) and inserts with ON CONFLICT DO
// NOTHING: if any row was not inserted or an expected version does not match
// — a retried append, an id reused, or a stream changed behind the cache — it
// rolls back and decides again with every id and version looked up.
func (s *Store) commit(batch []*appendRequest) ([]appendOutcome, error) {
	if s.batchHasDuplicateIDs(batch) {
		return s.commitTx(batch, true)
	}
	outcomes, err := s.commitTx(batch, false)
	if errors.Is(err, errRowsSkipped) {
		return s.commitTx(batch, true)
	}
	return outcomes, err
}

// errRowsSkipped says that the fast path met what may be a retried append:
// its insert skipped rows, or an expected version did not match.
var errRowsSkipped = errors.New("insert skipped rows")

func (s *Store) batchHasDuplicateIDs(batch []*appendRequest) bool {
	if len(batch) == 1 {
		return false // ValidateAppend rejected duplicates within one append
	}
	seen := make(map[string]struct{}, len(batch))
	for _, r := range batch {
		for _, e := range r.events {
			if _, dup := seen[e.ID]; dup {
				return true
			}
			seen[e.ID] = struct{}{}
		}
	}
	return false
}

func (s *Store) commitTx(batch []*appendRequest, lookUpIDs bool) ([]appendOutcome, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	started := time.Now()

	if err := s.stmts.prepare(ctx, s.dialect.writeStatements()); err != nil {
		return nil, s.classify(ctx, "prepare the append", err)
	}
	if !lookUpIDs {
		if outcomes, done, err := s.commitAtKnownHead(ctx, batch, started); done {
			return outcomes, err
		}
	}
	tx, err := s.writeDB.BeginTx(ctx, nil)
	if err != nil {
		return nil, s.classify(ctx, "begin append", err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = tx.Rollback()
		}
	}()
	fail := func(what string, err error) error { return s.classify(ctx, what, err) }
	events := 0
	for _, r := range batch {
		events += len(r.events)
	}
	reserved, err := s.dialect.reservePositions(ctx, tx.Tx, &s.stmts, events, fail)
	if err != nil {
		return nil, err
	}
	headBefore := reserved.after
	if headBefore != s.cache.head || lookUpIDs {
		// Another process appended, or we must not trust the cache.
		s.cache.reset(headBefore)
	}
	known := map[string]storedEvent{}
	if lookUpIDs {
		if known, err = s.storedIDs(ctx, tx, batch); err != nil {
			return nil, err
		}
	}
	versions, err := s.streamVersions(ctx, tx, batch)
	if err != nil {
		return nil, err
	}
	prev, err := s.prevHash(ctx, tx, headBefore, fail)
	if err != nil {
		return nil, err
	}
	now := s.opts.Now().UTC().Truncate(time.Microsecond)
	b, err := s.buildRows(batch, known, versions, headBefore, prev, now, lookUpIDs)
	if err != nil {
		return nil, err
	}
	for start := 0; start < len(b.rows); start += insertChunk {
		chunk := b.rows[start:min(start+insertChunk, len(b.rows))]
		if err := s.dialect.insert(ctx, tx.Tx, &s.stmts, chunk, start+len(chunk) == len(b.rows), fail); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		s.cache.reset(-1) // the outcome is unknown: look everything up next time
		s.chain.at = -1
		return nil, s.classify(ctx, "commit", err)
	}
	committed = true
	// The batch may not have used every position it reserved: the log
	// continues after the last reserved one.
	s.afterCommit(headBefore, max(b.head, reserved.through), b, versions, now, len(batch), started)
	return b.outcomes, nil
}

// headAppender is a dialect that can commit a batch in one statement of its
// own, outside any transaction the store begins, at the head the writer
// expects: one round trip per group commit.
type headAppender interface {
	// appendAtHead takes the log's write lock and, if the log's head is
	// expectedHead, writes rows (at positions expectedHead+1 onwards) and
	// commits; it returns the head it found, so a different head means
	// nothing was written. Rows the database refuses (a taken id or stream
	// version) make it return errRowsSkipped with nothing written.
	appendAtHead(ctx context.Context, stmts *statements, expectedHead int64, rows []eventRow, fail failFunc) (int64, error)
}

// commitAtKnownHead commits batch in one statement when the dialect can and
// the writer knows everything the batch depends on: the log's head, the hash
// there, and every stream's version, all left by its own last commit. done
// is false when it wrote nothing and the batch is to be committed in a
// transaction: it did not apply, or another writer had moved the head.
func (s *Store) commitAtKnownHead(ctx context.Context, batch []*appendRequest, started time.Time) (_ []appendOutcome, done bool, _ error) {
	d, ok := s.dialect.(headAppender)
	if !ok || s.cache.head < 0 || s.chain.at != s.cache.head {
		return nil, false, nil
	}
	versions := make(map[string]int64, len(batch))
	for _, r := range batch {
		v, ok := s.cache.versions[r.stream]
		if !ok {
			return nil, false, nil // a stream this writer has not seen: look it up
		}
		versions[r.stream] = v
	}
	headBefore := s.cache.head
	now := s.opts.Now().UTC().Truncate(time.Microsecond)
	b, err := s.buildRows(batch, nil, versions, headBefore, s.chain.prev, now, false)
	if err != nil || len(b.rows) == 0 {
		return nil, err != nil, err
	}
	fail := func(what string, err error) error { return s.classify(ctx, what, err) }
	found, err := d.appendAtHead(ctx, &s.stmts, headBefore, b.rows, fail)
	switch {
	case errors.Is(err, errRowsSkipped):
		return nil, true, err
	case err != nil:
		s.cache.reset(-1) // the outcome is unknown: look everything up next time
		s.chain.at = -1
		return nil, true, err
	case found != headBefore:
		s.cache.reset(-1)
		return nil, false, nil
	}
	s.headCommits.Add(1)
	s.afterCommit(headBefore, b.head, b, versions, now, len(batch), started)
	return b.outcomes, true, nil
}

// builtRows is a batch made ready to insert: its rows, each append's
// outcome if the rows commit, and the position and hash of the last row.
type builtRows struct {
	rows     []eventRow
	outcomes []appendOutcome
	head     int64
	prev     chain.Hash
}

// buildRows places the batch's events after headBefore, continuing each
// stream from versions (which it updates) and the chain from prev. known
// holds the batch's ids already stored (with lookUpIDs); without lookUpIDs
// an expected version that does not match is errRowsSkipped, since the
// append may be the retry of a stored one.
func (s *Store) buildRows(batch []*appendRequest, known map[string]storedEvent, versions map[string]int64, headBefore int64, prev chain.Hash, now time.Time, lookUpIDs bool) (builtRows, error) {
	events := 0
	for _, r := range batch {
		events += len(r.events)
	}
	created := s.dialect.timeValue(now)
	link := chain.Event{Time: now.UnixMicro()}
	hashes := make([]chain.Hash, 0, events) // the rows' Hash fields point into it
	b := builtRows{outcomes: make([]appendOutcome, len(batch)), head: headBefore, rows: make([]eventRow, 0, events)}
	for i, r := range batch {
		if res, ok, err := repeatOf(r, known); ok || err != nil {
			b.outcomes[i] = appendOutcome{result: res, err: err}
			continue
		}
		current := versions[r.stream]
		if !r.expected.Allows(current) {
			if !lookUpIDs {
				// It may be a retry of a stored append: decide with ids looked up.
				return builtRows{}, errRowsSkipped
			}
			b.outcomes[i] = appendOutcome{err: &eventstore.WrongExpectedVersionError{Stream: r.stream, Expected: r.expected, Actual: current}}
			continue
		}
		res := eventstore.AppendResult{Positions: make([]eventstore.Position, len(r.events))}
		for j, e := range r.events {
			current++
			b.head++
			link.Position, link.ID, link.Stream, link.Version, link.Type = uint64(b.head), e.ID, r.stream, uint64(current), e.Type
			link.Data, link.Metadata = e.Data, e.Metadata
			prev = s.chain.hasher.Next(prev, &link)
			hashes = append(hashes, prev)
			b.rows = append(b.rows, eventRow{
				Position: b.head, EventID: e.ID, Stream: r.stream, Version: current, Type: e.Type,
				Data: string(e.Data), Metadata: string(e.Metadata), CreatedAt: created, Hash: hashes[len(hashes)-1][:],
			})
			if known != nil {
				known[e.ID] = storedEvent{stream: r.stream, version: current, position: b.head}
			}
			res.Positions[j] = eventstore.Pos(uint64(b.head))
		}
		res.StreamVersion = uint64(current)
		versions[r.stream] = current
		b.outcomes[i] = appendOutcome{result: res}
	}
	b.prev = prev
	return b, nil
}

// afterCommit records a committed batch: the log now continues after
// through, with the batch's versions and last hash.
func (s *Store) afterCommit(headBefore, through int64, b builtRows, versions map[string]int64, now time.Time, appends int, started time.Time) {
	s.cache.update(through, versions)
	s.chain.at, s.chain.prev = through, b.prev
	s.tail.add(headBefore, through, b.rows, now)
	if s.opts.OnCommit != nil {
		s.opts.OnCommit(appends, len(b.rows), time.Since(started))
	}
}

// repeatOf decides whether r repeats an append already stored: when every
// event id of r is stored in r's stream, in order and at consecutive
// versions, it returns the original result. Ids stored elsewhere, or only
// some of them, are ErrDuplicateEventID.
func repeatOf(r *appendRequest, known map[string]storedEvent) (eventstore.AppendResult, bool, error) {
	found := 0
	for _, e := range r.events {
		if _, ok := known[e.ID]; ok {
			found++
		}
	}
	if found == 0 {
		return eventstore.AppendResult{}, false, nil
	}
	if found < len(r.events) {
		return eventstore.AppendResult{}, false, fmt.Errorf("%d of %d event ids of this append are stored already: %w", found, len(r.events), eventstore.ErrDuplicateEventID)
	}
	res := eventstore.AppendResult{Positions: make([]eventstore.Position, len(r.events))}
	first := known[r.events[0].ID]
	for j, e := range r.events {
		k := known[e.ID]
		if k.stream != r.stream {
			return eventstore.AppendResult{}, false, fmt.Errorf("event %s is stored in stream %q, not %q: %w", e.ID, k.stream, r.stream, eventstore.ErrDuplicateEventID)
		}
		if k.version != first.version+int64(j) {
			return eventstore.AppendResult{}, false, fmt.Errorf("event ids stored in another order: %w", eventstore.ErrDuplicateEventID)
		}
		res.Positions[j] = eventstore.Pos(uint64(k.position))
		res.StreamVersion = uint64(k.version)
	}
	return res, true, nil
}

// storedIDs looks up which event ids of the batch are stored already.
func (s *Store) storedIDs(ctx context.Context, tx bun.Tx, batch []*appendRequest) (map[string]storedEvent, error) {
	var ids []string
	for _, r := range batch {
		for _, e := range r.events {
			ids = append(ids, e.ID)
		}
	}
	known := make(map[string]storedEvent)
	for start := 0; start < len(ids); start += insertChunk {
		var found []struct {
			EventID  string `bun:"event_id"`
			Stream   string `bun:"stream"`
			Version  int64  `bun:"version"`
			Position int64  `bun:"position"`
		}
		err := tx.NewSelect().Table("events").Column("event_id", "stream", "version", "position").
			Where("event_id IN (?)", bun.List(ids[start:min(start+insertChunk, len(ids))])).Scan(ctx, &found)
		if err != nil {
			return nil, s.classify(ctx, "check event ids", err)
		}
		for _, f := range found {
			known[f.EventID] = storedEvent{stream: f.Stream, version: f.Version, position: f.Position}
		}
	}
	return known, nil
}

// streamVersions returns the last version of every stream the batch appends
// to, from the cache or the database; streams without events are -1.
func (s *Store) streamVersions(ctx context.Context, tx bun.Tx, batch []*appendRequest) (map[string]int64, error) {
	versions := make(map[string]int64, len(batch))
	var streams []string
	for _, r := range batch {
		if _, ok := versions[r.stream]; ok {
			continue
		}
		if v, ok := s.cache.versions[r.stream]; ok {
			versions[r.stream] = v
			continue
		}
		versions[r.stream] = -1
		streams = append(streams, r.stream)
	}
	for start := 0; start < len(streams); start += insertChunk {
		var found []struct {
			Stream  string `bun:"stream"`
			Version int64  `bun:"version"`
		}
		err := tx.NewSelect().Table("events").ColumnExpr("stream, MAX(version) AS version").
			Where("stream IN (?)", bun.List(streams[start:min(start+insertChunk, len(streams))])).
			Group("stream").Scan(ctx, &found)
		if err != nil {
			return nil, s.classify(ctx, "read stream versions", err)
		}
		for _, f := range found {
			versions[f.Stream] = f.Version
		}
	}
	return versions, nil
}

// versionCache remembers the last version of recently written streams and
// the head this writer left the log at. It is owned by the writer goroutine.
// It is trusted only while the head is unchanged when the next transaction
// takes the write lock: any other writer moves the head.
type versionCache struct {
	head     int64
	versions map[string]int64
}

// maxCachedStreams bounds the cache; past it, the cache starts over.
const maxCachedStreams = 100000

func (c *versionCache) reset(head int64) {
	c.head = head
	c.versions = make(map[string]int64)
}

func (c *versionCache) update(head int64, versions map[string]int64) {
	if c.versions == nil || len(c.versions)+len(versions) > maxCachedStreams {
		c.versions = make(map[string]int64, len(versions))
	}
	c.head = head
	for k, v := range versions {
		c.versions[k] = v
	}
}
