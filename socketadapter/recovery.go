package socketadapter

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/projections"
)

// Connection State Recovery is served from the event log. Every push that
// a stored event makes carries the event's log position as its offset (the
// last argument), and each session a client may recover (its socket id, its
// identity, its rooms and memberships) is kept in the read database while
// it lasts, keyed by a hash of its private session id. A client that
// reconnects with its private session id and last offset within the
// recovery window, on this server or another sharing the databases, gets
// its socket id and rooms back (socket.recovered === true) and every push
// it missed, in log order, read from the log, then a fresh online_users
// and system_status_update. Nothing is kept in memory per packet.
//
// A session whose socket drops is suspended, not ended: its presence and
// chat memberships end in the log only when it has not come back within
// the presence grace (the grace sweep), so a blip shows the others nothing.

// SessionStore keeps the sessions clients may recover;
// projections.RecoverySessions implements it. Its errors are the read
// database's (EUNAVAILABLE).
type SessionStore interface {
	Save(ctx context.Context, row projections.RecoverySession) error
	Suspend(ctx context.Context, pidHash string, generation int64, at time.Time, reason string) (bool, error)
	Claim(ctx context.Context, pidHash, node string, notBefore time.Time) (projections.RecoverySession, bool, error)
	Due(ctx context.Context, before time.Time, limit int) ([]projections.RecoverySession, error)
	StillDue(ctx context.Context, pidHash string, generation int64) (bool, error)
	MarkEnded(ctx context.Context, pidHash string, generation int64) (bool, error)
	Delete(ctx context.Context, pidHash string, generation int64) error
	Expire(ctx context.Context, before time.Time) (int, error)
}

// sessionState is what a recoverable session's row keeps, as JSON.
type sessionState struct {
	UserID      string                    `json:"userId,omitempty"`
	Profile     *domain.UserProfile       `json:"profile,omitempty"` // verified at connect
	Admin       bool                      `json:"admin,omitempty"`
	Actor       domain.Actor              `json:"actor"`
	Rooms       []string                  `json:"rooms,omitempty"`       // client rooms
	SystemRooms []string                  `json:"systemRooms,omitempty"` // system rooms
	Presence    *domain.PresenceJoined    `json:"presence,omitempty"`
	Chats       []domain.ChatMemberJoined `json:"chats,omitempty"`
}

// socketRooms are the Socket.IO rooms of a session in this state.
func (st sessionState) socketRooms() map[socket.Room]bool {
	rooms := map[socket.Room]bool{}
	for _, r := range st.Rooms {
		rooms[clientRoom(r)] = true
	}
	for _, r := range st.SystemRooms {
		rooms[systemRoom(r)] = true
	}
	for _, c := range st.Chats {
		rooms[clientRoom(c.RoomName)] = true
	}
	if st.Presence != nil {
		rooms[userRoom(st.Presence.UserID)] = true
	}
	return rooms
}

// hashPID is the key a private session id is stored under: the id itself
// proves the client's right to the session and is never stored.
func hashPID(pid string) string {
	sum := sha256.Sum256([]byte(pid))
	return hex.EncodeToString(sum[:])
}

// recoveryAdapterBuilder makes the adapter of the Socket.IO namespaces: the
// library's in-memory rooms, with sessions restored from the log instead of
// the library's packet buffer.
type recoveryAdapterBuilder struct{ srv *Server }

func (b *recoveryAdapterBuilder) New(nsp socket.Namespace) socket.Adapter {
	a := &recoveryAdapter{Adapter: socket.MakeAdapter(), srv: b.srv}
	a.Prototype(a)
	a.Construct(nsp)
	return a
}

// recoveryAdapter keeps rooms as the library does and restores sessions
// from the read database and the log.
type recoveryAdapter struct {
	socket.Adapter
	srv *Server
}

// PersistSession does nothing: the server records sessions while they
// last, not when they end, so that a crash loses none.
func (a *recoveryAdapter) PersistSession(*socket.SessionToPersist) {}

