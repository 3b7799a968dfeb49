package projections

import (
	"context"

	"github.com/uptrace/bun"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
)

// reactorPrefix starts the checkpoint name of every reactor, so a reactor's
// row never collides with a projection's.
const reactorPrefix = "reactor:"

// reactorCheckpointVersion is the version written in reactors' checkpoint
// rows; reactors have no tables to rebuild.
const reactorCheckpointVersion = 1

// ReactorCheckpoints stores reactors' positions in the log (the AI
// assistant's, say) in the projection_checkpoints table, one row named
// "reactor:<name>" each. It implements commands.ReactorCheckpoints.
type ReactorCheckpoints struct{ DB bun.IDB }

// Load returns the reactor's stored position and true, or false for a
// reactor never saved. It returns an EUNAVAILABLE error when the read
// database cannot be read.
func (c ReactorCheckpoints) Load(ctx context.Context, name string) (eventstore.Position, bool, error) {
	row, ok, err := loadCheckpoint(ctx, c.DB, reactorPrefix+name)
	if err != nil {
		return eventstore.Start, false, readError("reactor checkpoint", err)
	}
	return row.position(), ok, nil
}

// Save stores the reactor's position, replacing the previous one. Once it
// returns nil the position survives a restart. It returns an EUNAVAILABLE
// error when the read database cannot be written.
func (c ReactorCheckpoints) Save(ctx context.Context, name string, pos eventstore.Position) error {
	if err := saveCheckpoint(ctx, c.DB, reactorPrefix+name, reactorCheckpointVersion, pos); err != nil {
		return domain.WrapError(domain.EUNAVAILABLE, "read database unavailable: save reactor checkpoint", err)
	}
	return nil
}
