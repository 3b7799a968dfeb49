package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
)

// The presence storm: clients websocket clients connect first; then each
// sends join_user_room, evenly spread over spread. Convergence is the
// moment every client's latest online_users lists all the clients,
// measured from the first join; the entries of a list are counted by their
// "socketId" keys in the raw packet. Bytes are what the clients read from
// the network (websocket framing included) from the first join on.
//
// With diff, the clients connect with auth {presence: 'diff'}: they get one
// full online_users, then online_users_diff {joins, leaves} (entries keyed
// by id), and keep the set those build; a full list replaces it.

type stormConfig struct {
	clients        int
	spread         time.Duration
	timeout        time.Duration
	serverPID      int
	connectWorkers int
	diff           bool
	auth           []byte // the CONNECT auth object (diff's)
}

type stormClient struct {
	convergedAt atomic.Int64 // ns since origin; 0 until its list is full
	lastCount   atomic.Int64 // entries of its latest online_users
	lists       int64        // online_users(_diff) packets (reading goroutine only)
	errors      int64
	// Diff clients: the users online as the lists and diffs built them, a
	// bit per user by the number in its id (bench_u<i>), and how many.
	users  []uint64
	online int64
	joins  []int  // a diff's joins, applied after its leaves
	work   []byte // the packet's bytes not yet scanned
}

var (
	evOnlineUsers     = []byte("online_users")
	evOnlineUsersDiff = []byte("online_users_diff")
	socketIDKey       = []byte(`"socketId"`)
	// An entry's id is its first key ("id" is no key of the profile's);
	// a diff's leaves come after its joins.
	idKey       = []byte(`"id":"`)
	leavesKey   = []byte(`"leaves":`)
	benchPrefix = []byte("bench_u")
)

// scanChunk is how much of a streamed packet is read at a time.
const scanChunk = 32 << 10

// countKey counts key in a packet: prefix, then rest (nil when prefix is
// the whole packet), read in chunks.
func (st *stormClient) countKey(prefix []byte, rest io.Reader, key []byte) (int64, error) {
	n := int64(bytes.Count(prefix, key))
	if rest == nil {
		return n, nil
	}
	// The last len(key)-1 bytes may start a key the next chunk completes;
	// they cannot hold a whole one.
	keep := len(key) - 1
	st.work = append(st.work[:0], prefix[max(0, len(prefix)-keep):]...)
	for {
		from := len(st.work)
		st.work = slices.Grow(st.work, scanChunk)[:from+scanChunk]
		m, err := rest.Read(st.work[from:])
		st.work = st.work[:from+m]
		n += int64(bytes.Count(st.work, key))
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		st.work = append(st.work[:0], st.work[max(0, len(st.work)-keep):]...)
	}
}

// applyPresence updates a diff client's set from an online_users list or
// online_users_diff packet (prefix, then rest when not nil) and returns its
// size: a list replaces the set; a diff's leaves leave, then its joins join.
func (st *stormClient) applyPresence(prefix []byte, rest io.Reader, diff bool, n int) (int64, error) {
	if len(st.users) == 0 {
		st.users = make([]uint64, (n+63)/64)
	}
	if !diff {
		clear(st.users)
		st.online = 0
	}
	st.joins = st.joins[:0]
	leaving := false
	err := st.scanIDs(prefix, rest, func(id []byte, isLeaves bool) {
		if isLeaves {
			leaving = true
			return
		}
		i, ok := benchUser(id, n)
		switch {
		case !ok:
			st.errors++
		case !diff || !leaving:
			st.joins = append(st.joins, i)
		default:
			st.setUser(i, false)
		}
	})
	for _, i := range st.joins {
		st.setUser(i, true)
	}
	return st.online, err
}

func (st *stormClient) setUser(i int, on bool) {
	word, bit := i/64, uint64(1)<<(i%64)
	if was := st.users[word]&bit != 0; was != on {
		st.users[word] ^= bit
		if on {
			st.online++
		} else {
			st.online--
		}
	}
}

// benchUser is the number in a storm user's id, bench_u<i>, if below n.
func benchUser(id []byte, n int) (int, bool) {
	digits, ok := bytes.CutPrefix(id, benchPrefix)
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(string(digits))
	return i, err == nil && i >= 0 && i < n
}

// scanIDs calls visit with every entry id of a packet (prefix, then rest
// when not nil) as it reads it, and once with isLeaves when a diff's leaves
// begin. Each quote is looked at once: a key cut by the end of a chunk is
// kept for the next.
func (st *stormClient) scanIDs(prefix []byte, rest io.Reader, visit func(id []byte, isLeaves bool)) error {
	st.work = append(st.work[:0], prefix...)
	eof := rest == nil
	for {
		i := 0
		for {
			q := bytes.IndexByte(st.work[i:], '"')
			if q < 0 {
				i = len(st.work)
				break
			}
			q += i
			at := st.work[q:]
			if !eof && len(at) < len(leavesKey) {
				i = q
				break
			}
			if bytes.HasPrefix(at, leavesKey) {
				visit(nil, true)
				i = q + len(leavesKey)
				continue
			}
			if bytes.HasPrefix(at, idKey) {
				v := at[len(idKey):]
				end := bytes.IndexByte(v, '"')
				if end < 0 {
					if eof {
						return errors.New("an entry id without its end")
					}
					i = q
					break
				}
				visit(v[:end], false)
				i = q + len(idKey) + end + 1
				continue
			}
			i = q + 1
		}
		if eof {
			return nil
		}
		kept := copy(st.work, st.work[i:])
		st.work = slices.Grow(st.work[:kept], scanChunk)[:kept+scanChunk]
		m, err := rest.Read(st.work[kept:])
		st.work = st.work[:kept+m]
		if err == io.EOF {
			eof = true
		} else if err != nil {
			return err
		}
	}
}

