package socketadapter

import (
	"context"
	"slices"
	"sync"

	"golang.org/x/time/rate"

	"github.com/auraos/realtime/commands"
	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/projections"
)

// session is the server's state of one socket: who it acts as, what it has
// joined (so a disconnect can end it), where it is typing, and its rate
// limiters. The socket's events run one at a time; its disconnect may run
// concurrently with them, so the fields are guarded by mu. Only the methods
// in this file take mu or touch what it guards: each transition (a join, a
// leave, typing, the end, a restore) is one method that holds the lock for
// all of it, so an end can never see it half done.
type session struct {
	id      string
	limits  limiters
	profile *domain.UserProfile // verified at connect (token claims), or nil
	list    presenceView        // what the presence broadcaster sent it
	pidHash string              // the key of its recoverable row; "" when recovery is off

	mu           sync.Mutex
	actor        domain.Actor
	presence     *domain.PresenceJoined
	chats        map[string]domain.ChatMemberJoined
	rooms        map[string]struct{}      // client rooms joined with join_room
	systemRooms  map[string]struct{}      // join_system_room
	typing       map[string]typingPayload // room → what "stopped typing" says
	pendingJoins map[string][]chan error  // room → join_chat_room calls awaiting history
	ended        bool
	generation   int64 // of its recoverable row, which this server claimed
	revision     int64 // of the last write of its row
}

// newSession makes the session of a socket that acts as actor.
func newSession(id string, actor domain.Actor, profile *domain.UserProfile, limits *RateLimits) *session {
	// The maps are made when first written (writing to a nil map is the
	// only thing that cannot be done with one), to keep idle sockets small.
	return &session{id: id, actor: actor, profile: profile, limits: limiters{config: limits}, generation: 1}
}

// restore takes over the state of a recovered session: its rooms, and its
// memberships unless they were ended (after the presence grace) and must be
// joined again.
func (s *session) restore(st sessionState, generation int64, membershipsEnded bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.generation = generation
	for _, r := range st.Rooms {
		s.rooms = addName(s.rooms, r)
	}
	for _, r := range st.SystemRooms {
		s.systemRooms = addName(s.systemRooms, r)
	}
	if membershipsEnded {
		return
	}
	s.presence = st.Presence
	for _, c := range st.Chats {
		s.addChat(c)
	}
}

func addName(set map[string]struct{}, name string) map[string]struct{} {
	if set == nil {
		set = map[string]struct{}{}
	}
	set[name] = struct{}{}
	return set
}

// tooManyRooms is the refusal of a join past the socket's room cap.
func tooManyRooms(max int) error {
	return domain.Errorf(domain.EFORBIDDEN, "a socket may be in at most %d rooms; leave one first", max)
}

// roomsLocked counts the rooms the socket is in; the caller holds mu.
func (s *session) roomsLocked() int {
	n := len(s.rooms) + len(s.systemRooms)
	for room := range s.chats {
		if _, also := s.rooms[room]; !also {
			n++
		}
	}
	return n
}

// canJoin returns FORBIDDEN when joining one more room of the given kind
// would put the socket past max rooms (a room it is in already is free).
func (s *session) canJoin(room string, system bool, max int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if system {
		if _, in := s.systemRooms[room]; in {
			return nil
		}
	} else {
		_, in := s.rooms[room]
		_, chat := s.chats[room]
		if in || chat {
			return nil
		}
	}
	if s.roomsLocked() >= max {
		return tooManyRooms(max)
	}
	return nil
}

// joinedRoom records a client room (system: a system room) the socket
// joined.
func (s *session) joinedRoom(room string, system bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if system {
		s.systemRooms = addName(s.systemRooms, room)
	} else {
		s.rooms = addName(s.rooms, room)
	}
}

// leftRoom records that the socket left a client room.
func (s *session) leftRoom(room string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.rooms, room)
}

// recoveryRow is the session's recoverable row as of now, with the next
// revision, and false when the session has ended (a disconnect suspended
// it; nothing is written after that).
func (s *session) recoveryRow(node string) (projections.RecoverySession, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended || s.pidHash == "" {
		return projections.RecoverySession{}, false
	}
	s.revision++
	return projections.RecoverySession{
		PIDHash: s.pidHash, SessionID: s.id, NodeID: node, Generation: s.generation, Revision: s.revision,
		UserID: s.actor.UserID, State: string(encode(s.stateLocked())), Connected: true,
	}, true
}

// stateLocked is the session's sessionState; the caller holds mu.
func (s *session) stateLocked() sessionState {
	st := sessionState{UserID: s.actor.UserID, Profile: s.profile, Admin: s.actor.Admin, Actor: s.actor, Presence: s.presence, Chats: s.chatList()}
	for r := range s.rooms {
		st.Rooms = append(st.Rooms, r)
	}
	for r := range s.systemRooms {
		st.SystemRooms = append(st.SystemRooms, r)
	}
	slices.Sort(st.Rooms)
	slices.Sort(st.SystemRooms)
	return st
}

