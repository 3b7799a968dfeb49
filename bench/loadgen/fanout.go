package main

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The chat fan-out scenario: rooms × members websocket clients each join one
// chat room; one member per room (the sender) keeps inflight messages in
// flight, sending the next whenever one of its own new_message echoes
// arrives. Every member (the sender too) records the delay from the send to
// its receipt; the send time travels in the message text. Warm-up first,
// then duration measured: receipts inside the window count.

type fanoutConfig struct {
	rooms, members, inflight int
	warmup, duration         time.Duration
	ack                      bool
	serverPID                int
	// slowPerRoom non-reading members join every room (slow.go); the
	// result is then the "slow" scenario's, with metricsURL's
	// auraos_slow_disconnects_total when given.
	slowPerRoom int
	metricsURL  string
	// centrifugo: the server is Centrifugo (centrifugo.go): members
	// subscribe to the room's channel and the senders publish into it.
	centrifugo bool
}

func (cfg fanoutConfig) dial() dialFunc {
	if cfg.centrifugo {
		return dialCentrifugo
	}
	return socketIODial(nil)
}

// join is the member's room join: its command and what refuses it.
func (cfg fanoutConfig) join(m *member) (event string, payload, refused []byte) {
	if cfg.centrifugo {
		return "subscribe", fmt.Appendf(nil, `{"channel":"bench_room_%d"}`, m.room), []byte(`"error"`)
	}
	return "join_chat_room", fmt.Appendf(nil, `{"roomName":"bench_room_%d","userProfile":{"uid":%q,"email":"%s@bench.example","displayName":"Bench %s"}}`,
		m.room, m.uid, m.uid, m.uid), okFalse
}

// member is one connection's state, touched only by its reading goroutine
// (and, for the sender, by the start-up sends before messages flow).
type member struct {
	room      int
	uid       string
	sender    bool
	latencies []int64 // ns, receipts inside the window
	received  int64   // all new_message receipts
	reordered int64   // receipts with a lower sequence than one seen before
	maxSeq    int64
	errors    int64 // `error` events and failed acks

	// sender only
	seq     int64
	sendBuf []byte
}

type fanoutRun struct {
	cfg                    fanoutConfig
	windowStart, windowEnd atomic.Int64 // ns since origin; end 0 = open
	stopping               atomic.Bool
	members                []*member
}

var (
	msgMarker   = []byte(`"message":"m`)
	okFalse     = []byte(`"ok":false`)
	evNewMsg    = []byte("new_message")
	evError     = []byte("error")
	textPadding = " Hello everyone, this is a chat message of a typical length."
)