func runStorm(ctx context.Context, endpoint string, cfg stormConfig) (*Result, error) {
	n := cfg.clients
	states := make([]*stormClient, n)
	for i := range states {
		states[i] = &stormClient{}
	}
	var converged atomic.Int64
	allDone := make(chan struct{})
	// observe counts the entries of an online_users list or diff, given
	// whole (rest nil) or streamed.
	observe := func(st *stormClient, name, prefix []byte, rest io.Reader, now int64) error {
		st.lists++
		var count int64
		var err error
		if cfg.diff {
			count, err = st.applyPresence(prefix, rest, len(name) == len(evOnlineUsersDiff), n)
		} else {
			// Counting keys is enough, and cheap, for full lists.
			count, err = st.countKey(prefix, rest, socketIDKey)
		}
		if err != nil {
			return err
		}
		if rest != nil {
			now = nanotime() // a streamed list counts once it has all arrived
		}
		st.lastCount.Store(count)
		if count >= int64(n) && st.convergedAt.Load() == 0 {
			st.convergedAt.Store(now)
			if converged.Add(1) == int64(n) {
				close(allDone)
			}
		}
		return nil
	}
	onPacket := func(st *stormClient) handler {
		return func(_ *client, pkt []byte, now int64) {
			name := eventName(pkt)
			switch {
			case bytes.Equal(name, evOnlineUsers), bytes.Equal(name, evOnlineUsersDiff):
				if observe(st, name, pkt, nil, now) != nil {
					st.errors++
				}
			case bytes.Equal(name, evError):
				st.errors++
			}
		}
	}
	onLarge := func(i int) streamHandler {
		st := states[i]
		return func(_ *client, prefix []byte, rest io.Reader, now int64) error {
			name := eventName(prefix)
			if !bytes.Equal(name, evOnlineUsers) && !bytes.Equal(name, evOnlineUsersDiff) {
				return nil // the rest is discarded
			}
			return observe(st, name, prefix, rest, now)
		}
	}
	logf("storm: connecting %d clients", n)
	start := time.Now()
	clients, err := connectAll(ctx, endpoint, n, cfg.connectWorkers, socketIOStreamDial(cfg.auth, onLarge), func(i int) handler { return onPacket(states[i]) }, nil)
	if err != nil {
		return nil, err
	}
	defer closeAll(clients)
	logf("storm: %d connected in %v; %d join_user_room over %v", n, time.Since(start).Round(time.Millisecond), n, cfg.spread)
	time.Sleep(time.Second) // connection-time pushes settle

	bytesIn := func() int64 {
		var s int64
		for _, c := range clients {
			s += c.nc.in.Load()
		}
		return s
	}
	cpu0, _ := procCPU(cfg.serverPID)
	self0 := selfCPU()
	bytes0 := bytesIn()
	first := nanotime()
	deadline := time.NewTimer(cfg.timeout)
	defer deadline.Stop()
	for i, c := range clients {
		at := first + int64(i)*int64(cfg.spread)/int64(n)
		if d := time.Duration(at - nanotime()); d > 0 {
			time.Sleep(d)
		}
		payload := fmt.Appendf(nil, `{"userId":"bench_u%d","userProfile":{"uid":"bench_u%d","email":"bench_u%d@bench.example","displayName":"Bench User %d"}}`, i, i, i, i)
		if err := c.emit("join_user_room", payload); err != nil {
			return nil, fmt.Errorf("client %d: join_user_room: %w", i, err)
		}
	}
	lastJoin := nanotime()
	timedOut := false
	select {
	case <-allDone:
	case <-deadline.C:
		timedOut = true
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	end := nanotime()
	bytesConv := bytesIn() - bytes0
	cpu1, _ := procCPU(cfg.serverPID)
	self1 := selfCPU()
	rss, _ := procRSS(cfg.serverPID)
	hwm, _ := procHWM(cfg.serverPID)
	closeAll(clients)

	res := &Result{Scenario: "storm", Clients: n, PresenceDiff: cfg.diff, SpreadSeconds: cfg.spread.Seconds(), TimedOut: timedOut,
		JoinSeconds: float64(lastJoin-first) / 1e9, BytesReceived: bytesConv, ServerRSSKiB: rss, ServerHWMKiB: hwm}
	var last int64
	minCount := int64(n)
	for _, st := range states {
		if t := st.convergedAt.Load(); t != 0 {
			res.Converged++
			last = max(last, t)
		}
		minCount = min(minCount, st.lastCount.Load())
		res.OnlineUsersPackets += st.lists
		res.Errors += st.errors
	}
	res.MinListSize = minCount
	if timedOut {
		last = end
	}
	res.ConvergeSeconds = float64(last-first) / 1e9
	res.AfterLastJoin = float64(last-lastJoin) / 1e9
	elapsed := float64(end-first) / 1e9
	if cfg.serverPID > 0 && elapsed > 0 {
		res.ServerCPU = (cpu1 - cpu0) / elapsed
	}
	res.LoadgenCPU = (self1 - self0) / elapsed
	return res, nil
}