// cause is the commands.Cause of an event this session sends now.
func (s *session) cause(command, correlationID string) commands.Cause {
	s.mu.Lock()
	defer s.mu.Unlock()
	return commands.Cause{Actor: s.actor, Command: command, CorrelationID: correlationID}
}

// currentActor returns who the session acts as.
func (s *session) currentActor() domain.Actor {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.actor
}

// bind records the actor a command bound the session to.
func (s *session) bind(a domain.Actor) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.actor = a
}

// verifiedProfile merges a profile a client sent with the verified claims of
// its token: claims win, so a user cannot show another name or email than
// their token says.
func (s *session) verifiedProfile(p domain.UserProfile) domain.UserProfile {
	v := s.profile
	if v == nil {
		return p
	}
	if v.Email != "" {
		p.Email = v.Email
	}
	if v.DisplayName != "" {
		p.DisplayName = v.DisplayName
	}
	if v.PhotoURL != "" {
		p.PhotoURL = v.PhotoURL
	}
	return p
}

// currentPresence returns the presence the session has joined, if any.
func (s *session) currentPresence() (domain.PresenceJoined, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.presence == nil {
		return domain.PresenceJoined{}, false
	}
	return *s.presence, true
}

// joinedPresence records a stored presence and the actor its command bound,
// unless the session has ended meanwhile: then it records nothing and
// reports ended, and the caller must end the presence itself, since the
// session's end did not include it.
func (s *session) joinedPresence(ev domain.PresenceJoined, actor domain.Actor) (ended bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return true
	}
	s.presence, s.actor = &ev, actor
	return false
}

// inChat reports whether the session is a member of the chat room.
func (s *session) inChat(room string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.chats[room]
	return ok
}

// joinedChat records a stored chat membership and the actor its command
// bound, unless the session has ended meanwhile: then it records nothing
// and reports ended, and the caller must end the membership itself.
func (s *session) joinedChat(ev domain.ChatMemberJoined, actor domain.Actor) (ended bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return true
	}
	s.addChat(ev)
	s.actor = actor
	return false
}

// restoredChat records a chat membership that a recovery stored again. It
// leaves the actor alone: the restored presence bound it already. Like
// joinedChat it reports ended, recording nothing, when the session has
// ended meanwhile.
func (s *session) restoredChat(ev domain.ChatMemberJoined) (ended bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return true
	}
	s.addChat(ev)
	return false
}

// leaveChat ends the session's typing in room and removes its membership
// of the chat room, both at once, so that an end running meanwhile neither
// ends them too nor misses them. It returns the membership, if there was
// one, whose leave the caller must store, and the "stopped typing" the
// room must see, if the socket was typing there.
func (s *session) leaveChat(room string) (member domain.ChatMemberJoined, wasMember bool, typingStop *typingPayload) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if stop, ok := s.typing[room]; ok {
		delete(s.typing, room)
		typingStop = &stop
	}
	member, wasMember = s.chats[room]
	delete(s.chats, room)
	return member, wasMember, typingStop
}

// undoLeave records again a membership whose leave could not be stored, so
// that a retry can leave. An ended session records nothing: its end has
// already been taken without the membership.
func (s *session) undoLeave(member domain.ChatMemberJoined) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ended {
		s.addChat(member)
	}
}

// markTyping binds the session to the user profile names (refusing another
// user) and records whether the socket now types in room, so that its end
// can tell the room it stopped. On error nothing changes.
func (s *session) markTyping(room string, profile domain.UserProfile, isTyping bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	actor, err := s.actor.ActAs("userProfile.uid", profile.UID)
	if err != nil {
		return err
	}
	s.actor = actor
	if !isTyping {
		delete(s.typing, room)
		return nil
	}
	if s.typing == nil {
		s.typing = map[string]typingPayload{}
	}
	s.typing[room] = typingPayload{UserID: profile.UID, UserName: profile.Name(), IsTyping: false}
	return nil
}

// sessionEnd is what ending a session leaves to do: the "stopped typing"
// each room it typed in must see, and the presence and chat memberships to
// end in the log as its actor (now, or after the presence grace if the
// session is suspended), and the generation of its recoverable row.
type sessionEnd struct {
	actor      domain.Actor
	presence   *domain.PresenceJoined
	chats      []domain.ChatMemberJoined
	typing     map[string]typingPayload
	generation int64
}

// end ends the session and returns what its end must do. Only the first
// call ends it (first is true; later calls return nothing), so a session's
// memberships are ended once; from then on joinedPresence, joinedChat and
// restoredChat record nothing and report ended, so that what is stored
// after the end is ended by whoever stored it.
func (s *session) end() (e sessionEnd, first bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return sessionEnd{}, false
	}
	s.ended = true
	e = sessionEnd{actor: s.actor, presence: s.presence, chats: s.chatList(), typing: s.typing, generation: s.generation}
	s.typing = nil
	return e, true
}

// chatList copies the chat memberships out of the map, for a caller that
// holds mu and hands them on past it.
func (s *session) chatList() []domain.ChatMemberJoined {
	chats := make([]domain.ChatMemberJoined, 0, len(s.chats))
	for _, m := range s.chats {
		chats = append(chats, m)
	}
	return chats
}

