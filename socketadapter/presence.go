package socketadapter

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/socketadapter/wire"
)

// presenceBroadcaster sends online_users to every client after presence
// changes, and user_left when a user's last session has gone. The list is
// state, not a stream:
//
//   - changes within a window are coalesced into one list (a round);
//   - a socket never holds more than one list it has not handed to its
//     transport: a newer list replaces one still queued (conflation);
//   - the window grows with the bytes a round sends and with how many
//     sockets are behind, so the bytes sent per second stay bounded as
//     users grow, while a quiet server answers within PresenceWindow;
//   - a client that connected with auth { presence: 'diff' } gets one full
//     list, then online_users_diff { joins, leaves } (entries keyed by id;
//     apply leaves, then joins), and a full list again whenever it fell
//     too far behind for a diff.
//
// It reads the online-users read model once it has processed the changes.
// Only its goroutine runs rounds; the per-socket state it keeps lives in
// each session's list view.
type presenceBroadcaster struct {
	srv    *Server
	signal chan struct{}

	mu      sync.Mutex
	through eventstore.Position // the latest change to show
	left    map[string]struct{} // users who lost a session since the last list

	// Owned by the run goroutine.
	version  uint64
	current  presenceSnapshot
	previous presenceSnapshot // the version before current, for diffs
	window   time.Duration
}

// presenceSnapshot is one version of the list: its entries by user id, in
// the order of the list, and the list encoded.
type presenceSnapshot struct {
	version uint64
	ids     []string
	entries map[string]json.RawMessage
	list    json.RawMessage
}

// presenceView is what the broadcaster knows of one socket. The handlers
// of the socket's events may reset version, so the fields are atomic.
type presenceView struct {
	diff    bool          // the client asked for online_users_diff; set at connect
	version atomic.Uint64 // the version of the last list or diff queued; 0: none, or a list of unknown version
}

// sentUnknownList records that a list the broadcaster did not count was
// sent to the socket (a join confirmed again): the next round sends it a
// full list rather than a diff from a version it no longer has.
func (v *presenceView) sentUnknownList() { v.version.Store(0) }

// maxPresenceWindow caps the coalescing window, so that a list still goes
// out at least this often while presence keeps changing. Ten thousand
// users make a list of about 2.3 MB, 23 GB for every socket to have it:
// sooner than this the sockets are still writing the last one.
const maxPresenceWindow = 10 * time.Second

func newPresenceBroadcaster(srv *Server) *presenceBroadcaster {
	return &presenceBroadcaster{srv: srv, signal: make(chan struct{}, 1), left: map[string]struct{}{}, window: srv.cfg.PresenceWindow}
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
	b.wake()
}

func (b *presenceBroadcaster) wake() {
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
		case <-time.After(b.window):
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
			b.wake()
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
			// Through the live feed, with its offset, so that it is held back
			// for a socket whose recovery replay is on its way.
			d, payload := srv.dispatch, encode(uid)
			d.do(func() { d.deliver(delivery{event: "user_left", payload: payload}, d.Position()) })
		}
	}
	users, err := srv.queries.OnlineUsers.Handle(ctx)
	if err != nil {
		return err
	}
	b.advance(wire.OnlineUsers(users))
	sent, behind, total := b.send()
	b.adapt(sent, behind, total)
	return nil
}

// advance makes the list the current version, unless it is what the
// current version already says.
func (b *presenceBroadcaster) advance(users []wire.OnlineUser) {
	next := presenceSnapshot{ids: make([]string, len(users)), entries: make(map[string]json.RawMessage, len(users))}
	parts := make([]json.RawMessage, len(users))
	for i, u := range users {
		parts[i] = encode(u)
		next.ids[i] = u.ID
		next.entries[u.ID] = parts[i]
	}
	next.list = joinJSON('[', parts, ']')
	if b.version > 0 && bytes.Equal(next.list, b.current.list) {
		return
	}
	b.version++
	next.version = b.version
	b.previous, b.current = b.current, next
}

