package main

import (
	"bytes"
	"context"
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

type stormConfig struct {
	clients        int
	spread         time.Duration
	timeout        time.Duration
	serverPID      int
	connectWorkers int
}

type stormClient struct {
	convergedAt atomic.Int64 // ns since origin; 0 until its list is full
	lastCount   atomic.Int64 // entries of its latest online_users
	lists       int64        // online_users packets (reading goroutine only)
	errors      int64
}

var (
	evOnlineUsers = []byte("online_users")
	socketIDKey   = []byte(`"socketId"`)
)

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
			case bytes.Equal(name, evOnlineUsers):
				st.lists++
				count := int64(bytes.Count(pkt, socketIDKey))
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
	clients, err := connectAll(ctx, endpoint, n, cfg.connectWorkers, func(i int) handler { return onPacket(states[i]) }, nil)
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

	res := &Result{Scenario: "storm", Clients: n, SpreadSeconds: cfg.spread.Seconds(), TimedOut: timedOut,
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
