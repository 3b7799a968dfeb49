package projections

import (
	"context"

	"github.com/uptrace/bun"

	"github.com/auraos/realtime/eventstore"
)

// Status describes one projection for `auraos projections status`.
type Status struct {
	Name          string
	Version       int  // the code's version
	StoredVersion int  // the version that wrote the tables; 0 if never run
	Started       bool // whether it has a checkpoint
	Checkpoint    eventstore.Position
	Head          eventstore.Position
	// Lag is how far the checkpoint trails the head, in commit positions:
	// about the number of events for the SQL stores (PostgreSQL positions may
	// have gaps left by rolled-back appends, so it can overstate slightly).
	Lag uint64
	// NeedsRebuild is set when the stored version differs from the code's.
	NeedsRebuild bool
	// RebuildInProgress is set while (or after an interrupted) rebuild left
	// its checkpoint behind.
	RebuildInProgress bool
}

// StatusQuery reports every projection's checkpoint against the log's head.
type StatusQuery struct {
	DB       bun.IDB
	EventLog EventLog
}

// Handle returns the status of each projection in ps.
func (q StatusQuery) Handle(ctx context.Context, ps []Projection) ([]Status, error) {
	head, err := q.EventLog.Head(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Status, 0, len(ps))
	for _, p := range ps {
		row, ok, err := loadCheckpoint(ctx, q.DB, p.Name())
		if err != nil {
			return nil, readError("checkpoints", err)
		}
		_, rebuilding, err := loadCheckpoint(ctx, q.DB, p.Name()+rebuildSuffix)
		if err != nil {
			return nil, readError("checkpoints", err)
		}
		s := Status{
			Name: p.Name(), Version: p.Version(), Started: ok, Head: head,
			StoredVersion: row.Version, Checkpoint: row.position(), RebuildInProgress: rebuilding,
		}
		s.NeedsRebuild = ok && row.Version != p.Version()
		if s.Checkpoint.Commit < head.Commit {
			s.Lag = head.Commit - s.Checkpoint.Commit
		}
		out = append(out, s)
	}
	return out, nil
}