// send hands the current version to every socket that does not have it. A
// socket whose last list (or diff) is still queued has it replaced by the
// full list; otherwise a diff client one version behind gets the diff and
// every other socket the full list. It returns the bytes queued, how many
// sockets were behind (a queued list replaced, or their transport still
// writing), and how many were sent to.
func (b *presenceBroadcaster) send() (sent int64, behind, total int) {
	srv := b.srv
	cur := b.current
	full := newStatePacket("online_users", cur.list)
	var diff *statePacket
	if b.previous.version != 0 {
		diff = newStatePacket("online_users_diff", diffPayload(b.previous, cur))
	}
	var fulls, diffs int
	srv.sessions.Range(func(_, v any) bool {
		sess := v.(*session)
		view := &sess.list
		version := view.version.Load()
		if version == cur.version {
			return true
		}
		s, ok := srv.socketByID(sess.id)
		if !ok {
			return true
		}
		conn := s.Conn()
		websocket := conn.Transport() != nil && conn.Transport().Name() == "websocket"
		next := full
		if diff != nil && view.diff && version+1 == cur.version {
			next = diff
		}
		total++
		// A transport that is not writable is still writing what it was
		// given before (a list of thousands of users takes a while): the
		// socket is behind as well.
		busy := conn.Transport() != nil && !conn.Transport().Writable()
		if conn.SendState(presenceStateKey, full.packet(websocket), next.packet(websocket)) {
			behind++
			sent += int64(len(full.data))
			fulls++
		} else {
			sent += int64(len(next.data))
			if busy {
				behind++
			}
			if next == diff {
				diffs++
			} else {
				fulls++
			}
		}
		view.version.Store(cur.version)
		return true
	})
	if fulls > 0 {
		srv.cfg.Observer.Pushed("online_users")
	}
	if diffs > 0 {
		srv.cfg.Observer.Pushed("online_users_diff")
	}
	return sent, behind, total
}

// presenceStateKey is the key under which a socket's queued list or diff
// is replaced by a newer one.
const presenceStateKey = "presence"

// statePacket is one event encoded once for every socket: the Socket.IO
// packet and its Engine.IO websocket frame. Sockets share its bytes: a
// list of ten thousand users is megabytes, and a copy per socket would be
// gigabytes.
type statePacket struct {
	data  []byte // the Socket.IO packet
	frame types.BufferInterface
}

func newStatePacket(event string, payload json.RawMessage) *statePacket {
	// A Socket.IO EVENT (2) of the default namespace; the frame adds
	// Engine.IO's MESSAGE type (4), as the library's broadcasts do.
	frame := make([]byte, 0, len(payload)+len(event)+7)
	frame = append(frame, `42["`...)
	frame = append(frame, event...)
	frame = append(frame, `",`...)
	frame = append(frame, payload...)
	frame = append(frame, ']')
	return &statePacket{data: frame[1:len(frame):len(frame)], frame: types.NewStringBuffer(frame[:len(frame):len(frame)])}
}

// packet returns an Engine.IO packet of p: a websocket writes the shared
// frame. The packet's data is a buffer of its own over the shared bytes: a
// polling transport reads it (which moves only that buffer's offset), and
// the full slice expression makes any write to it copy first.
func (p *statePacket) packet(websocket bool) *packet.Packet {
	opts := &packet.Options{Compress: new(true)}
	if websocket {
		opts.WsPreEncodedFrame = p.frame
	}
	return &packet.Packet{Type: packet.MESSAGE, Data: types.NewStringBuffer(p.data), Options: opts}
}

// adapt sets the next window: long enough that a round's bytes go out at
// no more than PresenceBandwidth, doubled while more than half the sockets
// were behind (a list still queued or being written), and never shorter
// than PresenceWindow nor longer than maxPresenceWindow.
func (b *presenceBroadcaster) adapt(sent int64, behind, total int) {
	base := b.srv.cfg.PresenceWindow
	w := time.Duration(float64(sent) / float64(b.srv.cfg.PresenceBandwidth) * float64(time.Second))
	if total > 0 && behind*2 > total {
		w = max(w, 2*b.window)
	}
	b.window = min(max(w, base), max(maxPresenceWindow, base))
}

// diffPayload is online_users_diff from one version to another: the
// entries that are new or changed, and the entries that are gone or
// changed, each in list order.
func diffPayload(from, to presenceSnapshot) json.RawMessage {
	var joins, leaves []json.RawMessage
	for _, id := range to.ids {
		if old, ok := from.entries[id]; !ok || !bytes.Equal(old, to.entries[id]) {
			joins = append(joins, to.entries[id])
		}
	}
	for _, id := range from.ids {
		if now, ok := to.entries[id]; !ok || !bytes.Equal(now, from.entries[id]) {
			leaves = append(leaves, from.entries[id])
		}
	}
	var buf bytes.Buffer
	buf.WriteString(`{"joins":`)
	buf.Write(joinJSON('[', joins, ']'))
	buf.WriteString(`,"leaves":`)
	buf.Write(joinJSON('[', leaves, ']'))
	buf.WriteByte('}')
	return buf.Bytes()
}

// joinJSON joins encoded values into a JSON array or object body.
func joinJSON(open byte, parts []json.RawMessage, closing byte) json.RawMessage {
	n := 2
	for _, p := range parts {
		n += len(p) + 1
	}
	out := make([]byte, 0, n)
	out = append(out, open)
	for i, p := range parts {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, p...)
	}
	return append(out, closing)
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
