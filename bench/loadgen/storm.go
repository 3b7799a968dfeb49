package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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
	users       map[string]struct{} // diff clients: the users online as the diffs built them
}

var (
	evOnlineUsers     = []byte("online_users")
	evOnlineUsersDiff = []byte("online_users_diff")
	socketIDKey       = []byte(`"socketId"`)
)

// presenceEntry is what a diff client keeps of an online_users entry.
type presenceEntry struct {
	ID string `json:"id"`
}

// applyPresence updates a diff client's set from an online_users list or
// online_users_diff packet and returns its size.
func (st *stormClient) applyPresence(pkt []byte, diff bool) int64 {
	var args []json.RawMessage // ["event", payload, offset?]
	if json.Unmarshal(pkt[2:], &args) != nil || len(args) < 2 {
		st.errors++
		return int64(len(st.users))
	}
	if !diff {
		var list []presenceEntry
		if json.Unmarshal(args[1], &list) != nil {
			st.errors++
		}
		st.users = make(map[string]struct{}, len(list))
		for _, e := range list {
			st.users[e.ID] = struct{}{}
		}
		return int64(len(st.users))
	}
	var d struct {
		Joins, Leaves []presenceEntry
	}
	if json.Unmarshal(args[1], &d) != nil {
		st.errors++
	}
	for _, e := range d.Leaves {
		delete(st.users, e.ID)
	}
	for _, e := range d.Joins {
		st.users[e.ID] = struct{}{}
	}
	return int64(len(st.users))
}

func runStorm(ctx context.Context, endpoint string, cfg stormConfig) (*Result, error) {
	n := cfg.clients
	states := make([]*stormClient, n)
	for i := range states {
		states[i] = &stormClient{}
	}
	var converged atomic.Int64
	allDone := make(chan struct{})
	onPacket := func(st *stormClient) handler {
		return func(_ *client, pkt []byte, now int64) {
			name := eventName(pkt)
			switch {
			case bytes.Equal(name, evOnlineUsers), bytes.Equal(name, evOnlineUsersDiff):
				st.lists++
				var count int64
				if cfg.diff {
					count = st.applyPresence(pkt, len(name) == len(evOnlineUsersDiff))
				} else {
					// Counting keys is enough, and cheap, for full lists.
					count = int64(bytes.Count(pkt, socketIDKey))
				}
				st.lastCount.Store(count)
				if count >= int64(n) && st.convergedAt.Load() == 0 {
					st.convergedAt.Store(now)
					if converged.Add(1) == int64(n) {
						close(allDone)
					}
				}
			case bytes.Equal(name, evError):
				st.errors++
			}
		}
	}
	logf("storm: connecting %d clients", n)
	start := time.Now()
	clients, err := connectAll(ctx, endpoint, n, cfg.connectWorkers, socketIODial(cfg.auth), func(i int) handler { return onPacket(states[i]) }, nil)
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
