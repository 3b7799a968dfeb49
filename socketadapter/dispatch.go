package socketadapter

import (
	"context"
	"encoding/json"
	"strings"
	"sync"

	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/follow"
	"github.com/auraos/realtime/projections"
	"github.com/auraos/realtime/socketadapter/wire"
)

// dispatcher pushes stored events to this node's sockets, in log order: it
// is the handler of the live feed, a follow.Follower that starts at the
// log's head when the server starts. Every node runs one, so a message
// reaches members on every node.
//
// A socket that joins a chat room gets joined_chat and the room's history up
// to its join's position, then everything after it, in order and without
// duplicates: until its history is delivered, the room's pushes to it wait in
// a gate. Only the follower's goroutine touches gates; other goroutines hand
// it work through do.
type dispatcher struct {
	srv     *Server
	feed    *follow.Follower
	fetches sync.WaitGroup // history reads of open gates

	gates   map[string]map[string]*gate // room → socket id → gate
	replays map[string]*replayGate      // socket id → gate of a recovery replay
}

// gate holds back a room's pushes to one socket until its history is sent.
type gate struct {
	sid, room string
	through   eventstore.Position
	buffer    []pushed
	waiters   []chan error
}

// pushed is a push held back in a gate, with the position of the event
// that made it (its offset).
type pushed struct {
	event    string
	payload  json.RawMessage
	position eventstore.Position
}

// newDispatcher returns the dispatcher of srv's live feed, which starts
// after the position from.
func newDispatcher(srv *Server, from eventstore.Position) *dispatcher {
	d := &dispatcher{srv: srv, gates: map[string]map[string]*gate{}, replays: map[string]*replayGate{}}
	d.feed = follow.New(srv.feed, d, follow.Options{
		Name: "live feed", From: from, BatchSize: 500, SkipUndecodable: true, Logger: srv.cfg.Logger,
	})
	return d
}

// run pushes the live feed until ctx ends, then waits for the history
// reads it started.
func (d *dispatcher) run(ctx context.Context) {
	defer d.fetches.Wait()
	_ = d.feed.Run(ctx) // errors are logged and resubscribed; nil when ctx ends
}

// Position returns the position the dispatcher has pushed through.
func (d *dispatcher) Position() eventstore.Position { return d.feed.Position() }

// waitFor returns once events through p have been pushed.
func (d *dispatcher) waitFor(ctx context.Context, p eventstore.Position) error {
	return d.feed.WaitFor(ctx, p)
}

// do runs fn on the feed's goroutine.
func (d *dispatcher) do(fn func()) {
	d.feed.Do(d.srv.ctx, func(context.Context) error { fn(); return nil })
}

// redeliver sends joined_chat and the history of room to a socket that is
// already a member, as of now.
func (d *dispatcher) redeliver(sid, room string, done chan error) {
	d.do(func() { d.openGate(sid, room, d.Position(), []chan error{done}) })
}

// Handle pushes a batch of the live feed.
func (d *dispatcher) Handle(_ context.Context, b follow.Batch) error {
	for _, e := range b.Events {
		d.push(e)
	}
	return nil
}

// push sends one stored event to the sockets the source document names,
// and does what the event means for this node's own sockets.
func (d *dispatcher) push(e follow.Envelope) {
	srv := d.srv
	switch ev := e.Event.(type) {
	case domain.PresenceJoined:
		if d.localConfirm(ev.NodeID, ev.SessionID, e.Metadata) {
			srv.emitAt(srv.io.To(socketRoom(ev.SessionID)), "user_joined", encode(userJoinedPayload{ID: ev.UserID, SocketID: ev.SessionID}), e.Position)
		}
		srv.presence.changed(e.Position, "")
	case domain.PresenceLeft:
		srv.presence.changed(e.Position, ev.UserID)
		if ev.Reason == domain.ReasonNodeDown && ev.NodeID == srv.cfg.NodeID {
			// Another server took this one for dead (it lost its database
			// connection for a while) and ended the session: drop the socket,
			// whose client reconnects and joins again, rather than serve a
			// session the log says is over.
			if s, ok := srv.socketByID(ev.SessionID); ok {
				srv.cfg.Logger.Warn("a session of this server was ended by another; disconnecting it", "socket", ev.SessionID, "user", ev.UserID)
				go s.Disconnect(true) // its disconnect handling waits for this dispatcher
			}
		}
	case domain.ChatMemberJoined:
		if ev.NodeID == srv.cfg.NodeID {
			if s, ok := srv.socketByID(ev.SessionID); ok {
				s.Join(clientRoom(ev.RoomName))
			}
		}
	}
	for _, dl := range deliveries(e.Event) {
		d.deliver(dl, e.Position)
	}
	if ev, ok := e.Event.(domain.ChatMemberJoined); ok && d.localConfirm(ev.NodeID, ev.SessionID, e.Metadata) {
		var waiters []chan error
		if sess, ok := srv.sessionByID(ev.SessionID); ok {
			waiters = sess.takeJoins(ev.RoomName)
		}
		d.openGate(ev.SessionID, ev.RoomName, e.Position, waiters)
	}
}

// delivery is one push a stored event makes: an event and its payload to
// a room (or to every socket when to is empty), except one session's
// socket. A socket that recovers its session gets, for each event it
// missed, the deliveries that would have reached it.
type delivery struct {
	to      socket.Room
	except  string
	event   string
	payload json.RawMessage
}

