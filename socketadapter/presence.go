package socketadapter

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/auraos/realtime/eventstore"
)

// presenceBroadcaster sends online_users to every client after presence
// changes, and user_left when a user's last session has gone. The list is
// state, not a stream:
//
//   - changes within a window are coalesced into one list (a round);
//   - a socket never holds more than one list it has not been handed to
//     its transport: a socket whose last list is still queued is skipped
//     and gets the newest list once it has taken the last one (conflation);
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
	version   uint64
	current   presenceSnapshot
	history   []presenceSnapshot // the last versions, for diffs to sockets behind
	window    time.Duration
	retryOwed bool // some sockets were skipped and are owed the newest list
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
	version atomic.Uint64 // the version of the last list or diff sent; 0: none, or a list of unknown version
	mark    atomic.Uint64 // the socket's enqueued bytes right after it was sent
}

// sentUnknownList records that a list the broadcaster did not count was
// sent to the socket (a join confirmed again): the next round sends it a
// full list rather than a diff from a version it no longer has.
func (v *presenceView) sentUnknownList() { v.version.Store(0) }

// presenceHistory is how many versions are kept for diffs to sockets that
// skipped some; one further behind gets a full list.
const presenceHistory = 8

// maxPresenceWindow caps the coalescing window, so that a list still goes
// out at least this often while presence keeps changing.
const maxPresenceWindow = 2 * time.Second

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
		var retry <-chan time.Time
		if b.retryOwed {
			retry = time.After(b.window)
		}
		select {
		case <-b.signal:
		case <-retry:
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
			srv.emitAll("user_left", uid)
		}
	}
	users, err := srv.queries.OnlineUsers.Handle(ctx)
	if err != nil {
		return err
	}
	b.advance(onlineUsersPayload(users))
	sent, owed, total := b.send()
	b.adapt(sent, owed, total)
	return nil
}

// advance makes the list the current version, unless it is what the
// current version already says.
func (b *presenceBroadcaster) advance(users []onlineUserPayload) {
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
	if b.version > 1 {
		b.history = append(b.history, b.current)
		if len(b.history) > presenceHistory {
			b.history = b.history[1:]
		}
	}
	b.current = next
}

// send hands the current version to every socket that does not have it and
// has taken its last list: the full list, or a diff for a diff client that
// has a recent version. It returns the bytes sent, and how many sockets
// were owed a list but skipped because their last one is still queued, of
// how many.
func (b *presenceBroadcaster) send() (sent int64, owed, total int) {
	srv := b.srv
	cur := b.current
	var full, diff []*session
	var behind []*session // diff clients on an older version
	srv.sessions.Range(func(_, v any) bool {
		sess := v.(*session)
		total++
		view := &sess.list
		version := view.version.Load()
		if version == cur.version && cur.version != 0 {
			return true
		}
		s, ok := srv.socketByID(sess.id)
		if !ok {
			return true
		}
		if view.mark.Load() > s.Conn().FlushedBytes() {
			owed++ // its last list is still queued
			return true
		}
		switch {
		case !view.diff || version == 0:
			full = append(full, sess)
		case version+1 == cur.version:
			diff = append(diff, sess)
		default:
			behind = append(behind, sess)
		}
		return true
	})
	sent += b.emitGroup(full, "online_users", cur.list, cur.version)
	if len(diff) > 0 {
		sent += b.emitGroup(diff, "online_users_diff", diffPayload(b.history[len(b.history)-1], cur), cur.version)
	}
	for _, sess := range behind {
		if old, ok := b.snapshot(sess.list.version.Load()); ok {
			sent += b.emitGroup([]*session{sess}, "online_users_diff", diffPayload(old, cur), cur.version)
		} else {
			sent += b.emitGroup([]*session{sess}, "online_users", cur.list, cur.version)
		}
	}
	b.retryOwed = owed > 0
	return sent, owed, total
}

// emitGroup sends one payload to the sockets of group, encoded once, and
// records what each was sent.
func (b *presenceBroadcaster) emitGroup(group []*session, event string, payload json.RawMessage, version uint64) int64 {
	if len(group) == 0 {
		return 0
	}
	srv := b.srv
	rooms := make([]socket.Room, len(group))
	for i, sess := range group {
		rooms[i] = socketRoom(sess.id)
	}
	srv.emit(srv.io.To(rooms...), event, payload)
	for _, sess := range group {
		if s, ok := srv.socketByID(sess.id); ok {
			sess.list.mark.Store(s.Conn().EnqueuedBytes())
			sess.list.version.Store(version)
		}
	}
	return int64(len(payload)) * int64(len(group))
}

// snapshot returns a kept version.
func (b *presenceBroadcaster) snapshot(version uint64) (presenceSnapshot, bool) {
	for _, s := range b.history {
		if s.version == version {
			return s, true
		}
	}
	return presenceSnapshot{}, false
}

// adapt sets the next window: long enough that a round's bytes go out at
// no more than PresenceBandwidth, doubled while more than half the sockets
// are behind, and never shorter than PresenceWindow nor longer than
// maxPresenceWindow.
func (b *presenceBroadcaster) adapt(sent int64, owed, total int) {
	base := b.srv.cfg.PresenceWindow
	w := time.Duration(float64(sent) / float64(b.srv.cfg.PresenceBandwidth) * float64(time.Second))
	if total > 0 && owed*2 > total {
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
	return encode(onlineUsersPayload(users)), nil
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
	return encode(systemStatusPayload{
		TotalApps: t.Total, ActiveApps: t.Active, InactiveApps: t.Inactive,
		Uptime: uptime(now.Sub(srv.started)), Timestamp: jsDate(now),
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
