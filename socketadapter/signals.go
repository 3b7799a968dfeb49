package socketadapter

import (
	"context"
	"encoding/json"
)

// SignalBus carries ephemeral signals (typing indicators) to the other
// servers that share the event store, so that the members of a room on
// every node see them. Config.Signals is nil on a server that is alone.
type SignalBus interface {
	// Publish hands a signal to every other server without blocking; it
	// may drop it (false). A bus may deliver it back to this server too
	// (PostgreSQL's does, NATS's does not), which the relay ignores.
	Publish(payload []byte) bool
	// Signals delivers the other servers' signals (and possibly this
	// one's); it is closed when the bus closes.
	Signals() <-chan []byte
}

// typingSignal is a user_typing that one server sends to the others, or,
// with AdminStats, its Admin UI server_stats, so that the UI connected to
// any server lists every server.
type typingSignal struct {
	Node       string          `json:"node"`
	Room       string          `json:"room"`
	Except     string          `json:"except,omitempty"` // the typing socket
	Typing     typingPayload   `json:"typing"`
	AdminStats json.RawMessage `json:"adminStats,omitempty"`
}

// sendTyping shows user_typing to room's members on this server (except
// the socket sid, if named) and publishes it to the other servers.
func (srv *Server) sendTyping(room, sid string, p typingPayload) {
	srv.emitTypingLocal(room, sid, p)
	if srv.cfg.Signals == nil {
		return
	}
	b, err := json.Marshal(typingSignal{Node: srv.cfg.NodeID, Room: room, Except: sid, Typing: p})
	if err == nil && !srv.cfg.Signals.Publish(b) {
		srv.cfg.Logger.Debug("typing signal dropped", "room", room)
	}
}

func (srv *Server) emitTypingLocal(room, sid string, p typingPayload) {
	op := srv.io.To(clientRoom(room))
	if sid != "" {
		op = op.Except(socketRoom(sid))
	}
	srv.emit(op, "user_typing", encode(p))
}

// relaySignals shows the other servers' typing signals to this server's
// sockets, and their server_stats to its Admin UI, until ctx ends or the
// bus closes.
func (srv *Server) relaySignals(ctx context.Context, signals <-chan []byte) {
	for {
		select {
		case b, ok := <-signals:
			if !ok {
				return
			}
			var s typingSignal
			err := json.Unmarshal(b, &s)
			if err == nil && len(s.AdminStats) > 0 {
				if s.Node != srv.cfg.NodeID && srv.admin != nil {
					srv.admin.relayStats(s.AdminStats)
				}
				continue
			}
			if err != nil || s.Room == "" || s.Typing.UserID == "" {
				srv.cfg.Logger.Debug("ignoring a malformed signal", "err", err)
				continue
			}
			if s.Node == srv.cfg.NodeID {
				continue // shown locally when it was sent
			}
			srv.emitTypingLocal(s.Room, s.Except, s.Typing)
		case <-ctx.Done():
			return
		}
	}
}
