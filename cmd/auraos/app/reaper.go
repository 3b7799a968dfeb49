package app

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/auraos/realtime/commands"
	"github.com/auraos/realtime/eventstore"
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
		ended, err := r.end.Handle(ctx, commands.EndLostNode{
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
