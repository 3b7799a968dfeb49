// Command run is `make bench`: it measures our server (bin/auraos) against
// the Node.js socket.io baseline (bench/node-server) with the load generator
// (bench/loadgen) on this machine, runs the store and projection
// benchmarks, prints a table and rewrites the Performance section of
// README.md between <!-- bench:start --> and <!-- bench:end -->.
//
// Each scenario runs -runs times per server, alternating (ours, Node.js,
// ours, Node.js, …), each run against a freshly started server; the table
// shows each server's median run and the spread (min–max) of the runs.
// The fan-out scenarios add reference servers (Node.js with two workers;
// Centrifugo with -centrifugo), -smoke runs every scenario tiny.
//
// Run it from the module root: go run ./bench/run [-runs 3] [-scenarios fanout,fanout-js,storm,slow,idle,recovery,store,rebuild] [-smoke] [-centrifugo] [-no-readme]
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/auraos/realtime/bench/internal/fdlimit"
	"github.com/auraos/realtime/schema"
)

type options struct {
	runs         int
	scenarios    []string
	duration     time.Duration
	warmup       time.Duration
	rooms        int // fan-out: rooms
	members      int // fan-out and slow: members per room
	slowRooms    int
	slowInflight int           // slow: messages each sender keeps in flight
	slowDuration time.Duration // slow: measured time
	stormSizes   []int
	stormSpread  time.Duration
	stormTimeout time.Duration
	stormNodeMax int // the largest storm Node.js runs
	stormDiff    bool
	idleSizes    []int
	recRooms     int           // recovery: rooms
	recMembers   int           // recovery: members per room
	recMessages  int           // recovery: messages each member misses
	recTimeout   time.Duration // recovery: give up recovering after this long
	floodMsgs    int           // recovery flood: messages
	floodMembers int           // recovery flood: members of the room
	floodSettle  time.Duration // recovery flood: settle before each RSS reading
	storeSmall   bool          // one iteration of the store benchmarks, a small log
	centrifugo   bool
	smoke        bool
	readme       string
	noReadme     bool
	bin          string
	node         string
	jsonOut      string
}

