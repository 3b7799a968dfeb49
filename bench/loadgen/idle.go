package main

import (
	"context"
	"errors"
	"time"
)

// The idle-memory scenario: the server's resident memory (VmRSS) before and
// after n websocket clients complete the Socket.IO handshake and then do
// nothing but answer pings; the difference per connection.

type idleConfig struct {
	conns     int
	settle    time.Duration
	serverPID int
}

func runIdle(ctx context.Context, endpoint string, cfg idleConfig) (*Result, error) {
	if cfg.serverPID <= 0 {
		return nil, errors.New("idle needs -server-pid to read the server's RSS")
	}
	before, err := procRSS(cfg.serverPID)
	if err != nil {
		return nil, err
	}
	logf("idle: server RSS %d KiB; connecting %d idle clients", before, cfg.conns)
	start := time.Now()
	step := max(cfg.conns/5, 1)
	clients, err := connectAll(ctx, endpoint, cfg.conns, 32, socketIODial(nil), func(int) handler { return nil }, func(done int) {
		if done%step == 0 {
			logf("idle: %d connected", done)
		}
	})
	if err != nil {
		return nil, err
	}
	defer closeAll(clients)
	took := time.Since(start)
	logf("idle: %d connected in %v; settling %v", cfg.conns, took.Round(time.Millisecond), cfg.settle)
	// Sample over the settle time and keep the last (a GC may return memory
	// in between; the last sample is the steady state).
	var after int64
	for t := time.Duration(0); t < cfg.settle; t += time.Second {
		if !sleepCtx(ctx, min(time.Second, cfg.settle-t)) {
			return nil, ctx.Err()
		}
		if after, err = procRSS(cfg.serverPID); err != nil {
			return nil, err
		}
	}
	alive := 0
	for _, c := range clients {
		select {
		case <-c.done:
		default:
			alive++
		}
	}
	hwm, _ := procHWM(cfg.serverPID)
	res := &Result{Scenario: "idle", Clients: cfg.conns, Alive: alive, ConnectSeconds: took.Seconds(),
		RSSBeforeKiB: before, RSSAfterKiB: after, ServerRSSKiB: after, ServerHWMKiB: hwm,
		PerConnKiB: float64(after-before) / float64(cfg.conns)}
	return res, nil
}
