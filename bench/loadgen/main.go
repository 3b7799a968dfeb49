// Command loadgen drives a Socket.IO server that speaks SOCKET_EVENTS.md
// (ours, or the Node.js baseline in bench/node-server) with one of the
// scenarios of `make bench`:
//
//	loadgen -url http://127.0.0.1:5000 -scenario fanout [-rooms 50 -members 20 -inflight 4 -warmup 3s -duration 10s]
//	loadgen -url … -scenario slow [fanout's flags, -slow-members 1 -metrics-url http://…/metrics]
//	loadgen -url … -scenario storm [-clients 1000 -spread 5s -timeout 60s -presence full|diff]
//	loadgen -url … -scenario idle -server-pid PID [-idle 10000 -settle 3s]
//	loadgen -url http://127.0.0.1:8000 -scenario centrifugo [fanout's flags]   (Centrifugo's JSON protocol)
//
// It speaks Engine.IO 4 / Socket.IO 5 over websockets itself (see client.go),
// one reading goroutine per connection, or Centrifugo's JSON protocol
// (centrifugo.go). -server-pid adds the server's CPU and memory to the
// figures, summed over its process group (a server's forked workers
// count); -json prints the result as one JSON object.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/auraos/realtime/bench/internal/fdlimit"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:5000", "server URL (http://host:port)")
	scenario := flag.String("scenario", "fanout", "fanout, slow, storm, idle, or centrifugo (the fan-out against Centrifugo)")
	duration := flag.Duration("duration", 10*time.Second, "fanout: measured time")
	warmup := flag.Duration("warmup", 3*time.Second, "fanout: warm-up before measuring")
	rooms := flag.Int("rooms", 50, "fanout: chat rooms")
	members := flag.Int("members", 20, "fanout: connections per room (one of them sends)")
	inflight := flag.Int("inflight", 4, "fanout: messages each sender keeps in flight")
	ack := flag.Bool("ack", false, "fanout: send messages with an acknowledgement id")
	slowPerRoom := flag.Int("slow-members", 1, "slow: non-reading members per room (0: the same run without them)")
	metricsURL := flag.String("metrics-url", "", "slow: the server's Prometheus endpoint, for auraos_slow_disconnects_total")
	clients := flag.Int("clients", 1000, "storm: clients joining")
	spread := flag.Duration("spread", 5*time.Second, "storm: the joins are spread evenly over this time")
	timeout := flag.Duration("timeout", 60*time.Second, "storm: give up converging after this long from the first join")
	presence := flag.String("presence", "full", "storm: full (online_users lists) or diff (auth {presence: 'diff'}: online_users_diff)")
	idle := flag.Int("idle", 10000, "idle: idle websocket connections")
	settle := flag.Duration("settle", 3*time.Second, "idle: wait after connecting before reading the RSS")
	serverPID := flag.Int("server-pid", 0, "the server's process id (RSS and CPU from /proc)")
	asJSON := flag.Bool("json", false, "print the result as JSON on stdout (progress goes to stderr)")
	flag.Parse()

	toEndpoint := wsURL
	if *scenario == "centrifugo" {
		toEndpoint = centrifugoURL
	}
	endpoint, err := toEndpoint(*url)
	if err != nil {
		fatal(err)
	}
	conns := *rooms * *members
	switch *scenario {
	case "storm":
		conns = *clients
	case "idle":
		conns = *idle
	}
	if err := fdlimit.Raise(uint64(conns) + 256); err != nil {
		fatal(err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var res *Result
	switch *scenario {
	case "fanout", "slow", "centrifugo":
		if *scenario != "slow" {
			*slowPerRoom = 0
		}
		if *rooms <= 0 || *members <= 0 || *inflight <= 0 {
			fatal(fmt.Errorf("-rooms, -members and -inflight must be positive"))
		}
		res, err = runFanout(ctx, endpoint, fanoutConfig{rooms: *rooms, members: *members, inflight: *inflight,
			warmup: *warmup, duration: *duration, ack: *ack, serverPID: *serverPID, slowPerRoom: *slowPerRoom, metricsURL: *metricsURL,
			centrifugo: *scenario == "centrifugo"})
	case "storm":
		cfg := stormConfig{clients: *clients, spread: *spread, timeout: *timeout, serverPID: *serverPID, connectWorkers: 64}
		switch *presence {
		case "diff":
			cfg.diff, cfg.auth = true, []byte(`{"presence":"diff"}`)
		case "full":
		default:
			fatal(fmt.Errorf("-presence: full or diff, not %q", *presence))
		}
		res, err = runStorm(ctx, endpoint, cfg)
	case "idle":
		res, err = runIdle(ctx, endpoint, idleConfig{conns: *idle, settle: *settle, serverPID: *serverPID})
	default:
		err = fmt.Errorf("unknown scenario %q (fanout, slow, storm, idle, centrifugo)", *scenario)
	}
	if err != nil {
		fatal(err)
	}
	res.URL = *url
	if *asJSON {
		res.print(os.Stderr)
		b, _ := json.Marshal(res)
		fmt.Println(string(b))
		return
	}
	res.print(os.Stdout)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "loadgen:", err)
	os.Exit(1)
}
