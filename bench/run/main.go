// Command run is `make bench`: it measures our server (bin/auraos) against
// the Node.js socket.io baseline (bench/node-server) with the load generator
// (bench/loadgen) on this machine, runs the store and projection
// benchmarks, prints a table and rewrites the Performance section of
// README.md between <!-- bench:start --> and <!-- bench:end -->.
//
// Each scenario runs -runs times per server, alternating (ours, Node.js,
// ours, Node.js, …), each run against a freshly started server; the table
// shows each server's median run and the spread (min–max) of the runs.
//
// Run it from the module root: go run ./bench/run [-runs 3] [-scenarios fanout,storm,idle,store,rebuild] [-no-readme]
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
	stormTimeout time.Duration
	idle         int
	readme       string
	noReadme     bool
	bin          string
	node         string
	jsonOut      string
}

func main() {
	var o options
	var scenarios string
	flag.IntVar(&o.runs, "runs", 3, "runs per server and scenario (alternating ours, Node.js)")
	flag.StringVar(&scenarios, "scenarios", "fanout,storm,idle,store,rebuild", "scenarios to run, comma-separated")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "fan-out: measured time")
	flag.DurationVar(&o.warmup, "warmup", 3*time.Second, "fan-out: warm-up")
	flag.DurationVar(&o.stormTimeout, "storm-timeout", 30*time.Second, "presence storm: give up converging after this long")
	flag.IntVar(&o.idle, "idle", 10000, "idle memory: connections")
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
	Alive              int     `json:"alive"`
	PerConnKiB         float64 `json:"perConnKiB"`
	RSSBeforeKiB       int64   `json:"rssBeforeKiB"`
	RSSAfterKiB        int64   `json:"rssAfterKiB"`
	ServerRSSKiB       int64   `json:"serverRssKiB"`
	ServerHWMKiB       int64   `json:"serverHwmKiB"`
	ServerCPU          float64 `json:"serverCpuCores"`
	LoadgenCPU         float64 `json:"loadgenCpuCores"`
}

