package projections

import (
	"context"
	"sync"
	"time"

	"github.com/uptrace/bun"
)

// SessionSaver is RecoverySessions whose Saves group commit: saves that
// arrive while one transaction is being written share the next one, each
// with its own generation and revision check, so a storm of joins costs a
// few transactions on the read database's one writer, not one each (and
// the projection runners sharing that writer are not starved). Its zero
// value is not usable: build it with NewSessionSaver.
type SessionSaver struct {
	RecoverySessions

	mu      sync.Mutex
	queue   []*pendingSave
	leading bool
}

type pendingSave struct {
	row  RecoverySession
	done chan error
}

// saveTimeout bounds one grouped transaction: the leader writes others'
// rows too, so its own context's cancellation must not fail theirs.
const saveTimeout = 10 * time.Second

// NewSessionSaver returns a SessionSaver writing to db.
func NewSessionSaver(db bun.IDB) *SessionSaver {
	return &SessionSaver{RecoverySessions: RecoverySessions{DB: db}}
}

// Save stores row as RecoverySessions.Save does, in a transaction shared
// with the saves queued meanwhile. It returns when row is committed or has
// failed (an EUNAVAILABLE error), or when ctx ends first (the row may still
// be written).
func (s *SessionSaver) Save(ctx context.Context, row RecoverySession) error {
	req := &pendingSave{row: row, done: make(chan error, 1)}
	s.mu.Lock()
	s.queue = append(s.queue, req)
	if s.leading {
		s.mu.Unlock()
		select {
		case err := <-req.done:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.leading = true
	for {
		batch := s.queue
		s.queue = nil
		s.mu.Unlock()
		s.write(ctx, batch)
		s.mu.Lock()
		if len(s.queue) == 0 {
			s.leading = false
			s.mu.Unlock()
			return <-req.done
		}
	}
}

// write commits batch in one transaction and tells every save the outcome.
func (s *SessionSaver) write(ctx context.Context, batch []*pendingSave) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), saveTimeout)
	defer cancel()
	db, ok := s.DB.(*bun.DB)
	if !ok || len(batch) == 1 {
		// Inside a caller's transaction, or nothing to share.
		for _, p := range batch {
			p.done <- s.RecoverySessions.Save(ctx, p.row)
		}
		return
	}
	err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		for _, p := range batch {
			if err := (RecoverySessions{DB: tx}).Save(ctx, p.row); err != nil {
				return err
			}
		}
		return nil
	})
	for _, p := range batch {
		p.done <- readError("save recoverable sessions", err)
	}
}
