package app

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/auraos/realtime/commands"
	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/projections"
)

// nodeTakeover is what the reaper needs to act for a dead server.
type nodeTakeover interface {
	TakeOver(ctx context.Context, node string) (release func(), ok bool, err error)
}

// lostNodes ends the sessions of servers that died and did not come back.
type lostNodes struct {
	self     string
	interval time.Duration
	liveness nodeTakeover
	nodes    func(ctx context.Context) ([]string, error)
	end      commands.EndLostNodeHandler
	recovery projections.RecoverySessions
	open     projections.OpenSessionsQuery
	now      func() time.Time
	log      *slog.Logger
}

// start runs the reaper until the returned stop is called.
func (r lostNodes) start() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(r.interval)
		defer t.Stop()
		for {
			r.sweep(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}

// sweep ends the open sessions of every other node whose lock is free,
// holding that lock meanwhile so the node cannot start again halfway.
func (r lostNodes) sweep(ctx context.Context) {
	nodes, err := r.nodes(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("could not list the nodes with open sessions", "err", err)
		}
		return
	}
	for _, node := range nodes {
		if node == r.self {
			continue
		}
		release, ok, err := r.liveness.TakeOver(ctx, node)
		if err != nil {
			if ctx.Err() == nil {
				r.log.Warn("could not check a node", "node", node, "err", err)
			}
			continue
		}
		if !ok {
			continue // it is running
		}
		// Its clients may recover their sessions on another server within
		// the presence grace; the others are ended now.
		end := r.end
		end.Sessions, err = recoverableFirst(ctx, r.recovery, r.open, node, r.now(), domain.ReasonNodeDown)
		if err != nil {
			release()
			r.log.Warn("could not suspend the sessions of a lost node", "node", node, "err", err)
			continue
		}
		ended, err := end.Handle(ctx, commands.EndLostNode{
			Cause:  commands.Cause{Command: "node_down", CorrelationID: eventstore.NewID()},
			NodeID: node,
		})
		release()
		if err != nil {
			r.log.Warn("could not end the sessions of a lost node", "node", node, "err", err)
			continue
		}
		if ended.EndedSessions > 0 || ended.EndedMemberships > 0 {
			r.log.Info("ended the sessions of a lost node", "node", node, "sessions", ended.EndedSessions, "chat_memberships", ended.EndedMemberships)
		}
	}
}

// recoverableFirst suspends, from at, the sessions node served that clients
// may still recover (the grace sweep ends those that do not come back), and
// returns the node's open sessions without them, for the caller to end at
// once.
func recoverableFirst(ctx context.Context, recovery projections.RecoverySessions, open projections.OpenSessionsQuery, node string, at time.Time, reason string) (commands.OpenSessions, error) {
	if _, err := recovery.SuspendNode(ctx, node, at, reason); err != nil {
		return nil, err
	}
	pending, err := recovery.Pending(ctx, node)
	if err != nil {
		return nil, err
	}
	return withoutSessions{open: open, skip: pending}, nil
}

// withoutSessions lists a node's open sessions except some.
type withoutSessions struct {
	open commands.OpenSessions
	skip map[string]bool
}

// OpenSessionsOf implements commands.OpenSessions.
func (w withoutSessions) OpenSessionsOf(ctx context.Context, node string) ([]domain.PresenceJoined, []domain.ChatMemberJoined, error) {
	sessions, chats, err := w.open.OpenSessionsOf(ctx, node)
	if err != nil {
		return nil, nil, err
	}
	keptSessions := sessions[:0]
	for _, s := range sessions {
		if !w.skip[s.SessionID] {
			keptSessions = append(keptSessions, s)
		}
	}
	keptChats := chats[:0]
	for _, c := range chats {
		if !w.skip[c.SessionID] {
			keptChats = append(keptChats, c)
		}
	}
	return keptSessions, keptChats, nil
}
