package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/follow"
	"github.com/auraos/realtime/schema"
)

// Cut is a moment of the log: a prefix of it, which is what a runner's
// tables hold when its checkpoint stands at the prefix's end.
type Cut struct {
	through eventstore.Position
	at      time.Time
	byTime  bool
}

// AtPosition is the cut after the event at p: the events at positions ≤ p.
// Start is the moment before the first event.
func AtPosition(p eventstore.Position) Cut { return Cut{through: p} }

// AtTime is the cut at t: the log up to, not including, its first event
// committed after t (commit times compared as instants, at the store's
// microsecond precision; an event committed exactly at t is in). While
// commit times grow with positions, as one writer's clock makes them, these
// are exactly the events committed at or before t; should a clock have
// stepped back, an event after the first later one stays out even if its
// time is earlier, because no runner ever held a set of events that is not
// a prefix of the log.
func AtTime(t time.Time) Cut { return Cut{at: t, byTime: true} }

// String says where the cut is, for messages.
func (c Cut) String() string {
	if c.byTime {
		return "time " + c.at.UTC().Format(time.RFC3339Nano)
	}
	return "position " + c.through.String()
}

// FoldResult says what Fold folded.
type FoldResult struct {
	// Through is the position the folded tables stand at, as a runner's
	// checkpoint would: the cut's position, or for a time cut the last
	// event before it; never past the head Fold found. Start means before
	// the first event: the tables are empty.
	Through eventstore.Position
	// Events is how many events were applied, each counted once however
	// many projections read it.
	Events int
}

// foldPage is how many events Fold reads and applies at a time.
const foldPage = 5000

// Fold applies the log up to cut to the live tables of ps in db, with each
// projection's own Apply, in log order, and writes each projection's
// checkpoint at the result's Through: db then holds exactly the rows a
// runner held with its checkpoint there (Apply is deterministic and does not
// depend on how the log is cut into batches; TestLiveEqualsRebuild checks
// that). db's tables must be empty. A position cut reads only the event types
// ps read; a time cut reads every event, since the first event after the
// moment may be of any type. It returns EUNAVAILABLE when the log cannot be
// read or db cannot take the checkpoints, EINVALID for an event this code
// cannot decode, and an uncoded (INTERNAL) error when a projection's Apply
// fails.
func Fold(ctx context.Context, db *bun.DB, eventLog EventLog, ps []Projection, cut Cut) (FoldResult, error) {
	var res FoldResult
	head, err := eventLog.Head(ctx)
	if err != nil {
		return res, err
	}
	bound := head
	if !cut.byTime && cut.through.Less(head) {
		bound = cut.through
	}
	filters := make([]eventstore.Filter, len(ps))
	var types []string
	for i, p := range ps {
		filters[i] = eventstore.Filter{EventTypes: p.EventTypes()}
		types = append(types, p.EventTypes()...)
	}
	var read eventstore.Filter
	if !cut.byTime {
		read.EventTypes = types
		res.Through = bound
	}

	from, last, readAny := eventstore.Start, eventstore.Start, false
	for done := bound.IsZero(); !done; {
		evs, err := eventLog.ReadAll(ctx, eventstore.ReadAllOptions{From: from, Filter: read, Limit: foldPage})
		if err != nil {
			return res, err
		}
		done = len(evs) < foldPage
		var page []eventstore.RecordedEvent
		for _, e := range evs {
			if readAny && !last.Less(e.Position) {
				continue // From is inclusive: the page starts with the last one read
			}
			if bound.Less(e.Position) || (cut.byTime && e.Time.After(cut.at)) {
				done = true
				break
			}
			last, readAny = e.Position, true
			if cut.byTime {
				res.Through = e.Position
			}
			for _, f := range filters {
				if f.Match(e.Stream, e.Type) {
					page = append(page, e)
					break
				}
			}
		}
		if err := foldPageInto(ctx, db, ps, filters, page); err != nil {
			return res, err
		}
		res.Events += len(page)
		from = last
	}
	for _, p := range ps {
		if err := saveCheckpoint(ctx, db, p.Name(), p.Version(), res.Through); err != nil {
			return res, readError("fold checkpoint", err)
		}
	}
	return res, nil
}

// foldPageInto decodes a page once and applies to each projection the events
// it reads, in one transaction.
func foldPageInto(ctx context.Context, db *bun.DB, ps []Projection, filters []eventstore.Filter, page []eventstore.RecordedEvent) error {
	if len(page) == 0 {
		return nil
	}
	events, err := follow.Decode(page)
	if err != nil {
		return err
	}
	err = db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		for i, p := range ps {
			var mine []Envelope
			for _, e := range events {
				if filters[i].Match(e.Stream, e.Type) {
					mine = append(mine, e)
				}
			}
			if len(mine) == 0 {
				continue
			}
			if err := p.Apply(ctx, tx, Live, mine); err != nil {
				return fmt.Errorf("fold %d events into %s: %w", len(mine), p.Name(), err)
			}
		}
		return nil
	})
	return err
}

// FoldInMemory folds the log up to cut (see Fold) into a temporary in-memory
// SQLite database migrated with the read-model schema, and returns it for
// the projections' queries; closing it discards it. Nothing is written
// anywhere else. It returns Fold's errors, and EUNAVAILABLE when the
// database cannot be made.
func FoldInMemory(ctx context.Context, eventLog EventLog, ps []Projection, cut Cut) (*bun.DB, FoldResult, error) {
	db, err := schema.OpenSQLiteMemory()
	if err != nil {
		return nil, FoldResult{}, domain.WrapError(domain.EUNAVAILABLE, "open an in-memory database to fold the log into", err)
	}
	if err := schema.Migrate(ctx, db, schema.ReadModels); err != nil {
		db.Close()
		return nil, FoldResult{}, domain.WrapError(domain.EUNAVAILABLE, "migrate the in-memory read models", err)
	}
	res, err := Fold(ctx, db, eventLog, ps, cut)
	if err != nil {
		db.Close()
		return nil, res, err
	}
	return db, res, nil
}

// Checkpoint is where a projection's tables stand and which version of its
// code wrote them.
type Checkpoint struct {
	Position eventstore.Position
	Version  int
}

// CheckpointQuery reads a projection's checkpoint without writing anything,
// for readers of a database they must not change.
type CheckpointQuery struct{ DB bun.IDB }

// Handle returns p's checkpoint and whether p has one (false: it never ran
// on this database). It returns EUNAVAILABLE when the database cannot
// answer, the read-model tables missing included.
func (q CheckpointQuery) Handle(ctx context.Context, p Projection) (Checkpoint, bool, error) {
	row, ok, err := loadCheckpoint(ctx, q.DB, p.Name())
	if err != nil {
		return Checkpoint{}, false, readError("checkpoints", err)
	}
	return Checkpoint{Position: row.position(), Version: row.Version}, ok, nil
}
