package projections

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"

	"github.com/uptrace/bun"

	"github.com/auraos/realtime/domain"
)

// RecoverySession is a socket session that its client may recover after a
// disconnect, on this server or another sharing the read database. It is
// written by the Socket.IO adapter directly (it is not folded from the
// log), in the read database that owns it.
type RecoverySession struct {
	bun.BaseModel `bun:"table:recovery_sessions"`

	// PIDHash is the hex SHA-256 of the private session id the client
	// presents; the id itself is never stored.
	PIDHash string `bun:"pid_hash,pk"`
	// SessionID is the socket id, which a recovered socket keeps.
	SessionID string `bun:"session_id"`
	// NodeID is the server that serves it, or served it last.
	NodeID string `bun:"node_id"`
	// Generation grows by one with every claim; a server writes only the
	// generation it claimed.
	Generation int64 `bun:"generation"`
	// Revision orders the writes of one generation.
	Revision int64  `bun:"revision"`
	UserID   string `bun:"user_id"`
	// State is the adapter's JSON of the session: identity, rooms,
	// memberships.
	State string `bun:"state"`
	// Connected is set while a server serves the session.
	Connected bool `bun:"connected"`
	// DisconnectedAt is when it was last disconnected, in unix
	// microseconds; null while connected.
	DisconnectedAt sql.NullInt64 `bun:"disconnected_at"`
	// EndReason is the reason its memberships end with if it does not
	// come back (disconnect, server_restart, node_down).
	EndReason string `bun:"end_reason"`
	// Ended says its presence and chat memberships were ended in the log.
	Ended bool `bun:"ended"`
}

// RecoverySessions stores RecoverySession rows. Every method returns an
// EUNAVAILABLE error when the read database cannot be reached.
type RecoverySessions struct{ DB bun.IDB }

// Save inserts the row, or updates it if the stored row has the same
// generation and an older revision: writes of a server that lost the
// session to a claim, and writes that arrive out of order, change nothing.
func (r RecoverySessions) Save(ctx context.Context, row RecoverySession) error {
	_, err := r.DB.NewInsert().Model(&row).
		On("CONFLICT (pid_hash) DO UPDATE").
		Set("user_id = EXCLUDED.user_id").
		Set("state = EXCLUDED.state").
		Set("revision = EXCLUDED.revision").
		Where("recovery_session.generation = EXCLUDED.generation AND recovery_session.revision < EXCLUDED.revision").
		Exec(ctx)
	return readError("save a recoverable session", err)
}

// Suspend records that the session of that generation was disconnected at
// at, and with which reason its memberships end if it does not come back.
// It reports false when another server claimed the session meanwhile.
func (r RecoverySessions) Suspend(ctx context.Context, pidHash string, generation int64, at time.Time, reason string) (bool, error) {
	res, err := r.DB.NewUpdate().Model((*RecoverySession)(nil)).
		Set("connected = ?", false).Set("disconnected_at = ?", micros(at)).Set("end_reason = ?", reason).
		Where("pid_hash = ? AND generation = ?", pidHash, generation).Exec(ctx)
	return affected(res, err, "suspend a recoverable session")
}

// Claim takes the session for node: it must be disconnected since
// notBefore or later, or connected on another node (whose connection the
// client has given up); it returns the row with its new generation, or
// false when there is no such session.
func (r RecoverySessions) Claim(ctx context.Context, pidHash, node string, notBefore time.Time) (RecoverySession, bool, error) {
	var row RecoverySession
	err := r.DB.NewUpdate().Model(&row).
		Set("generation = generation + 1").Set("revision = 0").Set("node_id = ?", node).
		Set("connected = ?", true).Set("disconnected_at = NULL").
		Where("pid_hash = ?", pidHash).
		Where("(connected = ? AND disconnected_at >= ?) OR (connected = ? AND node_id <> ?)", false, micros(notBefore), true, node).
		Returning("*").Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return RecoverySession{}, false, nil
	}
	if err != nil {
		return RecoverySession{}, false, readError("claim a recoverable session", err)
	}
	return row, true, nil
}

// Due returns, oldest first and at most limit, the sessions disconnected
// before before whose memberships are not ended yet.
func (r RecoverySessions) Due(ctx context.Context, before time.Time, limit int) ([]RecoverySession, error) {
	var rows []RecoverySession
	err := r.DB.NewSelect().Model(&rows).
		Where("connected = ? AND ended = ? AND disconnected_at < ?", false, false, micros(before)).
		Order("disconnected_at").Limit(int64(limit)).Scan(ctx)
	return rows, readError("due recoverable sessions", err)
}

// StillDue reports whether the session of that generation is still
// disconnected with its memberships open.
func (r RecoverySessions) StillDue(ctx context.Context, pidHash string, generation int64) (bool, error) {
	n, err := r.DB.NewSelect().Model((*RecoverySession)(nil)).
		Where("pid_hash = ? AND generation = ? AND connected = ? AND ended = ?", pidHash, generation, false, false).Count(ctx)
	return n > 0, readError("check a recoverable session", err)
}

