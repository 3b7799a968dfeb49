package app

import (
	"context"
	"net/http"

	"github.com/auraos/realtime/cmd/auraos/console"
	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/chain"
	"github.com/auraos/realtime/projections"
)

// consoleReadSide is the console's ReadSide over this server's stores: the
// instrumented event store, the read database, and the projections'
// rebuild beside the live tables (the runners carry on from the swapped-in
// checkpoint).
type consoleReadSide struct{ s *Server }

var _ console.ReadSide = consoleReadSide{}

func (c consoleReadSide) Head(ctx context.Context) (eventstore.Position, error) {
	return c.s.store.Head(ctx)
}

func (c consoleReadSide) ReadAll(ctx context.Context, opts eventstore.ReadAllOptions) ([]eventstore.RecordedEvent, error) {
	return c.s.store.ReadAll(ctx, opts)
}

func (c consoleReadSide) Projections(ctx context.Context) ([]projections.Status, error) {
	return projections.StatusQuery{DB: c.s.rdb.Reader, EventLog: c.s.store}.Handle(ctx, projections.All())
}

func (c consoleReadSide) Rebuild(ctx context.Context, name string, progress func(through, head eventstore.Position)) (projections.RebuildResult, error) {
	for _, p := range projections.All() {
		if p.Name() == name {
			return projections.Rebuild(ctx, c.s.rdb.Writer, c.s.store, p, projections.RebuildOptions{Progress: progress})
		}
	}
	return projections.RebuildResult{}, domain.Errorf(domain.EINVALID, "no projection is named %q", name)
}

func (c consoleReadSide) OnlineUsers(ctx context.Context) ([]projections.OnlineUser, error) {
	return projections.OnlineUsersQuery{DB: c.s.rdb.Reader}.Handle(ctx)
}

func (c consoleReadSide) ChatRooms(ctx context.Context, last int) ([]projections.ChatRoom, error) {
	return projections.ChatRoomsQuery{DB: c.s.rdb.Reader}.Handle(ctx, last)
}

func (c consoleReadSide) Apps(ctx context.Context) ([]projections.App, error) {
	return projections.AppsQuery{DB: c.s.rdb.Reader}.Handle(ctx)
}

// ChainHead is the hash chain's head, as `auraos events head` prints it,
// read from the store under the personal-data layer (the chain covers the
// stored bytes). EventStoreDB keeps a chain per stream and no global head:
// there it reports none.
func (c consoleReadSide) ChainHead(ctx context.Context) (console.ChainHead, bool, error) {
	store := c.s.rawStore
	if w, ok := store.(interface{ Inner() eventstore.Store }); ok {
		store = w.Inner()
	}
	chained, ok := store.(interface {
		ChainHead(context.Context) (chain.Anchor, error)
	})
	if !ok {
		return console.ChainHead{}, false, nil
	}
	head, err := chained.ChainHead(ctx)
	if err != nil {
		return console.ChainHead{}, false, err
	}
	return console.ChainHead{Position: eventstore.Pos(head.Position), Hash: head.Hash.String()}, true, nil
}

// mountConsole serves /console when the Admin UI is on, with its
// credentials.
func (s *Server) mountConsole(mux *http.ServeMux) error {
	admin := s.cfg.Socket.Admin
	if admin == nil {
		return nil
	}
	c, err := console.New(console.Config{Auth: admin.Credentials, Read: consoleReadSide{s: s}, Logger: s.log.With("component", "console"), Now: s.cfg.Now})
	if err != nil {
		return err
	}
	s.console = c
	mux.Handle(console.Prefix+"/", c)
	return nil
}