// A server under test.
type server struct {
	name  string // "ours" or "node"
	start func(ctx context.Context, port int, dir string) (*exec.Cmd, error)
	ready string        // path answering 200 when it serves
	grace time.Duration // how long a stop may take before the process is killed
}

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
	if err := fdlimit.Raise(uint64(o.idle) + 1024); err != nil {
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
		if _, err := os.Stat("bench/node-server/node_modules/socket.io"); err != nil {
			logf("installing the Node.js server's dependencies (npm ci)")
			if err := command(ctx, "", nil, "npm", "ci", "--prefix", "bench/node-server", "--no-audit", "--no-fund"); err != nil {
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
	servers := []server{
		{name: "ours", ready: "/readyz", grace: 10 * time.Second, start: func(ctx context.Context, port int, dir string) (*exec.Cmd, error) {
			return startProcess(dir, bin, "serve", "--addr", fmt.Sprintf("127.0.0.1:%d", port), "--data-dir", dir,
				"--node-id", "bench", "--log-level", "warn", "--rate-message", "100000", "--burst-message", "100000")
		}},
		// Node.js keeps nothing: after a storm it may still be flushing
		// gigabytes to closed sockets, so it gets a short grace.
		{name: "node", ready: "/healthz", grace: 2 * time.Second, start: func(ctx context.Context, port int, dir string) (*exec.Cmd, error) {
			return startProcess(dir, o.node, "bench/node-server/server.js", strconv.Itoa(port))
		}},
	}

	var records []runRecord
	results := map[string]map[string][]*result{} // scenario → server → runs
	began := time.Now()
	for _, sc := range o.scenarios {
		if sc == "store" || sc == "rebuild" {
			continue
		}
		args, ok := scenarioArgs(sc, o)
		if !ok {
			return fmt.Errorf("unknown scenario %q (fanout, storm, idle, store, rebuild)", sc)
		}
		results[sc] = map[string][]*result{}
		for i := 1; i <= o.runs; i++ {
			for _, srv := range servers {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				logf("%s run %d/%d: %s", sc, i, o.runs, srv.name)
				res, err := runOne(ctx, tmp, loadgen, srv, args)
				rec := runRecord{Scenario: sc, Server: srv.name, Run: i, Result: res}
				if err != nil {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					logf("%s run %d (%s) failed: %v", sc, i, srv.name, err)
					rec.Error = err.Error()
				} else {
					results[sc][srv.name] = append(results[sc][srv.name], res)
				}
				records = append(records, rec)
			}
		}
	}
	var store *storeFigures
	if slices.Contains(o.scenarios, "store") {
		logf("store and projection benchmarks")
		if store, err = runStoreBenchmarks(ctx); err != nil {
			logf("store benchmarks failed: %v", err)
		}
	}
	var rebuilds []rebuildFigure
	if slices.Contains(o.scenarios, "rebuild") {
		logf("whole-process rebuild benchmarks")
		if rebuilds, err = runRebuildBenchmarks(ctx, o.bin); err != nil {
			logf("rebuild benchmarks failed: %v", err)
		}
	}
	machine.loadEnd = loadAvg()
	machine.took = time.Since(began)

	table := buildTable(o, results, store, rebuilds)
	section := renderSection(o, machine, table)
	fmt.Println(section)
	if o.jsonOut != "" {
		b, _ := json.MarshalIndent(records, "", "  ")
		if err := os.WriteFile(o.jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	if !o.noReadme {
		if err := rewriteReadme(o.readme, section); err != nil {
			return err
		}
		logf("rewrote the Performance section of %s", o.readme)
	}
	return nil
}

func scenarioArgs(sc string, o options) ([]string, bool) {
	switch sc {
	case "fanout":
		return []string{"-scenario", "fanout", "-rooms", "50", "-members", "20", "-inflight", "4",
			"-warmup", o.warmup.String(), "-duration", o.duration.String()}, true
	case "storm":
		return []string{"-scenario", "storm", "-clients", "1000", "-spread", "5s", "-timeout", o.stormTimeout.String()}, true
	case "idle":
		return []string{"-scenario", "idle", "-idle", strconv.Itoa(o.idle), "-settle", "3s"}, true
	}
	return nil, false
}

// runOne starts a fresh server, runs one load-generator scenario against it
// and stops it.
func runOne(ctx context.Context, tmp, loadgen string, srv server, args []string) (*result, error) {
	dir, err := os.MkdirTemp(tmp, srv.name+"-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd, err := srv.start(ctx, port, dir)
	if err != nil {
		return nil, err
	}
	exited := make(chan struct{}) // closed when the server has exited
	go func() { _ = cmd.Wait(); close(exited) }()
	defer stopProcess(cmd, exited, srv.grace)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := waitReady(ctx, base+srv.ready, exited, 60*time.Second); err != nil {
		return nil, fmt.Errorf("%s did not start: %w\n%s", srv.name, err, tail(filepath.Join(dir, "server.log"), 20))
	}
	time.Sleep(500 * time.Millisecond) // start-up work settles before the baseline RSS
	lctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	full := append([]string{"-url", base, "-server-pid", strconv.Itoa(cmd.Process.Pid), "-json"}, args...)
	lg := exec.CommandContext(lctx, loadgen, full...)
	var out bytes.Buffer
	lg.Stdout = &out
	lg.Stderr = os.Stderr
	if err := lg.Run(); err != nil {
		return nil, fmt.Errorf("load generator: %w\n%s", err, tail(filepath.Join(dir, "server.log"), 20))
	}
	var res result
	if err := json.Unmarshal(lastLine(out.Bytes()), &res); err != nil {
		return nil, fmt.Errorf("load generator output: %w: %q", err, out.String())
	}
	if l := tail(filepath.Join(dir, "server.log"), 5); strings.TrimSpace(l) != "" && srv.name == "ours" {
		logf("server log (last lines):\n%s", l)
	}
	return &res, nil
}

// startProcess starts a server with its output in dir/server.log. It
// inherits the raised open-files limit.
func startProcess(dir, name string, args ...string) (*exec.Cmd, error) {
	f, err := os.Create(filepath.Join(dir, "server.log"))
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
	return cmd, nil
}

// stopProcess asks a server to stop, and kills it after a grace period.
func stopProcess(cmd *exec.Cmd, exited <-chan struct{}, grace time.Duration) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		return
	case <-time.After(grace):
	}
	_ = cmd.Process.Kill()
	<-exited
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
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// The store and projection benchmarks.

type storeFigures struct {
	append16, readAll, rebuild float64 // events/s
}

var eventsPerSec = regexp.MustCompile(`^(Benchmark\S+)\s+\d+\s+\d+(?:\.\d+)? ns/op\s+(\d+(?:\.\d+)?) events/s`)

func runStoreBenchmarks(ctx context.Context) (*storeFigures, error) {
	f := &storeFigures{}
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
	out, err := gotest(nil, "-bench", "SQLite/append/writers=16|SQLite/readall", "-benchtime", "2s", "./eventstore/sqlstore")
	if err != nil {
		return f, fmt.Errorf("store benchmarks: %w", err)
	}
	m := parse(out)
	f.append16 = m["BenchmarkSQLite/append/writers=16"]
	f.readAll = m["BenchmarkSQLite/readall"]
	out, err = gotest([]string{"AURAOS_BENCH_EVENTS=200000"}, "-bench", "RebuildChatHistory/sqlite", "-benchtime", "1x", "./projections")
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
func runRebuildBenchmarks(ctx context.Context, bin string) ([]rebuildFigure, error) {
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
	for _, n := range rebuildSizes {
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
	for _, n := range rebuildSizes {
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