// MarkEnded records that the memberships of the session of that generation
// are ended in the log. It reports false when the session was claimed
// meanwhile.
func (r RecoverySessions) MarkEnded(ctx context.Context, pidHash string, generation int64) (bool, error) {
	res, err := r.DB.NewUpdate().Model((*RecoverySession)(nil)).Set("ended = ?", true).
		Where("pid_hash = ? AND generation = ? AND connected = ?", pidHash, generation, false).Exec(ctx)
	return affected(res, err, "mark a recoverable session ended")
}

// Delete removes the session of that generation (it ended for good).
func (r RecoverySessions) Delete(ctx context.Context, pidHash string, generation int64) error {
	_, err := r.DB.NewDelete().Model((*RecoverySession)(nil)).Where("pid_hash = ? AND generation = ?", pidHash, generation).Exec(ctx)
	return readError("delete a recoverable session", err)
}

// Expire removes the sessions disconnected before before whose
// memberships are ended: they can no longer be recovered. It returns how
// many it removed.
func (r RecoverySessions) Expire(ctx context.Context, before time.Time) (int, error) {
	res, err := r.DB.NewDelete().Model((*RecoverySession)(nil)).
		Where("connected = ? AND ended = ? AND disconnected_at < ?", false, true, micros(before)).Exec(ctx)
	if err != nil {
		return 0, readError("expire recoverable sessions", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// SuspendNode records that every session node serves was disconnected at
// at, with reason: the node restarted or died. It fences the node's writes
// (their generation grows) and returns the session ids it suspended.
func (r RecoverySessions) SuspendNode(ctx context.Context, node string, at time.Time, reason string) ([]string, error) {
	var ids []string
	err := r.DB.NewUpdate().Model((*RecoverySession)(nil)).
		Set("generation = generation + 1").Set("revision = 0").
		Set("connected = ?", false).Set("disconnected_at = ?", micros(at)).Set("end_reason = ?", reason).
		Where("node_id = ? AND connected = ?", node, true).
		Returning("session_id").Scan(ctx, &ids)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return ids, readError("suspend a node's recoverable sessions", err)
}

// Pending returns the ids of the sessions of node whose memberships the
// grace sweep will end (or a client may still recover): they are not to be
// ended at once.
func (r RecoverySessions) Pending(ctx context.Context, node string) (map[string]bool, error) {
	var ids []string
	err := r.DB.NewSelect().Model((*RecoverySession)(nil)).Column("session_id").
		Where("node_id = ? AND ended = ?", node, false).Scan(ctx, &ids)
	if err != nil {
		return nil, readError("pending recoverable sessions", err)
	}
	out := make(map[string]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}

func affected(res sql.Result, err error, what string) (bool, error) {
	if err != nil {
		return false, readError(what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, readError(what, err)
	}
	return n > 0, nil
}

// ForgetUser rewrites the profiles of userID that the recoverable sessions'
// states hold (every JSON object whose uid is userID and that has an email)
// to the placeholders, keeping the rest of each state, so that those
// sessions still recover or end as before. A session a server serves at
// this moment may write its profile back from memory: forget users after
// they have disconnected. It returns how many rows it rewrote, or an
// EUNAVAILABLE error.
func (r RecoverySessions) ForgetUser(ctx context.Context, userID string) (int, error) {
	var rows []RecoverySession
	if err := r.DB.NewSelect().Model(&rows).Where("user_id = ?", userID).Scan(ctx); err != nil {
		return 0, readError("read recoverable sessions", err)
	}
	n := 0
	for _, row := range rows {
		var state any
		if err := json.Unmarshal([]byte(row.State), &state); err != nil {
			continue // not the adapter's JSON: nothing it could hold
		}
		if !scrubProfiles(state, userID) {
			continue
		}
		b, err := json.Marshal(state)
		if err != nil {
			return n, err
		}
		if _, err := r.DB.NewUpdate().Model((*RecoverySession)(nil)).Set("state = ?", string(b)).
			Where("pid_hash = ?", row.PIDHash).Exec(ctx); err != nil {
			return n, readError("rewrite a recoverable session", err)
		}
		n++
	}
	return n, nil
}

// scrubProfiles sets, in v, every profile of userID to the placeholders,
// and reports whether it changed anything.
func scrubProfiles(v any, userID string) bool {
	changed := false
	switch v := v.(type) {
	case map[string]any:
		if uid, _ := v["uid"].(string); uid == userID {
			if _, isProfile := v["email"]; isProfile {
				v["email"], v["displayName"], v["photoURL"] = "", domain.PlaceholderName, ""
				changed = true
			}
		}
		for _, child := range v {
			changed = scrubProfiles(child, userID) || changed
		}
	case []any:
		for _, child := range v {
			changed = scrubProfiles(child, userID) || changed
		}
	}
	return changed
}
