package sqlstore

import (
	"context"
	"fmt"
	"iter"
	"time"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/chain"
)

// ErrNotEmpty is the error of Import into a store that holds events.
var ErrNotEmpty = domain.Errorf(domain.ECONFLICT, "the target event store is not empty: import loads a log into an empty store only")

// importProgressEvery is how many rows Import writes between progress
// reports.
const importProgressEvery = 10000

// Import loads a whole log into this store, which must be empty: the events
// keep their ids, streams, versions, types, data, metadata (byte for byte)
// and times, and take positions 1, 2, … in the order given; the hash chain is
// computed for the new positions. Each stream's versions must run 0, 1, 2, …
// in that order. Everything is written in one transaction under the log's
// write lock, in bulk (a prepared multi-row INSERT on SQLite, COPY on PostgreSQL), so an import that fails stores
// nothing. progress, when set, is called with the number of events written
// so far every few thousand events.
//
// It returns ErrNotEmpty (ECONFLICT) when the store holds events, EINVALID
// for an event the port would not accept or a version out of sequence, the
// iterator's own errors, ctx's error, and EUNAVAILABLE when the database
// fails.
func (s *Store) Import(ctx context.Context, events iter.Seq2[eventstore.RecordedEvent, error], progress func(n int)) (int, error) {
	if s.isClosed() {
		return 0, eventstore.ErrClosed
	}
	fail := func(what string, err error) error { return s.classify(ctx, what, err) }
	tx, err := s.writeDB.BeginTx(ctx, nil)
	if err != nil {
		return 0, fail("begin the import", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it does nothing
	if err := s.dialect.lockLog(ctx, tx.Tx, fail); err != nil {
		return 0, err
	}
	var any int
	if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM (SELECT 1 FROM events LIMIT 1) AS one").Scan(&any); err != nil {
		return 0, fail("check that the store is empty", err)
	}
	if any > 0 {
		return 0, ErrNotEmpty
	}

	hasher := chain.NewHasher()
	var prev chain.Hash
	versions := map[string]uint64{}
	rows := make([]eventRow, 0, insertChunk)
	hashes := make([]chain.Hash, insertChunk)
	n := 0
	load, err := s.dialect.newLoader(ctx, tx.Tx, fail)
	if err != nil {
		return 0, err
	}
	loading := true
	defer func() {
		if loading {
			_ = load.close()
		}
	}()
	flush := func() error {
		if len(rows) == 0 {
			return nil
		}
		if err := load.add(rows); err != nil {
			return duplicateInImport(err)
		}
		rows = rows[:0]
		return nil
	}
	for e, err := range events {
		if err != nil {
			return 0, err
		}
		if err := validateImported(&e, versions); err != nil {
			return 0, fmt.Errorf("import: event %d: %w", n+1, err)
		}
		n++
		at := e.Time.UTC().Truncate(time.Microsecond)
		link := chain.Event{Position: uint64(n), ID: e.ID, Stream: e.Stream, Version: e.Version, Type: e.Type, Data: e.Data, Metadata: e.Metadata, Time: at.UnixMicro()}
		prev = hasher.Next(prev, &link)
		i := len(rows)
		hashes[i] = prev
		rows = append(rows, eventRow{
			Position: int64(n), EventID: e.ID, Stream: e.Stream, Version: int64(e.Version), Type: e.Type,
			Data: string(e.Data), Metadata: string(e.Metadata), CreatedAt: s.dialect.timeValue(at), Hash: hashes[i][:],
		})
		if len(rows) == insertChunk {
			if err := flush(); err != nil {
				return 0, err
			}
		}
		if progress != nil && n%importProgressEvery == 0 {
			progress(n)
		}
	}
	if err := flush(); err != nil {
		return 0, err
	}
	loading = false
	if err := load.close(); err != nil {
		return 0, duplicateInImport(err)
	}
	if err := s.dialect.afterImport(ctx, tx.Tx, int64(n), fail); err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, fail("commit the import", err)
	}
	if progress != nil {
		progress(n)
	}
	s.wakeUnseen()
	return n, nil
}

// validateImported applies the port's rules to an imported event and checks
// that its version follows the previous one of its stream.
func validateImported(e *eventstore.RecordedEvent, versions map[string]uint64) error {
	if len(e.Metadata) == 0 {
		return domain.Errorf(domain.EINVALID, "metadata is empty (stored events have at least {})")
	}
	d := []eventstore.EventData{{ID: e.ID, Type: e.Type, Data: e.Data, Metadata: e.Metadata}}
	if e.ID == "" {
		return domain.Errorf(domain.EINVALID, "the event has no id")
	}
	if err := eventstore.ValidateAppend(e.Stream, d, nil); err != nil {
		return err
	}
	want := versions[e.Stream]
	if e.Version != want {
		return domain.Errorf(domain.EINVALID, "stream %q: version %d, want %d (versions run 0, 1, 2, … in log order)", e.Stream, e.Version, want)
	}
	versions[e.Stream] = want + 1
	return nil
}

// duplicateInImport names the constraint an import can violate: into an
// empty store, only an event id (or a stream version) given twice.
func duplicateInImport(err error) error {
	if domain.ErrorCode(err) == domain.ECONFLICT {
		return domain.WrapError(domain.ECONFLICT, "import: an event id, or a version of a stream, appears twice in the log", err)
	}
	return err
}