// addChat records a chat membership; it is the one place the chats map is
// made, and its callers hold mu.
func (s *session) addChat(ev domain.ChatMemberJoined) {
	if s.chats == nil {
		s.chats = map[string]domain.ChatMemberJoined{}
	}
	s.chats[ev.RoomName] = ev
}

// awaitJoin registers a join_chat_room waiting for its history.
func (s *session) awaitJoin(room string, done chan error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pendingJoins == nil {
		s.pendingJoins = map[string][]chan error{}
	}
	s.pendingJoins[room] = append(s.pendingJoins[room], done)
}

// takeJoins removes and returns the calls waiting for room's history.
func (s *session) takeJoins(room string) []chan error {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.pendingJoins[room]
	delete(s.pendingJoins, room)
	return w
}

// forgetJoin removes one waiting call (its join failed).
func (s *session) forgetJoin(room string, done chan error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.pendingJoins[room]
	for i, c := range w {
		if c == done {
			s.pendingJoins[room] = append(w[:i], w[i+1:]...)
			break
		}
	}
	if len(s.pendingJoins[room]) == 0 {
		delete(s.pendingJoins, room)
	}
}

// limiters are a socket's token buckets, one per event family. Each is made
// on the family's first event, full (as a bucket made at connect would be
// by then): an idle socket keeps none.
type limiters struct {
	config                                     *RateLimits // the server's
	message, typing, notification, agent, join *rate.Limiter
}

// limiter returns the bucket *b, made from l on first use.
func (s *session) limiter(b **rate.Limiter, l RateLimit) *rate.Limiter {
	s.mu.Lock()
	defer s.mu.Unlock()
	if *b == nil {
		*b = rate.NewLimiter(l.Rate, l.Burst)
	}
	return *b
}

func (s *session) messageLimit() *rate.Limiter {
	return s.limiter(&s.limits.message, s.limits.config.Message)
}

func (s *session) typingLimit() *rate.Limiter {
	return s.limiter(&s.limits.typing, s.limits.config.Typing)
}

func (s *session) notificationLimit() *rate.Limiter {
	return s.limiter(&s.limits.notification, s.limits.config.Notification)
}

func (s *session) agentLimit() *rate.Limiter {
	return s.limiter(&s.limits.agent, s.limits.config.Agent)
}

func (s *session) joinLimit() *rate.Limiter {
	return s.limiter(&s.limits.join, s.limits.config.Join)
}

// RateLimit is one token bucket: Rate events per second on average, Burst
// at once.
type RateLimit struct {
	Rate  rate.Limit
	Burst int
}

// RateLimits are the per-socket buckets of the rate-limited event families.
type RateLimits struct {
	Message      RateLimit // send_message
	Typing       RateLimit // typing_start, typing_stop
	Notification RateLimit // send_notification
	Agent        RateLimit // data_agent_update
	Join         RateLimit // join_room, join_chat_room, join_system_room
}

// DefaultRateLimits are generous for people and tight for floods.
var DefaultRateLimits = RateLimits{
	Message:      RateLimit{Rate: 20, Burst: 40},
	Typing:       RateLimit{Rate: 10, Burst: 20},
	Notification: RateLimit{Rate: 10, Burst: 20},
	Agent:        RateLimit{Rate: 50, Burst: 100},
	Join:         RateLimit{Rate: 10, Burst: 50},
}

// setDefaults fills in the default of each bucket left unset, so a Config
// needs to name only the limits it changes.
func (l *RateLimits) setDefaults() {
	fill := func(r *RateLimit, d RateLimit) {
		if r.Rate <= 0 {
			r.Rate = d.Rate
		}
		if r.Burst <= 0 {
			r.Burst = d.Burst
		}
	}
	fill(&l.Message, DefaultRateLimits.Message)
	fill(&l.Typing, DefaultRateLimits.Typing)
	fill(&l.Notification, DefaultRateLimits.Notification)
	fill(&l.Agent, DefaultRateLimits.Agent)
	fill(&l.Join, DefaultRateLimits.Join)
}

// tracker counts work that Shutdown must wait for. Unlike a WaitGroup it may
// gain work while someone waits (a disconnect during shutdown ends its
// session).
type tracker struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed while n == 0
}

// newTracker makes a tracker with no work in flight.
func newTracker() *tracker {
	t := &tracker{idle: make(chan struct{})}
	close(t.idle)
	return t
}

// enter counts one more piece of work; a wait started before it waits for
// it too.
func (t *tracker) enter() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == 0 {
		t.idle = make(chan struct{})
	}
	t.n++
}

// leave counts one piece of work done, releasing the waiters when it was
// the last.
func (t *tracker) leave() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n--
	if t.n == 0 {
		close(t.idle)
	}
}

// wait returns when no work is in flight, or with ctx's error.
func (t *tracker) wait(ctx context.Context) error {
	for {
		t.mu.Lock()
		n, idle := t.n, t.idle
		t.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-idle:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
