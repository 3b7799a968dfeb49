package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

const (
	markStart = "<!-- bench:start -->"
	markEnd   = "<!-- bench:end -->"
)

type machine struct {
	cpus      int
	model     string
	memory    string
	kernel    string
	goVersion string
	node      string
	socketIO  string
	ours      string // bin/auraos version
	date      string
	loadStart string
	loadEnd   string
	took      time.Duration
}

func describeMachine(ctx context.Context, o options, bin string) *machine {
	m := &machine{cpus: runtime.NumCPU(), goVersion: runtime.Version(), date: time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		loadStart: loadAvg(), model: "unknown", memory: "unknown", kernel: "unknown", node: "unknown", socketIO: "unknown", ours: "unknown"}
	if out, err := exec.CommandContext(ctx, bin, "version").Output(); err == nil {
		m.ours, _, _ = strings.Cut(strings.TrimSpace(string(out)), "\n")
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.model = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kib int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kib); err == nil {
			m.memory = fmt.Sprintf("%.0f GiB", float64(kib)/(1<<20))
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	if out, err := exec.CommandContext(ctx, o.node, "--version").Output(); err == nil {
		m.node = strings.TrimSpace(string(out))
	}
	if b, err := os.ReadFile(filepath.Join("bench", "node-server", "node_modules", "socket.io", "package.json")); err == nil {
		var p struct {
			Version string `json:"version"`
		}
		if json.Unmarshal(b, &p) == nil {
			m.socketIO = p.Version
		}
	}
	return m
}

func (m *machine) oneLine() string {
	return fmt.Sprintf("%d × %s, %s RAM, Linux %s, %s, Node.js %s, socket.io %s, %s; load average %s",
		m.cpus, m.model, m.memory, m.kernel, m.goVersion, m.node, m.socketIO, m.ours, m.loadStart)
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// A table row.
type row struct {
	scenario, metric, ours, node, ratio, target, met string
}

// stat is one metric over a server's runs: the median and the spread.
// Runs whose value is only a lower bound (a storm that did not converge)
// count as +Inf.
type stat struct {
	n             int
	med, min, max float64
	inf           int // runs with +Inf
}

func summarize(rs []*result, val func(*result) float64) stat {
	var v []float64
	st := stat{}
	for _, r := range rs {
		x := val(r)
		if math.IsInf(x, 1) {
			st.inf++
		}
		v = append(v, x)
	}
	st.n = len(v)
	if st.n == 0 {
		return st
	}
	slices.Sort(v)
	st.min, st.max = v[0], v[len(v)-1]
	if len(v)%2 == 1 {
		st.med = v[len(v)/2]
	} else {
		a, b := v[len(v)/2-1], v[len(v)/2]
		if math.IsInf(b, 1) {
			st.med = b
		} else {
			st.med = (a + b) / 2
		}
	}
	return st
}

// format prints the median with the spread of the runs.
func (s stat) format(f func(float64) string, inf string) string {
	if s.n == 0 {
		return "failed"
	}
	one := func(x float64) string {
		if math.IsInf(x, 1) {
			return inf
		}
		return f(x)
	}
	if s.n == 1 {
		return one(s.med)
	}
	return fmt.Sprintf("%s [%s–%s]", one(s.med), one(s.min), one(s.max))
}

func thousands(x float64) string {
	s := fmt.Sprintf("%.0f", x)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func fixed(prec int) func(float64) string {
	return func(x float64) string { return fmt.Sprintf("%.*f", prec, x) }
}

func ratio(ours, node stat) string {
	if ours.n == 0 || node.n == 0 || math.IsInf(ours.med, 1) || math.IsInf(node.med, 1) || node.med == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", ours.med/node.med)
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

func buildTable(o options, results map[string]map[string][]*result, store *storeFigures, rebuilds []rebuildFigure) []row {
	var rows []row
	if res, ok := results["fanout"]; ok {
		ours, node := res["ours"], res["node"]
		get := func(f func(*result) float64) (stat, stat) { return summarize(ours, f), summarize(node, f) }
		o1, n1 := get(func(r *result) float64 { return r.DeliveredPerSec })
		met := "—"
		if o1.n > 0 && n1.n > 0 {
			met = yesNo(o1.med >= 1.5*n1.med)
		}
		rows = append(rows, row{"chat fan-out", "delivered messages/s", o1.format(thousands, ""), n1.format(thousands, ""), ratio(o1, n1), "≥ 1.5× Node.js", met})
		o2, n2 := get(func(r *result) float64 { return r.P50Ms })
		rows = append(rows, row{"chat fan-out", "latency p50 (ms)", o2.format(fixed(1), ""), n2.format(fixed(1), ""), ratio(o2, n2), "", ""})
		o3, n3 := get(func(r *result) float64 { return r.P99Ms })
		met = "—"
		if o3.n > 0 && n3.n > 0 {
			met = yesNo(o3.med <= n3.med)
		}
		rows = append(rows, row{"chat fan-out", "latency p99 (ms)", o3.format(fixed(1), ""), n3.format(fixed(1), ""), ratio(o3, n3), "≤ Node.js", met})
		o4, n4 := get(func(r *result) float64 { return r.P999Ms })
		rows = append(rows, row{"chat fan-out", "latency p999 (ms)", o4.format(fixed(1), ""), n4.format(fixed(1), ""), ratio(o4, n4), "", ""})
		o5, n5 := get(func(r *result) float64 { return r.ServerCPU })
		rows = append(rows, row{"chat fan-out", "server CPU (cores busy)", o5.format(fixed(2), ""), n5.format(fixed(2), ""), ratio(o5, n5), "", ""})
		o6, n6 := get(func(r *result) float64 { return float64(r.ServerRSSKiB) / 1024 })
		rows = append(rows, row{"chat fan-out", "server RSS at the end (MiB)", o6.format(fixed(0), ""), n6.format(fixed(0), ""), ratio(o6, n6), "", ""})
	}
	if res, ok := results["storm"]; ok {
		ours, node := res["ours"], res["node"]
		conv := func(r *result) float64 {
			if r.TimedOut {
				return math.Inf(1)
			}
			return r.ConvergeSeconds
		}
		never := fmt.Sprintf("> %.0f", o.stormTimeout.Seconds())
		o1, n1 := summarize(ours, conv), summarize(node, conv)
		r := row{"presence storm", "time from the first join until every client has all 1,000 (s)", o1.format(fixed(2), never), n1.format(fixed(2), never), ratio(o1, n1), "", ""}
		if math.IsInf(n1.med, 1) && o1.n > 0 && !math.IsInf(o1.med, 1) {
			r.ratio = fmt.Sprintf("< %.2f×", o1.med/o.stormTimeout.Seconds())
		}
		r.ours += stormProgress(ours)
		r.node += stormProgress(node)
		rows = append(rows, r)
		// The joins take 5 s, so the 2 s target is about what follows the
		// last join.
		after := func(r *result) float64 {
			if r.TimedOut {
				return math.Inf(1)
			}
			return r.AfterLastJoin
		}
		o5, n5 := summarize(ours, after), summarize(node, after)
		met := "—"
		if o5.n > 0 {
			met = yesNo(o5.med <= 2)
		}
		never = fmt.Sprintf("> %.0f", o.stormTimeout.Seconds()-5)
		r = row{"presence storm", "the same, from the last join (s)", o5.format(fixed(2), never), n5.format(fixed(2), never), ratio(o5, n5), "≤ 2 s", met}
		if math.IsInf(n5.med, 1) && o5.n > 0 && !math.IsInf(o5.med, 1) {
			r.ratio = fmt.Sprintf("< %.2f×", o5.med/(o.stormTimeout.Seconds()-5))
		}
		rows = append(rows, r)
		mb := func(r *result) float64 { return float64(r.BytesReceived) / 1e6 }
		o2, n2 := summarize(ours, mb), summarize(node, mb)
		rows = append(rows, row{"presence storm", "MB sent to the clients (until converged or given up)", o2.format(thousands, ""), n2.format(thousands, ""), ratio(o2, n2), "", ""})
		pk := func(r *result) float64 { return float64(r.OnlineUsersPackets) }
		o3, n3 := summarize(ours, pk), summarize(node, pk)
		rows = append(rows, row{"presence storm", "online_users packets received", o3.format(thousands, ""), n3.format(thousands, ""), ratio(o3, n3), "", ""})
		hwm := func(r *result) float64 { return float64(r.ServerHWMKiB) / 1024 }
		o4, n4 := summarize(ours, hwm), summarize(node, hwm)
		rows = append(rows, row{"presence storm", "server peak RSS (MiB)", o4.format(fixed(0), ""), n4.format(fixed(0), ""), ratio(o4, n4), "", ""})
	}
	if res, ok := results["idle"]; ok {
		ours, node := res["ours"], res["node"]
		per := func(r *result) float64 { return r.PerConnKiB }
		o1, n1 := summarize(ours, per), summarize(node, per)
		met := "—"
		if o1.n > 0 {
			met = yesNo(o1.med <= 20)
		}
		rows = append(rows, row{"idle memory", fmt.Sprintf("server RSS per idle websocket, %s connections (KiB)", thousands(float64(o.idle))),
			o1.format(fixed(1), ""), n1.format(fixed(1), ""), ratio(o1, n1), "≤ 20 KiB", met})
		after := func(r *result) float64 { return float64(r.RSSAfterKiB) / 1024 }
		o2, n2 := summarize(ours, after), summarize(node, after)
		rows = append(rows, row{"idle memory", "server RSS with them connected (MiB)", o2.format(fixed(0), ""), n2.format(fixed(0), ""), ratio(o2, n2), "", ""})
	}
	if store != nil {
		f := func(x float64) string {
			if x == 0 {
				return "failed"
			}
			return thousands(x)
		}
		rows = append(rows,
			row{"event store", "append, SQLite, 16 writers (events/s)", f(store.append16), "—", "—", "", ""},
			row{"event store", "read the whole log, SQLite (events/s)", f(store.readAll), "—", "—", "", ""},
			row{"projections", "rebuild chat history, 200,000 events, SQLite (events/s)", f(store.rebuild), "—", "—", "", ""})
	}
	for _, r := range rebuilds {
		target := map[string]float64{"SQLite": 100_000, "PostgreSQL": 40_000}[r.store]
		rows = append(rows, row{"projections",
			fmt.Sprintf("`projections rebuild --all`, whole process, %s events, %s (log events/s)", thousands(float64(r.events)), r.store),
			thousands(r.perSec), "—", "—", "≥ " + thousands(target), yesNo(r.perSec >= target)})
	}
	return rows
}

// stormProgress says how far runs that gave up got.
func stormProgress(rs []*result) string {
	var out []string
	for _, r := range rs {
		if r.TimedOut {
			out = append(out, fmt.Sprintf("%d", r.MinListSize))
		}
	}
	if len(out) == 0 {
		return ""
	}
	return fmt.Sprintf(" (gave up in %d of %d runs; the smallest latest list then had %s of %d)", len(out), len(rs), strings.Join(out, ", "), rs[0].Clients)
}

func renderSection(o options, m *machine, rows []row) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Generated by `make bench` on %s in %s (`go run ./bench/run -runs %d`).\n\n", m.date, m.took.Round(time.Second), o.runs)
	fmt.Fprintf(&b, "Machine: %d CPUs (`nproc`), %s, %s RAM, Linux %s; %s; Node.js %s with socket.io %s; our server `%s` (`bin/auraos version`). ",
		m.cpus, m.model, m.memory, m.kernel, m.goVersion, m.node, m.socketIO, m.ours)
	fmt.Fprintf(&b, "Load average at the start %s, at the end %s (the load generator and both servers share these cores).\n\n", m.loadStart, m.loadEnd)
	b.WriteString("| scenario | metric | ours | Node.js | ratio (ours ÷ Node.js) | target | met |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- |\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", r.scenario, r.metric, r.ours, r.node, r.ratio, r.target, r.met)
	}
	b.WriteString("\nNotes:\n\n")
	notes := []string{
		fmt.Sprintf("Each scenario ran %d× per server, alternating ours and Node.js, each run against a freshly started server. A figure is the median of the runs (the mean of the middle two for an even count); the brackets give the spread, the lowest and highest run.", o.runs),
		"Ours: `bin/auraos serve` with embedded SQLite in a fresh temporary `--data-dir` (WAL, `synchronous=FULL`: every message is durably appended before it is pushed, and every join is stored), Connection State Recovery on (the server appends an offset argument to every event it emits and keeps the packets for recovery), `--rate-message 100000 --burst-message 100000`, `--log-level warn`.",
		fmt.Sprintf("Node.js: `bench/node-server/server.js`, the source document's events in memory on socket.io %s with its default settings: no connection state recovery, no perMessageDeflate, nothing stored; `online_users` goes to everyone after every join (ours coalesces changes over 50 ms).", m.socketIO),
		"Load generator: `bench/loadgen` (Go, its own Engine.IO 4 / Socket.IO 5 websocket client, one reading goroutine per connection) on the same machine; the CPU it uses is CPU the server does not get.",
		fmt.Sprintf("Chat fan-out: 50 rooms × 20 members = 1,000 websockets; one member per room sends, keeping 4 messages in flight (the next goes when one of its own `new_message` echoes arrives), without acks; every member, the sender included, records the delay from the send to its receipt. %v warm-up, then %v measured; delivered messages/s counts receipts in the window.", o.warmup, o.duration),
		fmt.Sprintf("Presence storm: 1,000 websockets connect, then send `join_user_room` evenly over 5 s; the time runs until every client's latest `online_users` lists all 1,000 users (entries counted by their `\"socketId\"` keys), from the first join and from the last (the joins alone take 5 s, so the 2 s target applies to the time after the last join); given up %v after the first join (shown as `>`). MB are websocket bytes the clients read from the first join on.", o.stormTimeout),
		fmt.Sprintf("Idle memory: the server's VmRSS before and 3 s after %s websockets completed the Socket.IO handshake, divided by the connections.", thousands(float64(o.idle))),
		"Event store and projections (ours only): `go test -run '^$' -bench 'SQLite/append/writers=16|SQLite/readall' -benchtime 2s ./eventstore/sqlstore` and `AURAOS_BENCH_EVENTS=200000 go test -run '^$' -bench RebuildChatHistory/sqlite -benchtime 1x ./projections`.",
	}
	for _, n := range notes {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	return strings.TrimRight(b.String(), "\n")
}

// rewriteReadme replaces what lies between the bench markers, adding a
// Performance section with the markers at the end if they are missing.
func rewriteReadme(path, section string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(b)
	i := strings.Index(s, markStart)
	j := strings.Index(s, markEnd)
	if i < 0 || j < i {
		s = strings.TrimRight(s, "\n") + "\n\n## Performance\n\n" + markStart + "\n" + markEnd + "\n"
		i = strings.Index(s, markStart)
		j = strings.Index(s, markEnd)
	}
	out := s[:i+len(markStart)] + "\n" + section + "\n" + s[j:]
	if bytes.Equal([]byte(out), b) {
		return nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(out), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