// deliveries returns the pushes a stored event makes, as the source
// document says: the rooms' chat events, a user's notifications, and the
// alerts and app and agent updates every client gets.
func deliveries(ev domain.Event) []delivery {
	switch ev := ev.(type) {
	case domain.ChatMemberJoined:
		return []delivery{{clientRoom(ev.RoomName), ev.SessionID, "user_joined_chat", encode(chatMemberPayload{User: ev.Profile, Message: ev.Profile.Name() + " joined the chat"})}}
	case domain.ChatMemberLeft:
		return []delivery{{clientRoom(ev.RoomName), ev.SessionID, "user_left_chat", encode(chatMemberPayload{User: ev.Profile, Message: ev.Profile.Name() + " left the chat"})}}
	case domain.MessagePosted:
		return []delivery{{clientRoom(ev.RoomName), "", "new_message", encode(wire.MessageFromEvent(ev))}}
	case domain.NotificationSent:
		return []delivery{{userRoom(ev.To), "", "notification", encode(notificationOut{Title: ev.Title, Message: ev.Message, Type: string(ev.Type), Data: ev.Data})}}
	case domain.SystemAlertBroadcast:
		return []delivery{{"", "", "system_alert", encode(systemAlertOut{Title: ev.Title, Message: ev.Message, Severity: string(ev.Severity), Action: ev.Action})}}
	case domain.AppStatusChanged:
		return []delivery{{"", "", "app_updated", encode(wire.AppUpdatedFromEvent(ev))}}
	case domain.DataAgentUpdated:
		return []delivery{{"", "", "data_agent_update", encode(dataAgentPayload{AgentID: ev.AgentID, Status: ev.Status, Data: ev.Data, Timestamp: wire.Date(ev.At)})}}
	}
	return nil
}

// deliveredEventTypes are the event types that make deliveries, which a
// recovering socket may have missed.
var deliveredEventTypes = []string{
	domain.TypeChatMemberJoined, domain.TypeChatMemberLeft, domain.TypeMessagePosted, domain.TypeNotificationSent,
	domain.TypeSystemAlertBroadcast, domain.TypeAppStatusChanged, domain.TypeDataAgentUpdated,
}

// reaches reports whether a delivery reaches a socket of session sid in the
// given rooms.
func (dl delivery) reaches(sid string, rooms map[socket.Room]bool) bool {
	return dl.except != sid && (dl.to == "" || rooms[dl.to])
}

// localConfirm reports whether an event concerns a live socket of this node
// that should get its confirmations (a recovered socket's restored session
// is not confirmed again).
func (d *dispatcher) localConfirm(nodeID, sid string, metadata json.RawMessage) bool {
	if nodeID != d.srv.cfg.NodeID {
		return false
	}
	if _, ok := d.srv.sessionByID(sid); !ok {
		return false
	}
	var m domain.Metadata
	_ = json.Unmarshal(metadata, &m)
	return m.Command != commandRecover
}

// deliver makes one push of the event at pos, holding it back for the
// sockets whose chat history or recovery replay is still on its way.
func (d *dispatcher) deliver(dl delivery, pos eventstore.Position) {
	srv := d.srv
	var op *socket.BroadcastOperator
	if dl.to == "" {
		op = srv.io.Sockets().Except()
	} else {
		op = srv.io.To(dl.to)
	}
	var except []socket.Room
	if dl.except != "" {
		except = append(except, socketRoom(dl.except))
	}
	held := pushed{event: dl.event, payload: dl.payload, position: pos}
	if room, ok := strings.CutPrefix(string(dl.to), clientRoomPrefix); ok {
		for sid, g := range d.gates[room] {
			if sid == dl.except {
				continue
			}
			except = append(except, socketRoom(sid))
			g.buffer = append(g.buffer, held)
		}
	}
	for sid, g := range d.replays {
		if dl.reaches(sid, g.rooms) {
			except = append(except, socketRoom(sid))
			g.buffer = append(g.buffer, held)
		}
	}
	if len(except) > 0 {
		op = op.Except(except...)
	}
	srv.emitAt(op, dl.event, dl.payload, pos)
}

// openGate starts holding back room's pushes to a socket and reads its
// history through the given position.
func (d *dispatcher) openGate(sid, room string, through eventstore.Position, waiters []chan error) {
	if g := d.gates[room][sid]; g != nil {
		g.waiters = append(g.waiters, waiters...)
		return
	}
	g := &gate{sid: sid, room: room, through: through, waiters: waiters}
	if d.gates[room] == nil {
		d.gates[room] = map[string]*gate{}
	}
	d.gates[room][sid] = g
	d.fetches.Add(1)
	go func() {
		defer d.fetches.Done()
		srv := d.srv
		ctx, cancel := context.WithTimeout(srv.ctx, srv.cfg.CommandTimeout)
		defer cancel()
		var msgs []projections.ChatMessage
		err := srv.models.ChatHistory.WaitFor(ctx, through)
		if err == nil {
			msgs, err = srv.queries.ChatHistory.Handle(ctx, room, through, projections.HistoryLimit)
		}
		d.do(func() { d.closeGate(g, msgs, err) })
	}()
}

// closeGate sends joined_chat and the history, then what was held back.
func (d *dispatcher) closeGate(g *gate, history []projections.ChatMessage, err error) {
	delete(d.gates[g.room], g.sid)
	if len(d.gates[g.room]) == 0 {
		delete(d.gates, g.room)
	}
	srv := d.srv
	srv.emitTo(g.sid, "joined_chat", encode(joinedChatPayload{Room: g.room, Message: "Joined " + g.room}))
	if err == nil {
		srv.emitTo(g.sid, "chat_history", encode(wire.History(history)))
	} else {
		srv.cfg.Logger.Warn("could not read chat history", "socket", g.sid, "room", g.room, "err", err)
	}
	for _, p := range g.buffer {
		srv.emitAt(srv.io.To(socketRoom(g.sid)), p.event, p.payload, p.position)
	}
	for _, w := range g.waiters {
		select {
		case w <- err:
		default:
		}
	}
}