func runFanout(ctx context.Context, endpoint string, cfg fanoutConfig) (*Result, error) {
	n := cfg.rooms * cfg.members
	run := &fanoutRun{cfg: cfg, members: make([]*member, n)}
	run.windowStart.Store(-1)
	for i := range run.members {
		m := &member{room: i / cfg.members, sender: i%cfg.members == 0, maxSeq: -1,
			latencies: make([]int64, 0, 4096)}
		m.uid = fmt.Sprintf("bench_r%d_m%d", m.room, i%cfg.members)
		run.members[i] = m
	}
	logf("fanout: connecting %d clients (%d rooms × %d members)", n, cfg.rooms, cfg.members)
	start := time.Now()
	clients, err := connectAll(ctx, endpoint, n, 64, cfg.dial(), func(i int) handler {
		m := run.members[i]
		return func(c *client, pkt []byte, now int64) { run.onPacket(c, m, pkt, now) }
	}, nil)
	if err != nil {
		return nil, err
	}
	defer closeAll(clients)
	logf("fanout: %d connected in %v; joining chat rooms", n, time.Since(start).Round(time.Millisecond))

	// Every member joins its room and waits for the ack (the server acks
	// after joined_chat and chat_history).
	start = time.Now()
	if err := parallel(ctx, n, 64, func(i int) error {
		event, payload, refused := cfg.join(run.members[i])
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		res, err := clients[i].call(cctx, event, payload)
		if err != nil {
			return fmt.Errorf("member %d: %w", i, err)
		}
		if bytes.Contains(res, refused) {
			return fmt.Errorf("member %d: %s refused: %s", i, event, res)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	var slow []*slowMember
	defer func() {
		for _, s := range slow {
			_ = s.ws.Close()
		}
	}()
	for r := 0; r < cfg.rooms; r++ {
		for k := 0; k < cfg.slowPerRoom; k++ {
			s, err := dialSlow(ctx, endpoint, r, fmt.Sprintf("bench_r%d_slow%d", r, k))
			if err != nil {
				return nil, err
			}
			slow = append(slow, s)
		}
	}
	logf("fanout: joined in %v (%d slow members); warm-up %v, then %v measured", time.Since(start).Round(time.Millisecond), len(slow), cfg.warmup, cfg.duration)
	time.Sleep(200 * time.Millisecond) // let user_joined_chat broadcasts settle

	// The senders start; the window opens after the warm-up.
	for i, m := range run.members {
		if m.sender {
			c := clients[i]
			for k := 0; k < cfg.inflight; k++ {
				if err := run.send(c, m); err != nil {
					return nil, fmt.Errorf("sender %d: %w", i, err)
				}
			}
		}
	}
	if !sleepCtx(ctx, cfg.warmup) {
		return nil, ctx.Err()
	}
	cpu0, _ := procCPU(cfg.serverPID)
	self0 := selfCPU()
	ws := nanotime()
	run.windowStart.Store(ws)
	if !sleepCtx(ctx, cfg.duration) {
		return nil, ctx.Err()
	}
	we := nanotime()
	run.windowEnd.Store(we)
	cpu1, _ := procCPU(cfg.serverPID)
	self1 := selfCPU()
	run.stopping.Store(true)
	time.Sleep(300 * time.Millisecond) // receipts of the window still on their way are dropped (late = outside)

	rssKiB, _ := procRSS(cfg.serverPID)
	hwmKiB, _ := procHWM(cfg.serverPID)
	closeAll(clients)
	slowGone := 0
	var smu sync.Mutex
	_ = parallel(ctx, len(slow), 16, func(i int) error {
		if slow[i].disconnected(2 * time.Second) {
			smu.Lock()
			slowGone++
			smu.Unlock()
		}
		return nil
	})
	window := time.Duration(we - ws)

	// The reading goroutines have ended: their state is ours to merge.
	var all []int64
	var received, reordered, errs, senderReceipts int64
	total := 0
	for _, m := range run.members {
		total += len(m.latencies)
	}
	all = make([]int64, 0, total)
	for _, m := range run.members {
		all = append(all, m.latencies...)
		received += m.received
		reordered += m.reordered
		errs += m.errors
		if m.sender {
			senderReceipts += int64(len(m.latencies))
		}
	}
	scenario := "fanout"
	if cfg.centrifugo {
		scenario = "centrifugo"
	}
	res := &Result{Scenario: scenario, Clients: n, Rooms: cfg.rooms, Members: cfg.members, Inflight: cfg.inflight,
		WindowSeconds: window.Seconds(), Delivered: int64(len(all)),
		DeliveredPerSec: float64(len(all)) / window.Seconds(), SentPerSec: float64(senderReceipts) / window.Seconds(),
		Reordered: reordered, Errors: errs, ServerRSSKiB: rssKiB, ServerHWMKiB: hwmKiB}
	if cfg.slowPerRoom > 0 {
		res.Scenario = "slow"
		res.SlowMembers, res.SlowDisconnected = len(slow), slowGone
		res.SlowDisconnectsMetric = slowDisconnectsMetric(ctx, cfg.metricsURL)
	}
	res.setLatencies(all)
	if cfg.serverPID > 0 && cpu1 >= cpu0 {
		res.ServerCPU = (cpu1 - cpu0) / window.Seconds()
	}
	res.LoadgenCPU = (self1 - self0) / window.Seconds()
	return res, nil
}

// send emits the sender's next message: its sequence and send time lead
// the text. The start-up sends and the reading goroutine's follow-ups
// share the sender's state under the connection's write lock.
func (r *fanoutRun) send(c *client, m *member) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	seq := m.seq
	m.seq++
	b := m.sendBuf[:0]
	if r.cfg.centrifugo {
		// The reply ids stay clear of the set-up calls'.
		b = append(b, `{"id":`...)
		b = strconv.AppendInt(b, 1_000_000+seq, 10)
		b = append(b, `,"publish":{"channel":"bench_room_`...)
		b = strconv.AppendInt(b, int64(m.room), 10)
		b = append(b, `","data":{"message":"m`...)
	} else {
		b = append(b, `42`...)
		if r.cfg.ack {
			b = strconv.AppendInt(b, seq, 10)
		}
		b = append(b, `["send_message",{"roomName":"bench_room_`...)
		b = strconv.AppendInt(b, int64(m.room), 10)
		b = append(b, `","message":"m`...)
	}
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, nanotime(), 10)
	b = append(b, textPadding...)
	b = append(b, `","messageType":"text","userProfile":{"uid":"`...)
	b = append(b, m.uid...)
	b = append(b, `","email":"`...)
	b = append(b, m.uid...)
	b = append(b, `@bench.example","displayName":"Bench `...)
	b = append(b, m.uid...)
	b = append(b, `"}}`...)
	if r.cfg.centrifugo {
		b = append(b, `}}`...)
	} else {
		b = append(b, ']')
	}
	m.sendBuf = b
	return c.writeLocked(b)
}

// What a packet is to the fan-out.
type packetKind int

const (
	pktOther   packetKind = iota
	pktMessage            // a chat message: new_message, a Centrifugo publication
	pktError              // an error that does not cost the sender a message
	pktRefused            // a refused send: the sender sends another to stay full
)

// classify tells what a packet is.
func (r *fanoutRun) classify(pkt []byte) packetKind {
	if r.cfg.centrifugo {
		switch {
		case bytes.HasPrefix(pkt, []byte(`{"push"`)):
			return pktMessage
		case bytes.HasPrefix(pkt, []byte(`{"id"`)) && bytes.Contains(pkt, []byte(`"error"`)):
			return pktRefused
		}
		return pktOther
	}
	if len(pkt) > 1 && pkt[1] == '3' { // an ack of send_message
		if bytes.Contains(pkt, okFalse) {
			return pktRefused
		}
		return pktOther
	}
	switch name := eventName(pkt); {
	case bytes.Equal(name, evNewMsg):
		return pktMessage
	case bytes.Equal(name, evError):
		// With acks, the failed ack refills the pipeline.
		if !r.cfg.ack && bytes.Contains(pkt, []byte(`"send_message"`)) {
			return pktRefused
		}
		return pktError
	}
	return pktOther
}

// onPacket runs on each connection's reading goroutine.
func (r *fanoutRun) onPacket(c *client, m *member, pkt []byte, now int64) {
	switch r.classify(pkt) {
	case pktOther:
		return
	case pktError:
		m.errors++
		return
	case pktRefused:
		m.errors++
		if m.sender && !r.stopping.Load() {
			_ = r.send(c, m) // keep the pipeline full
		}
		return
	}
	seq, sentAt, ok := parseMarker(pkt)
	if !ok {
		return
	}
	m.received++
	if seq < m.maxSeq {
		m.reordered++
	} else {
		m.maxSeq = seq
	}
	if ws := r.windowStart.Load(); ws >= 0 && now >= ws {
		if we := r.windowEnd.Load(); we == 0 || now < we {
			m.latencies = append(m.latencies, now-sentAt)
		}
	}
	if m.sender && !r.stopping.Load() {
		_ = r.send(c, m)
	}
}

// parseMarker finds "message":"m<seq>:<sent ns> in a new_message packet.
func parseMarker(pkt []byte) (seq, sentAt int64, ok bool) {
	i := bytes.Index(pkt, msgMarker)
	if i < 0 {
		return 0, 0, false
	}
	p := pkt[i+len(msgMarker):]
	seq, p, ok = parseInt(p)
	if !ok || len(p) == 0 || p[0] != ':' {
		return 0, 0, false
	}
	sentAt, _, ok = parseInt(p[1:])
	return seq, sentAt, ok
}

func parseInt(p []byte) (int64, []byte, bool) {
	var v int64
	i := 0
	for i < len(p) && p[i] >= '0' && p[i] <= '9' {
		v = v*10 + int64(p[i]-'0')
		i++
	}
	return v, p[i:], i > 0
}

// parallel runs fn(0..n-1) on par goroutines and returns the first error.
func parallel(ctx context.Context, n, par int, fn func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for w := 0; w < par; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		// The parent context ended.
		return ctx.Err()
	}
	return first
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
