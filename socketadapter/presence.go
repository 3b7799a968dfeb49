package socketadapter

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/socketadapter/wire"
)

// presenceBroadcaster sends online_users to every client after presence
// changes, coalescing the changes of one short window into one list, and
// user_left when a user's last session has gone. It reads the online-users
// read model once it has processed the changes.
type presenceBroadcaster struct {
	srv    *Server
	signal chan struct{}

	mu      sync.Mutex
	through eventstore.Position // the latest change to show
	left    map[string]struct{} // users who lost a session since the last list
}

func newPresenceBroadcaster(srv *Server) *presenceBroadcaster {
	return &presenceBroadcaster{srv: srv, signal: make(chan struct{}, 1), left: map[string]struct{}{}}
}

// changed records a presence change at p; leftUser names a user who lost a
// session.
func (b *presenceBroadcaster) changed(p eventstore.Position, leftUser string) {
	b.mu.Lock()
	if b.through.Less(p) {
		b.through = p
	}
	if leftUser != "" {
		b.left[leftUser] = struct{}{}
	}
	b.mu.Unlock()
	select {
	case b.signal <- struct{}{}:
	default:
	}
}

func (b *presenceBroadcaster) run(ctx context.Context) {
	for {
		select {
		case <-b.signal:
		case <-ctx.Done():
			return
		}
		select {
		case <-time.After(b.srv.cfg.PresenceWindow):
		case <-ctx.Done():
			return
		}
		b.mu.Lock()
		through, left := b.through, b.left
		b.left = map[string]struct{}{}
		b.mu.Unlock()
		if err := b.broadcast(ctx, through, left); err != nil {
			if ctx.Err() != nil {
				return
			}
			b.srv.cfg.Logger.Warn("could not send online_users; retrying", "err", err)
			b.mu.Lock()
			for u := range left {
				b.left[u] = struct{}{}
			}
			b.mu.Unlock()
			select {
			case b.signal <- struct{}{}:
			default:
			}
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
				return
			}
		}
	}
}

func (b *presenceBroadcaster) broadcast(ctx context.Context, through eventstore.Position, left map[string]struct{}) error {
	srv := b.srv
	ctx, cancel := context.WithTimeout(ctx, srv.cfg.CommandTimeout)
	defer cancel()
	if err := srv.models.OnlineUsers.WaitFor(ctx, through); err != nil {
		return err
	}
	for uid := range left {
		n, err := srv.queries.UserSessions.Handle(ctx, uid)
		if err != nil {
			return err
		}
		if n == 0 {
			srv.emitAll("user_left", uid)
		}
	}
	users, err := srv.onlineUsers(ctx)
	if err != nil {
		return err
	}
	srv.emitAll("online_users", users)
	return nil
}

// onlineUsers reads the online_users list, encoded.
func (srv *Server) onlineUsers(ctx context.Context) (json.RawMessage, error) {
	users, err := srv.queries.OnlineUsers.Handle(ctx)
	if err != nil {
		return nil, err
	}
	return encode(wire.OnlineUsers(users)), nil
}

// systemStatus reads the app counts for system_status_update, once the
// app-status read model has caught up with what was pushed.
func (srv *Server) systemStatus(ctx context.Context) (json.RawMessage, error) {
	if srv.models.AppStatus != nil {
		if err := srv.models.AppStatus.WaitFor(ctx, srv.dispatch.Position()); err != nil {
			return nil, err
		}
	}
	t, err := srv.queries.AppTotals.Handle(ctx)
	if err != nil {
		return nil, err
	}
	now := srv.cfg.Now()
	return encode(wire.SystemStatus{
		AppTotals: wire.Totals(t), Uptime: uptime(now.Sub(srv.started)), Timestamp: wire.Date(now),
	}), nil
}

// statusLoop sends system_status_update to every client each interval.
func (srv *Server) statusLoop(ctx context.Context) {
	t := time.NewTicker(srv.cfg.StatusInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		sctx, cancel := context.WithTimeout(ctx, srv.cfg.CommandTimeout)
		st, err := srv.systemStatus(sctx)
		cancel()
		if err != nil {
			srv.cfg.Logger.Warn("could not read the system status", "err", err)
			continue
		}
		srv.emitAll("system_status_update", st)
	}
}
