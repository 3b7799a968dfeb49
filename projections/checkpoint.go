package projections

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"

	"github.com/uptrace/bun"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
)

// checkpointRow is a row of projection_checkpoints.
type checkpointRow struct {
	bun.BaseModel `bun:"table:projection_checkpoints"`

	Name            string `bun:"name,pk"`
	Version         int    `bun:"version"`
	CommitPosition  int64  `bun:"commit_position"`
	PreparePosition int64  `bun:"prepare_position"`
}

func (c checkpointRow) position() eventstore.Position {
	return eventstore.Position{Commit: uint64(c.CommitPosition), Prepare: uint64(c.PreparePosition)}
}

// errCheckpointMoved says that a projection's checkpoint is not where its
// runner left it: a rebuild swapped its tables in. The runner reloads.
var errCheckpointMoved = errors.New("projection checkpoint moved under the runner (a rebuild swapped tables in)")

func unknownProjection(name string) error {
	return domain.Errorf(domain.EINVALID, "unknown projection %q (known: online-users, chat-history, app-status)", name)
}

// dbPosition converts a log position to the two BIGINT columns.
func dbPosition(p eventstore.Position) (int64, int64, error) {
	if p.Commit > math.MaxInt64 || p.Prepare > math.MaxInt64 {
		return 0, 0, fmt.Errorf("position %v does not fit a BIGINT", p)
	}
	return int64(p.Commit), int64(p.Prepare), nil
}

// loadCheckpoint returns a projection's checkpoint row and whether it exists.
func loadCheckpoint(ctx context.Context, db bun.IDB, name string) (checkpointRow, bool, error) {
	var row checkpointRow
	err := db.NewSelect().Model(&row).Where("name = ?", name).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return checkpointRow{Name: name}, false, nil
	}
	if err != nil {
		return row, false, fmt.Errorf("load checkpoint of %s: %w", name, err)
	}
	return row, true, nil
}

// saveCheckpoint inserts or replaces a checkpoint row.
func saveCheckpoint(ctx context.Context, db bun.IDB, name string, version int, p eventstore.Position) error {
	c, pp, err := dbPosition(p)
	if err != nil {
		return err
	}
	row := checkpointRow{Name: name, Version: version, CommitPosition: c, PreparePosition: pp}
	_, err = db.NewInsert().Model(&row).
		On("CONFLICT (name) DO UPDATE").
		Set("version = EXCLUDED.version").
		Set("commit_position = EXCLUDED.commit_position").
		Set("prepare_position = EXCLUDED.prepare_position").
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("save checkpoint of %s: %w", name, err)
	}
	return nil
}

// advanceCheckpoint moves a checkpoint from one position to the next inside
// the transaction that applied the events between them. It returns
// errCheckpointMoved when the checkpoint is no longer at from.
func advanceCheckpoint(ctx context.Context, tx bun.Tx, name string, from, to eventstore.Position) error {
	fc, fp, err := dbPosition(from)
	if err != nil {
		return err
	}
	tc, tp, err := dbPosition(to)
	if err != nil {
		return err
	}
	res, err := tx.NewUpdate().Model((*checkpointRow)(nil)).
		Set("commit_position = ?", tc).Set("prepare_position = ?", tp).
		Where("name = ? AND commit_position = ? AND prepare_position = ?", name, fc, fp).
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("advance checkpoint of %s: %w", name, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return errCheckpointMoved
	}
	return nil
}