func main() {
	var o options
	var scenarios, stormSizes, idleSizes string
	flag.IntVar(&o.runs, "runs", 3, "runs per server and scenario (alternating ours, Node.js)")
	flag.StringVar(&scenarios, "scenarios", strings.Join(scenarioNames, ","), "scenarios to run, comma-separated")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "fan-out: measured time")
	flag.DurationVar(&o.warmup, "warmup", 3*time.Second, "fan-out and slow: warm-up")
	flag.IntVar(&o.rooms, "rooms", 50, "fan-out: chat rooms")
	flag.IntVar(&o.members, "members", 20, "fan-out and slow: members per room")
	flag.IntVar(&o.slowRooms, "slow-rooms", 10, "slow: busy rooms, each with one non-reading member")
	// A room is busy when a non-reading member falls megabytes behind
	// within the run: past the server's queue bound and the kernel's
	// socket buffers (up to 4 MiB on loopback), which 4 in flight do not
	// reach in seconds.
	flag.IntVar(&o.slowInflight, "slow-inflight", 32, "slow: messages each room's sender keeps in flight")
	flag.DurationVar(&o.slowDuration, "slow-duration", 20*time.Second, "slow: measured time")
	flag.StringVar(&stormSizes, "storm-sizes", "1000,5000,10000", "presence storm: users joining, comma-separated")
	flag.DurationVar(&o.stormSpread, "storm-spread", 5*time.Second, "presence storm: the joins are spread over this time")
	flag.DurationVar(&o.stormTimeout, "storm-timeout", 30*time.Second, "presence storm: give up converging after this long")
	flag.IntVar(&o.stormNodeMax, "storm-node-max", 1000, "presence storm: the largest size Node.js runs (it sends every list to everyone)")
	flag.BoolVar(&o.stormDiff, "storm-diff", true, "presence storm: also run ours with clients asking for online_users_diff")
	flag.StringVar(&idleSizes, "idle-sizes", "10000,50000", "idle memory: websockets, comma-separated")
	flag.IntVar(&o.recRooms, "recovery-rooms", 50, "recovery: chat rooms")
	flag.IntVar(&o.recMembers, "recovery-members", 20, "recovery: members per room")
	flag.IntVar(&o.recMessages, "recovery-messages", 100, "recovery: messages each member misses")
	flag.DurationVar(&o.recTimeout, "recovery-timeout", 2*time.Minute, "recovery: give up recovering after this long")
	flag.IntVar(&o.floodMsgs, "flood-messages", 70000, "recovery flood: messages into one room")
	flag.IntVar(&o.floodMembers, "flood-members", 20, "recovery flood: members of the room, all reading")
	flag.DurationVar(&o.floodSettle, "flood-settle", 5*time.Second, "recovery flood: settle before each RSS reading")
	flag.BoolVar(&o.centrifugo, "centrifugo", false, "fan-out: add Centrifugo v"+centrifugoVersion+" as a reference (built with go install the first time: minutes)")
	flag.BoolVar(&o.smoke, "smoke", false, "run every scenario tiny (seconds each, one run, README untouched) to check the harness")
	flag.StringVar(&o.readme, "readme", "README.md", "README to rewrite between the bench markers")
	flag.BoolVar(&o.noReadme, "no-readme", false, "print the table only")
	flag.StringVar(&o.bin, "bin", "bin/auraos", "our server's binary (built if missing)")
	flag.StringVar(&o.node, "node", "node", "the Node.js executable")
	flag.StringVar(&o.jsonOut, "json-out", "", "also write every run's raw results to this file")
	flag.Parse()
	for _, s := range strings.Split(scenarios, ",") {
		if s = strings.TrimSpace(s); s != "" {
			o.scenarios = append(o.scenarios, s)
		}
	}
	var err error
	if o.stormSizes, err = parseSizes(stormSizes); err == nil {
		o.idleSizes, err = parseSizes(idleSizes)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	if o.smoke {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		o.makeSmoke(set)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[bench %s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// result is the part of the load generator's JSON the table uses.
type result struct {
	Scenario           string  `json:"scenario"`
	Clients            int     `json:"clients"`
	Errors             int64   `json:"errors"`
	DeliveredPerSec    float64 `json:"deliveredPerSec"`
	SentPerSec         float64 `json:"sentPerSec"`
	P50Ms              float64 `json:"p50Ms"`
	P99Ms              float64 `json:"p99Ms"`
	P999Ms             float64 `json:"p999Ms"`
	Reordered          int64   `json:"reordered"`
	ConvergeSeconds    float64 `json:"convergeSeconds"`
	AfterLastJoin      float64 `json:"convergeAfterLastJoinSeconds"`
	JoinSeconds        float64 `json:"joinSeconds"`
	Converged          int     `json:"converged"`
	TimedOut           bool    `json:"timedOut"`
	MinListSize        int64   `json:"minListSize"`
	BytesReceived      int64   `json:"bytesReceived"`
	OnlineUsersPackets int64   `json:"onlineUsersPackets"`
	PresenceDiff       bool    `json:"presenceDiff"`
	SlowMembers        int     `json:"slowMembers"`
	SlowDisconnected   int     `json:"slowDisconnected"`
	SlowMetric         float64 `json:"slowDisconnectsMetric"`
	Alive              int     `json:"alive"`
	PerConnKiB         float64 `json:"perConnKiB"`
	RSSBeforeKiB       int64   `json:"rssBeforeKiB"`
	RSSAfterKiB        int64   `json:"rssAfterKiB"`
	ServerRSSKiB       int64   `json:"serverRssKiB"`
	ServerHWMKiB       int64   `json:"serverHwmKiB"`
	ServerCPU          float64 `json:"serverCpuCores"`
	LoadgenCPU         float64 `json:"loadgenCpuCores"`
	// recovery (bench/jsload/recovery.js)
	Messages          int      `json:"messages"`
	Recovered         int      `json:"recovered"`
	NotReconnected    int      `json:"notReconnected"`
	NotRecovered      int      `json:"notRecovered"`
	Missing           int      `json:"missing"`
	Duplicated        int      `json:"duplicated"`
	OutOfOrder        int      `json:"outOfOrder"`
	ConnectErrors     []string `json:"connectErrors"`
	RestartSeconds    float64  `json:"restartSeconds"`
	RecoverSeconds    float64  `json:"recoverSeconds"`
	RecoverP50Seconds float64  `json:"recoverP50Seconds"`
	ServerCPUSeconds  float64  `json:"serverCpuSeconds"`
	FloodSeconds      float64  `json:"floodSeconds"`
	Short             int      `json:"short"`
	Dropped           int      `json:"dropped"`
	Refused           int      `json:"refused"`
	RSSFloodEndKiB    int64    `json:"rssFloodEndKiB"`
	RSSAfterGCKiB     int64    `json:"rssAfterGcKiB"`
}

// A server under test.
type server struct {
	name  string        // serverOurs, serverNode, …
	start startFunc     // starts it
	ready string        // path answering 200 when it serves
	grace time.Duration // how long a stop may take before the process is killed
}

// startFunc starts a server on port with its data in dir; extra are more
// flags for this run (a variant's ourFlags; only ours gets any).
type startFunc func(ctx context.Context, port int, dir string, extra []string) (*procHandle, error)

type runRecord struct {
	Scenario string  `json:"scenario"`
	Server   string  `json:"server"`
	Run      int     `json:"run"`
	Result   *result `json:"result,omitempty"`
	Error    string  `json:"error,omitempty"`
}

func run(ctx context.Context, o options) error {
	if b, err := os.ReadFile("go.mod"); err != nil || !bytes.Contains(b, []byte("module github.com/auraos/realtime")) {
		return errors.New("run me from the module root (make bench)")
	}
	if err := fdlimit.Raise(largestRunnableIdle(o)); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "auraos-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	needServers := slices.ContainsFunc(o.scenarios, func(s string) bool { return s != "store" })
	loadgen := filepath.Join(tmp, "loadgen")
	if needServers {
		if _, err := os.Stat(o.bin); err != nil {
			logf("building %s", o.bin)
			if err := command(ctx, "", nil, "go", "build", "-o", o.bin, "./cmd/auraos"); err != nil {
				return err
			}
		}
		logf("building the load generator")
		if err := command(ctx, "", nil, "go", "build", "-o", loadgen, "./bench/loadgen"); err != nil {
			return err
		}
		for _, dir := range []string{"bench/node-server", "bench/jsload"} {
			if err := npmCI(ctx, dir); err != nil {
				return err
			}
		}
	}
	bin, err := filepath.Abs(o.bin)
	if err != nil {
		return err
	}
	machine := describeMachine(ctx, o, bin)
	logf("%s", machine.oneLine())
	var centrifugoBin string
	if o.centrifugo && slices.Contains(o.scenarios, "fanout") {
		if centrifugoBin, err = buildCentrifugo(ctx); err != nil {
			return err
		}
	}
	servers := newServers(o, bin, centrifugoBin)
	t := tools{loadgen: loadgen, node: o.node}

	var records []runRecord
	results := map[string]map[string][]*result{} // variant key → server → runs
	skipped := map[string]string{}               // variant key → why it did not run
	began := time.Now()
	for _, sc := range o.scenarios {
		if sc == "store" || sc == "rebuild" {
			continue
		}
		vs, ok := variants(sc, o, t)
		if !ok {
			return fmt.Errorf("unknown scenario %q (%s)", sc, strings.Join(scenarioNames, ", "))
		}
		order := []string{} // every server of the scenario's variants, once
		for _, v := range vs {
			results[v.key] = map[string][]*result{}
			if v.skip != "" {
				skipped[v.key] = v.skip
				logf("%s: %s", v.key, v.skip)
			}
			for _, name := range v.servers {
				if !slices.Contains(order, name) {
					order = append(order, name)
				}
			}
		}
		for i := 1; i <= o.runs; i++ {
			for _, name := range order {
				for _, v := range vs {
					if v.skip != "" || !slices.Contains(v.servers, name) {
						continue
					}
					if ctx.Err() != nil {
						return ctx.Err()
					}
					srv := servers[name]
					logf("%s run %d/%d: %s", v.key, i, o.runs, name)
					res, err := runOne(ctx, tmp, srv, v)
					rec := runRecord{Scenario: v.key, Server: name, Run: i, Result: res}
					if err != nil {
						if ctx.Err() != nil {
							return ctx.Err()
						}
						logf("%s run %d (%s) failed: %v", v.key, i, name, err)
						rec.Error = err.Error()
					} else {
						results[v.key][name] = append(results[v.key][name], res)
					}
					records = append(records, rec)
				}
			}
		}
	}
	var store *storeFigures
	if slices.Contains(o.scenarios, "store") {
		logf("store and projection benchmarks")
		if store, err = runStoreBenchmarks(ctx, o.storeSmall); err != nil {
			logf("store benchmarks failed: %v", err)
		}
	}
	var rebuilds []rebuildFigure
	if slices.Contains(o.scenarios, "rebuild") {
		logf("whole-process rebuild benchmarks")
		sizes := rebuildSizes
		if o.smoke {
			sizes = []int{2000}
		}
		if rebuilds, err = runRebuildBenchmarks(ctx, o.bin, sizes); err != nil {
			logf("rebuild benchmarks failed: %v", err)
		}
	}
	machine.loadEnd = loadAvg()
	machine.took = time.Since(began)

	table := buildTable(o, results, skipped, store, rebuilds)
	section := renderSection(o, machine, table)
	fmt.Println(section)
	if o.jsonOut != "" {
		b, _ := json.MarshalIndent(records, "", "  ")
		if err := os.WriteFile(o.jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	if !o.noReadme && !o.smoke {
		if err := rewriteReadme(o.readme, section); err != nil {
			return err
		}
		logf("rewrote the Performance section of %s", o.readme)
	}
	return nil
}

// runOne starts a fresh server, runs one load generator (v.argv) against it
// and stops it. Our server gets the variant's extra flags, and with v.debug
// a --debug-addr listener whose URL the load generator gets as --debug-url.
// With v.restart the load generator may print the line `restart`: the
// server's process group is then killed (SIGKILL, no clean stop) and the
// server started again on the same data directory and port; once it is
// ready the generator reads one line on its stdin,
// {"pid":PID,"readySeconds":S} (the new process, and the time from the kill
// until ready).
func runOne(ctx context.Context, tmp string, srv server, v variant) (*result, error) {
	dir, err := os.MkdirTemp(tmp, srv.name+"-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	var extra []string
	var debugURL string
	if srv.name == serverOurs {
		extra = slices.Clone(v.ourFlags)
		if v.debug {
			dport, err := freePort()
			if err != nil {
				return nil, err
			}
			extra = append(extra, "--debug-addr", fmt.Sprintf("127.0.0.1:%d", dport))
			debugURL = fmt.Sprintf("http://127.0.0.1:%d", dport)
		}
	}
	p, err := srv.start(ctx, port, dir, extra)
	if err != nil {
		return nil, err
	}
	defer func() { p.stop(srv.grace) }() // p: the restarted server, if it was
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := waitReady(ctx, base+srv.ready, p.exited, 60*time.Second); err != nil {
		return nil, fmt.Errorf("%s did not start: %w\n%s", srv.name, err, tail(filepath.Join(dir, "server.log"), 20))
	}
	time.Sleep(500 * time.Millisecond) // start-up work settles before the baseline RSS
	lctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	full := v.argv(base, p.cmd.Process.Pid, srv.name)
	if debugURL != "" {
		full = append(full, "--debug-url", debugURL)
	}
	lg := exec.CommandContext(lctx, full[0], full[1:]...)
	var out bytes.Buffer
	lg.Stderr = os.Stderr
	if v.restart {
		err = runRestarting(lg, &out, func() (string, error) {
			began := time.Now()
			logf("restarting %s as the load generator asked: kill -9, then start on the same data directory and port", srv.name)
			p.kill()
			if f, err := os.OpenFile(filepath.Join(dir, "server.log"), os.O_WRONLY|os.O_APPEND, 0); err == nil {
				fmt.Fprintf(f, "--- bench: killed (SIGKILL) and started again ---\n")
				f.Close()
			}
			np, err := srv.start(ctx, port, dir, extra)
			if err != nil {
				return "", err
			}
			p = np
			if err := waitReady(lctx, base+srv.ready, p.exited, 60*time.Second); err != nil {
				return "", fmt.Errorf("%s did not start again: %w\n%s", srv.name, err, tail(filepath.Join(dir, "server.log"), 20))
			}
			took := time.Since(began)
			logf("%s ready again after %s", srv.name, took.Round(time.Millisecond))
			b, err := json.Marshal(map[string]any{"pid": p.cmd.Process.Pid, "readySeconds": took.Seconds()})
			return string(b), err
		})
	} else {
		lg.Stdout = &out
		err = lg.Run()
	}
	if err != nil {
		return nil, fmt.Errorf("load generator: %w\n%s", err, tail(filepath.Join(dir, "server.log"), 20))
	}
	var res result
	if err := json.Unmarshal(lastLine(out.Bytes()), &res); err != nil {
		return nil, fmt.Errorf("load generator output: %w: %q", err, out.String())
	}
	if l := tail(filepath.Join(dir, "server.log"), 5); strings.TrimSpace(l) != "" && srv.name == serverOurs {
		logf("server log (last lines):\n%s", l)
	}
	return &res, nil
}

// runRestarting runs a load generator that may ask for restarts: its
// stdout goes to out line by line, and each line `restart` calls restart,
// whose answer (one line) goes to its stdin. A failed restart kills the
// generator and is the error.
func runRestarting(lg *exec.Cmd, out *bytes.Buffer, restart func() (string, error)) error {
	stdin, err := lg.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := lg.StdoutPipe()
	if err != nil {
		return err
	}
	if err := lg.Start(); err != nil {
		return err
	}
	var restartErr error
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		out.WriteString(line + "\n")
		if strings.TrimSpace(line) != "restart" || restartErr != nil {
			continue
		}
		answer, err := restart()
		if err != nil {
			restartErr = err
			_ = lg.Process.Kill()
			continue // read on to the end: Wait needs the pipe drained
		}
		if _, err := io.WriteString(stdin, answer+"\n"); err != nil {
			restartErr = fmt.Errorf("answering the restart: %w", err)
		}
	}
	_, _ = io.Copy(io.Discard, stdout) // a line past the scanner's limit
	stdin.Close()
	err = lg.Wait()
	if restartErr != nil {
		return restartErr
	}
	return err
}

// procHandle is a started server, the leader of its own process group
// (its workers, if it forks any, are in the group too).
type procHandle struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when the leader has exited
}

// startProcess starts a server with its output appended to dir/server.log
// (a restarted server's after the first run's). It inherits the raised
// open-files limit.
func startProcess(dir, name string, args ...string) (*procHandle, error) {
	f, err := os.OpenFile(filepath.Join(dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	f.Close() // the child holds its own descriptor
	p := &procHandle{cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	return p, nil
}

// stop asks the server's process group to stop, kills it after a grace
// period, and kills what is left of the group (workers that outlived their
// primary) either way.
func (p *procHandle) stop(grace time.Duration) {
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-p.exited
}

// kill kills the server's process group at once (SIGKILL: no clean stop,
// as a crash) and waits for the leader to exit.
func (p *procHandle) kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

func waitReady(ctx context.Context, url string, exited <-chan struct{}, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	client := &http.Client{Timeout: 2 * time.Second}
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := client.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return errors.New("the server exited")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready after %v", url, limit)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func command(ctx context.Context, dir string, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return nil
}

func lastLine(b []byte) []byte {
	b = bytes.TrimSpace(b)
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		return b[i+1:]
	}
	return b
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return tailString(string(b), n)
}

// The store and projection benchmarks.

type storeFigures struct {
	append16, readAll, rebuild float64 // events/s
	pgAppend16                 float64 // events/s; 0 when PostgreSQL is not configured
	rebuildEvents              int     // the rebuild's log
}

// Other metrics a benchmark reports (CPU-µs/event, say) may come between.
var eventsPerSec = regexp.MustCompile(`^(Benchmark\S+)\s+\d+\s+\d+(?:\.\d+)? ns/op.*?\s(\d+(?:\.\d+)?) events/s`)

// runStoreBenchmarks runs the store and projection benchmarks; small runs
// each once on a small log (-smoke).
func runStoreBenchmarks(ctx context.Context, small bool) (*storeFigures, error) {
	benchtime, events := "2s", 200_000
	if small {
		benchtime, events = "1x", 2000
	}
	f := &storeFigures{rebuildEvents: events}
	parse := func(out string) map[string]float64 {
		m := map[string]float64{}
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			if g := eventsPerSec.FindStringSubmatch(strings.TrimSpace(sc.Text())); g != nil {
				v, _ := strconv.ParseFloat(g[2], 64)
				m[strings.TrimSuffix(g[1], "-"+strconv.Itoa(runtime.NumCPU()))] = v
			}
		}
		return m
	}
	gotest := func(env []string, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "go", append([]string{"test", "-run", "^$"}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		var out bytes.Buffer
		cmd.Stdout = io.MultiWriter(&out, os.Stderr)
		cmd.Stderr = os.Stderr
		err := cmd.Run()
		return out.String(), err
	}
	out, err := gotest(nil, "-bench", "SQLite/append/writers=16|SQLite/readall", "-benchtime", benchtime, "./eventstore/sqlstore")
	if err != nil {
		return f, fmt.Errorf("store benchmarks: %w", err)
	}
	m := parse(out)
	f.append16 = m["BenchmarkSQLite/append/writers=16"]
	f.readAll = m["BenchmarkSQLite/readall"]
	if os.Getenv("AURAOS_TEST_POSTGRES_URL") != "" {
		out, err := gotest(nil, "-bench", "Postgres/append/writers=16", "-benchtime", benchtime, "./eventstore/sqlstore")
		if err != nil {
			return f, fmt.Errorf("PostgreSQL store benchmark: %w", err)
		}
		f.pgAppend16 = parse(out)["BenchmarkPostgres/append/writers=16"]
	} else {
		logf("append on PostgreSQL skipped: set AURAOS_TEST_POSTGRES_URL")
	}
	out, err = gotest([]string{"AURAOS_BENCH_EVENTS=" + strconv.Itoa(events)}, "-bench", "^BenchmarkRebuildChatHistory$/^sqlite$", "-benchtime", "1x", "./projections")
	if err != nil {
		return f, fmt.Errorf("rebuild benchmark: %w", err)
	}
	f.rebuild = parse(out)["BenchmarkRebuildChatHistory/sqlite"]
	return f, nil
}

// rebuildFigure is one whole-process `auraos projections rebuild --all`.
type rebuildFigure struct {
	store  string // "SQLite" or "PostgreSQL"
	events int
	perSec float64 // log events per second of the whole process
}

// rebuildSizes are the logs the rebuild benchmark fills.
var rebuildSizes = []int{100_000, 1_000_000}

// runRebuildBenchmarks fills a SQLite log (and a PostgreSQL one, in a fresh
// schema, when AURAOS_TEST_POSTGRES_URL is set) with bench/filllog for each
// size and times the whole `bin/auraos projections rebuild --all` process:
// start, one read of the log, every projection's swap.
func runRebuildBenchmarks(ctx context.Context, bin string, sizes []int) ([]rebuildFigure, error) {
	dir, err := os.MkdirTemp("", "auraos-rebuild-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	fill := filepath.Join(dir, "filllog")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", fill, "./bench/filllog").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build bench/filllog: %v: %s", err, out)
	}
	var figures []rebuildFigure
	for _, n := range sizes {
		data := filepath.Join(dir, fmt.Sprintf("sqlite-%d", n))
		f, err := timeRebuild(ctx, fill, bin, n, []string{"--data-dir", data}, []string{"-data-dir", data})
		if err != nil {
			return figures, err
		}
		figures = append(figures, rebuildFigure{store: "SQLite", events: n, perSec: f})
		os.RemoveAll(data)
	}
	base := os.Getenv("AURAOS_TEST_POSTGRES_URL")
	if base == "" {
		logf("rebuild on PostgreSQL skipped: set AURAOS_TEST_POSTGRES_URL")
		return figures, nil
	}
	for _, n := range sizes {
		url, drop, err := freshPostgresSchema(ctx, base, fmt.Sprintf("bench_rebuild_%d", n))
		if err != nil {
			return figures, err
		}
		f, err := timeRebuild(ctx, fill, bin, n, []string{"--event-store", url, "--read-db", url}, []string{"-event-store", url})
		drop()
		if err != nil {
			return figures, err
		}
		figures = append(figures, rebuildFigure{store: "PostgreSQL", events: n, perSec: f})
	}
	return figures, nil
}

// timeRebuild fills a log of n events and returns the rebuild's events per
// second, measured around the whole process.
func timeRebuild(ctx context.Context, fill, bin string, n int, storeFlags, fillFlags []string) (float64, error) {
	logf("rebuild: filling %d events (%s)", n, strings.Join(fillFlags, " "))
	if out, err := exec.CommandContext(ctx, fill, append(fillFlags, "-events", strconv.Itoa(n))...).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("filllog: %v: %s", err, out)
	}
	started := time.Now()
	out, err := exec.CommandContext(ctx, bin, append([]string{"projections", "rebuild", "--all"}, storeFlags...)...).CombinedOutput()
	took := time.Since(started)
	if err != nil {
		return 0, fmt.Errorf("rebuild: %v: %s", err, out)
	}
	logf("rebuild of %d events: %s\n%s", n, took.Round(time.Millisecond), out)
	return float64(n) / took.Seconds(), nil
}

// freshPostgresSchema creates an empty schema on the server of base and
// returns base pointing at it, and a function that drops it.
func freshPostgresSchema(ctx context.Context, base, name string) (string, func(), error) {
	db, err := schema.OpenPostgres(ctx, base, 1)
	if err != nil {
		return "", nil, err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "DROP SCHEMA IF EXISTS "+name+" CASCADE; CREATE SCHEMA "+name); err != nil {
		return "", nil, err
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	drop := func() {
		if db, err := schema.OpenPostgres(context.Background(), base, 1); err == nil {
			_, _ = db.ExecContext(context.Background(), "DROP SCHEMA "+name+" CASCADE")
			db.Close()
		}
	}
	return u.String(), drop, nil
}