// RestoreSession restores the session a reconnecting client names, if it
// can be recovered; otherwise the client connects afresh.
func (a *recoveryAdapter) RestoreSession(pid socket.PrivateSessionId, offset string) (*socket.Session, error) {
	if a.Adapter.Nsp().Name() != "/" {
		return nil, nil
	}
	return a.srv.restore(string(pid), offset)
}

// restoredSession is what a restored socket's connection handler takes
// over: the claimed row, its state and the replay.
type restoredSession struct {
	row    projections.RecoverySession
	state  sessionState
	missed []replayed
	gate   *replayGate
}

// replayed is one delivery a recovering socket missed, with its offset.
type replayed struct {
	delivery
	position eventstore.Position
}

// replayGate holds back the live pushes to a recovering socket until its
// replay is sent; pushes at or before after are already in the replay (or
// the client has them) and are dropped.
type replayGate struct {
	sid    string
	rooms  map[socket.Room]bool
	after  eventstore.Position
	buffer []pushed
	timer  *time.Timer
}

// errTooFarBehind says a session missed more than RecoveryMaxEvents.
var errTooFarBehind = errors.New("missed too many events to recover")

// restore claims the session pid names and reads what it missed. It
// returns nil (a fresh connection) when recovery is off, the session is
// unknown, expired or served here, the offset is not a position, or the
// client is too far behind.
func (srv *Server) restore(pid, offset string) (*socket.Session, error) {
	if srv.cfg.RecoveryWindow <= 0 || srv.cfg.Sessions == nil || srv.closing.Load() {
		return nil, nil
	}
	from, err := eventstore.ParsePosition(offset)
	if err != nil {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(srv.ctx, srv.cfg.CommandTimeout)
	defer cancel()
	now := srv.cfg.Now()
	row, ok, err := srv.cfg.Sessions.Claim(ctx, hashPID(pid), srv.cfg.NodeID, now.Add(-srv.cfg.RecoveryWindow))
	if err != nil {
		srv.cfg.Logger.Warn("could not look up a session to recover", "err", err)
		return nil, nil
	}
	if !ok {
		return nil, nil
	}
	log := srv.cfg.Logger.With("socket", row.SessionID, "user", row.UserID)
	var st sessionState
	if err := json.Unmarshal([]byte(row.State), &st); err != nil {
		log.Error("a recoverable session's state does not decode; connecting afresh", "err", err)
		return nil, nil
	}
	rooms := st.socketRooms()
	gate := &replayGate{sid: row.SessionID, rooms: rooms}
	// The replay goes to the log's head, which this server's live feed may
	// not have pushed yet (another server wrote it): the gate then holds
	// the feed's pushes back until it has passed the head.
	head, err := srv.feed.Head(ctx)
	if err != nil {
		srv.cfg.Logger.Warn("could not read the log's head to recover a session", "err", err)
		head = from
	}
	if head.Less(from) {
		head = from
	}
	through := srv.dispatch.openReplay(gate, head)
	missed, err := srv.replays.missed(ctx, row.SessionID, rooms, from, through)
	if err != nil {
		srv.dispatch.closeReplay(gate, nil)
		srv.giveUpSession(row, st, err.Error())
		if errors.Is(err, errTooFarBehind) {
			log.Info("a client is too far behind to recover its session; it connects afresh", "offset", offset)
		} else {
			log.Warn("could not read what a recovering session missed; it connects afresh", "err", err)
		}
		return nil, nil
	}
	socketRooms := types.NewSet[socket.Room]()
	for r := range rooms {
		socketRooms.Add(r)
	}
	id := Identity{UserID: st.UserID, Profile: st.Profile, Admin: st.Admin}
	return &socket.Session{SessionToPersist: &socket.SessionToPersist{
		Sid: socket.SocketId(row.SessionID), Pid: socket.PrivateSessionId(pid), Rooms: socketRooms,
		Data: &connectionIdentity{Identity: id, restored: &restoredSession{row: row, state: st, missed: missed, gate: gate}},
	}}, nil
}

// replayPage is how many events one read of a replay takes.
const replayPage = 1000

// skipThrough drops the events at or before p (ReadAll starts at p, which
// is already delivered).
func skipThrough(recs []eventstore.RecordedEvent, p eventstore.Position) []eventstore.RecordedEvent {
	i := 0
	for i < len(recs) && !p.Less(recs[i].Position) {
		i++
	}
	return recs[i:]
}

// openReplay starts holding back the live pushes to a recovering socket,
// on the feed's goroutine, and returns the position the replay goes
// through: the later of what the feed has pushed and at least (the log's
// head). Pushes after it are held back and sent after the replay; pushes up
// to it are in the replay and dropped. A gate still open after twice
// CommandTimeout (its socket never connected) is closed.
func (d *dispatcher) openReplay(g *replayGate, atLeast eventstore.Position) eventstore.Position {
	done := make(chan eventstore.Position, 1)
	d.do(func() {
		g.after = d.Position()
		if g.after.Less(atLeast) {
			g.after = atLeast
		}
		d.replays[g.sid] = g
		g.timer = time.AfterFunc(2*d.srv.cfg.CommandTimeout, func() { d.closeReplay(g, nil) })
		done <- g.after
	})
	select {
	case p := <-done:
		return p
	case <-d.srv.ctx.Done():
		return atLeast
	}
}

// closeReplay lets the live pushes through to a socket whose replay is
// sent, first those held back, then calls then (on the feed's goroutine).
func (d *dispatcher) closeReplay(g *replayGate, then func()) {
	d.do(func() {
		if d.replays[g.sid] != g {
			return // closed already
		}
		delete(d.replays, g.sid)
		g.timer.Stop()
		srv := d.srv
		for _, p := range g.buffer {
			if g.after.Less(p.position) {
				srv.emitAt(srv.io.To(socketRoom(g.sid)), p.event, p.payload, p.position)
			}
		}
		if then != nil {
			then()
		}
	})
}

// replay sends a recovered socket what it missed, waiting while its queue
// is over half full so that the replay never makes it a slow consumer,
// then lets its live pushes through and sends the fresh state:
// online_users and system_status_update.
func (srv *Server) replay(c *conn, r *restoredSession) {
	ctx, cancel := context.WithTimeout(srv.ctx, srv.cfg.CommandTimeout+time.Duration(len(r.missed))*time.Millisecond)
	defer cancel()
	op := srv.io.To(socketRoom(c.sess.id))
	for _, m := range r.missed {
		for c.s.Conn().BufferedBytes() > srv.cfg.ClientQueueMax/2 {
			if !c.s.Connected() || ctx.Err() != nil {
				srv.dispatch.closeReplay(r.gate, nil)
				return
			}
			time.Sleep(5 * time.Millisecond) // the client takes its packets
		}
		srv.emitAt(op, m.event, m.payload, m.position)
	}
	// The gate holds the feed's pushes until the feed has passed what the
	// replay sent, so none arrives twice; then the fresh state follows.
	if err := srv.dispatch.waitFor(ctx, r.gate.after); err != nil {
		srv.cfg.Logger.Warn("the live feed did not reach a recovered session's replay in time", append(c.log(), "err", err)...)
	}
	users, usersErr := srv.onlineUsers(ctx)
	st, stErr := srv.systemStatus(ctx)
	srv.dispatch.closeReplay(r.gate, func() {
		if usersErr == nil {
			srv.emitTo(c.sess.id, "online_users", users)
			c.sess.list.sentUnknownList()
		}
		if stErr == nil {
			srv.emitTo(c.sess.id, "system_status_update", st)
		}
	})
	srv.cfg.Logger.Debug("session recovered", append(c.log(), "missed", len(r.missed))...)
}

// giveUpSession ends a session that will not be recovered (its client is
// too far behind): its memberships end now and its row goes.
func (srv *Server) giveUpSession(row projections.RecoverySession, st sessionState, why string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(srv.ctx), srv.cfg.CommandTimeout)
	defer cancel()
	if !row.Ended {
		srv.storeEnd(st.Actor, st.Presence, st.Chats, domain.ReasonDisconnect, "recovery_refused")
	}
	if err := srv.cfg.Sessions.Delete(ctx, row.PIDHash, row.Generation); err != nil {
		srv.cfg.Logger.Warn("could not forget a session that will not be recovered", "socket", row.SessionID, "why", why, "err", err)
	}
}
