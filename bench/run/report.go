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

// buildTable turns the runs into the table: each scenario's rows in the
// order of scenarioNames, ours against Node.js with the ratio and the
// issues' targets, then the reference servers.
func buildTable(o options, results map[string]map[string][]*result, skipped map[string]string, store *storeFigures, rebuilds []rebuildFigure) []row {
	var rows []row
	rows = append(rows, fanoutRows("chat fan-out, Go client", results["fanout"])...)
	rows = append(rows, fanoutRows("chat fan-out, socket.io-client", results["fanout-js"])...)
	for _, presence := range []string{"full", "diff"} {
		for _, n := range o.stormSizes {
			rows = append(rows, stormRows(o, presence, n, results[stormKey(presence, n)])...)
		}
	}
	rows = append(rows, slowRows(o, results[slowKey(false)], results[slowKey(true)])...)
	for _, n := range o.idleSizes {
		rows = append(rows, idleRows(n, results[idleKey(n)], skipped[idleKey(n)])...)
	}
	rows = append(rows, recoveryRows(o, results["recovery"])...)
	rows = append(rows, floodRows(o, results["recovery-flood"])...)
	if store != nil {
		f := func(x float64) string {
			if x == 0 {
				return "failed"
			}
			return thousands(x)
		}
		rows = append(rows,
			row{"event store", "append, SQLite, 16 writers (durable events/s)", f(store.append16), "—", "—", "≥ 20,000", yesNo(store.append16 >= 20_000)})
		if store.pgAppend16 > 0 {
			rows = append(rows, row{"event store", "append, PostgreSQL, 16 writers (durable events/s)", f(store.pgAppend16), "—", "—", "≥ 10,000", yesNo(store.pgAppend16 >= 10_000)})
		}
		rows = append(rows,
			row{"event store", "read the whole log, SQLite (events/s)", f(store.readAll), "—", "—", "", ""},
			row{"projections", "rebuild chat history, " + thousands(float64(store.rebuildEvents)) + " events, SQLite (events/s)", f(store.rebuild), "—", "—", "", ""})
	}
	for _, r := range rebuilds {
		target := map[string]float64{"SQLite": 100_000, "PostgreSQL": 40_000}[r.store]
		rows = append(rows, row{"projections",
			fmt.Sprintf("`projections rebuild --all`, whole process, %s events, %s (log events/s)", thousands(float64(r.events)), r.store),
			thousands(r.perSec), "—", "—", "≥ " + thousands(target), yesNo(r.perSec >= target)})
	}
	return rows
}

// A metric is one figure of a run, how to print it, and the target ours
// is held to against the other server (met nil: no target).
type metric struct {
	name   string
	val    func(*result) float64
	format func(float64) string
	target string
	met    func(ours, other stat) bool
}

// compare is the row of one metric, ours against other.
func compare(scenario string, m metric, ours, other []*result) row {
	a, b := summarize(ours, m.val), summarize(other, m.val)
	r := row{scenario, m.name, a.format(m.format, ""), b.format(m.format, ""), ratio(a, b), m.target, ""}
	if m.met != nil {
		r.met = "—"
		if a.n > 0 && b.n > 0 {
			r.met = yesNo(m.met(a, b))
		}
	}
	return r
}

func atLeast(k float64) func(ours, other stat) bool {
	return func(ours, other stat) bool { return ours.med >= k*other.med }
}

var (
	delivered = metric{"delivered messages/s", func(r *result) float64 { return r.DeliveredPerSec }, thousands, "≥ 1.5× Node.js", atLeast(1.5)}
	perCPU    = metric{"delivered per server CPU-second", func(r *result) float64 {
		if r.ServerCPU <= 0 {
			return 0
		}
		return r.DeliveredPerSec / r.ServerCPU
	}, thousands, "≥ 1.5× Node.js", atLeast(1.5)}
	p99 = metric{"latency p99 (ms)", func(r *result) float64 { return r.P99Ms }, fixed(1), "≤ Node.js",
		func(ours, other stat) bool { return ours.med <= other.med }}
	fanoutMetrics = []metric{
		delivered,
		{"server CPU (cores busy)", func(r *result) float64 { return r.ServerCPU }, fixed(2), "", nil},
		perCPU,
		{"latency p50 (ms)", func(r *result) float64 { return r.P50Ms }, fixed(1), "", nil},
		p99,
		{"latency p999 (ms)", func(r *result) float64 { return r.P999Ms }, fixed(1), "", nil},
		{"server RSS at the end (MiB)", func(r *result) float64 { return float64(r.ServerRSSKiB) / 1024 }, fixed(0), "", nil},
	}
)

// fanoutRows are a fan-out scenario's rows: every metric against Node.js,
// then the headline ones against each reference server that ran.
func fanoutRows(scenario string, res map[string][]*result) []row {
	if res == nil {
		return nil
	}
	var rows []row
	for _, m := range fanoutMetrics {
		rows = append(rows, compare(scenario, m, res[serverOurs], res[serverNode]))
	}
	for _, ref := range []string{serverNode2W, serverCentrifugo} {
		if len(res[ref]) == 0 {
			continue
		}
		for _, m := range []metric{delivered, perCPU, p99} {
			m.name += "; the Node.js column: " + serverTitles[ref]
			m.target, m.met = "", nil // reference only
			rows = append(rows, compare(scenario, m, res[serverOurs], res[ref]))
		}
	}
	return rows
}

// stormRows are one presence storm's rows. Issue 14's targets apply to the
// 10,000-user storm: converged within 5 s after the last join, peak RSS
// under 2 GiB; the 1,000-user storm keeps its 2 s.
func stormRows(o options, presence string, n int, res map[string][]*result) []row {
	if res == nil {
		return nil
	}
	scenario := fmt.Sprintf("presence storm, %s users", thousands(float64(n)))
	if presence == "diff" {
		scenario += ", `online_users_diff` clients"
	}
	ours, node := res[serverOurs], res[serverNode]
	notRun := "not run"
	if presence == "diff" {
		notRun = "not run (no diff form)"
	} else if n > o.stormNodeMax {
		notRun = fmt.Sprintf("not run (> %s users: every list to everyone)", thousands(float64(o.stormNodeMax)))
	}
	fill := func(r row) row {
		if len(node) == 0 {
			r.node, r.ratio = notRun, "—"
		}
		return r
	}
	var rows []row
	conv := func(r *result) float64 {
		if r.TimedOut {
			return math.Inf(1)
		}
		return r.ConvergeSeconds
	}
	o1, n1 := summarize(ours, conv), summarize(node, conv)
	never := fmt.Sprintf("> %.0f", o.stormTimeout.Seconds())
	r := row{scenario, fmt.Sprintf("time from the first join until every client has all %s (s)", thousands(float64(n))),
		o1.format(fixed(2), never), n1.format(fixed(2), never), ratio(o1, n1), "", ""}
	if math.IsInf(n1.med, 1) && o1.n > 0 && !math.IsInf(o1.med, 1) {
		r.ratio = fmt.Sprintf("< %.2f×", o1.med/o.stormTimeout.Seconds())
	}
	r.ours += stormProgress(ours)
	r.node += stormProgress(node)
	rows = append(rows, fill(r))

	after := func(r *result) float64 {
		if r.TimedOut {
			return math.Inf(1)
		}
		return r.AfterLastJoin
	}
	limit := 0.0 // seconds; 0: no target
	switch {
	case n >= 10000:
		limit = 5
	case n == 1000:
		limit = 2
	}
	o2, n2 := summarize(ours, after), summarize(node, after)
	never = fmt.Sprintf("> %.0f", o.stormTimeout.Seconds()-o.stormSpread.Seconds())
	r = row{scenario, "the same, from the last join (s)", o2.format(fixed(2), never), n2.format(fixed(2), never), ratio(o2, n2), "", ""}
	if math.IsInf(n2.med, 1) && o2.n > 0 && !math.IsInf(o2.med, 1) {
		r.ratio = fmt.Sprintf("< %.2f×", o2.med/(o.stormTimeout.Seconds()-o.stormSpread.Seconds()))
	}
	if limit > 0 {
		r.target, r.met = fmt.Sprintf("≤ %.0f s", limit), "—"
		if o2.n > 0 {
			r.met = yesNo(o2.med <= limit)
		}
	}
	rows = append(rows, fill(r))
	for _, m := range []metric{
		{"MB sent to the clients (until converged or given up)", func(r *result) float64 { return float64(r.BytesReceived) / 1e6 }, thousands, "", nil},
		{"online_users (and _diff) packets received", func(r *result) float64 { return float64(r.OnlineUsersPackets) }, thousands, "", nil},
	} {
		rows = append(rows, fill(compare(scenario, m, ours, node)))
	}
	r = fill(compare(scenario, metric{"server peak RSS (MiB)", func(r *result) float64 { return float64(r.ServerHWMKiB) / 1024 }, fixed(0), "", nil}, ours, node))
	if n >= 10000 {
		hwm := summarize(ours, func(r *result) float64 { return float64(r.ServerHWMKiB) / 1024 })
		r.target, r.met = "< 2 GiB", "—"
		if hwm.n > 0 {
			r.met = yesNo(hwm.med < 2048)
		}
	}
	return append(rows, r)
}

// slowRows compare the slow-consumer runs with the same runs without slow
// members, per server (issue 14: peak RSS within 1.5×, the other members'
// p99 within 20%, the slow members disconnected).
func slowRows(o options, base, slow map[string][]*result) []row {
	if base == nil || slow == nil {
		return nil
	}
	scenario := fmt.Sprintf("slow consumers, %d busy rooms × %d members + 1 not reading, %d in flight", o.slowRooms, o.members, o.slowInflight)
	hwm := func(r *result) float64 { return float64(r.ServerHWMKiB) / 1024 }
	p := func(r *result) float64 { return r.P99Ms }
	// change is "before → after (after ÷ before)" for one server.
	change := func(srv string, val func(*result) float64, f func(float64) string) (string, float64) {
		b, s := summarize(base[srv], val), summarize(slow[srv], val)
		if b.n == 0 || s.n == 0 || b.med == 0 {
			return "failed", math.NaN()
		}
		return fmt.Sprintf("%s → %s (%.2f×)", f(b.med), f(s.med), s.med/b.med), s.med / b.med
	}
	oursRSS, rssRatio := change(serverOurs, hwm, fixed(0))
	nodeRSS, _ := change(serverNode, hwm, fixed(0))
	oursP99, p99Ratio := change(serverOurs, p, fixed(1))
	nodeP99, _ := change(serverNode, p, fixed(1))
	met := func(ok bool, x float64) string {
		if math.IsNaN(x) {
			return "—"
		}
		return yesNo(ok)
	}
	gone := func(srv string) (string, bool) {
		rs := slow[srv]
		if len(rs) == 0 {
			return "failed", false
		}
		r := rs[len(rs)/2]
		s := fmt.Sprintf("%d of %d", r.SlowDisconnected, r.SlowMembers)
		if r.SlowMetric >= 0 {
			s += fmt.Sprintf(" (`auraos_slow_disconnects_total` %g)", r.SlowMetric)
		}
		return s, r.SlowMembers > 0 && (r.SlowDisconnected == r.SlowMembers || r.SlowMetric >= float64(r.SlowMembers))
	}
	oursGone, allGone := gone(serverOurs)
	nodeGone, _ := gone(serverNode)
	goneMet := "—"
	if len(slow[serverOurs]) > 0 {
		goneMet = yesNo(allGone)
	}
	return []row{
		{scenario, "server peak RSS (MiB), without → with the slow members", oursRSS, nodeRSS, "—", "≤ 1.5×", met(rssRatio <= 1.5, rssRatio)},
		{scenario, "the other members' latency p99 (ms), without → with", oursP99, nodeP99, "—", "within 20%", met(math.Abs(p99Ratio-1) <= 0.2, p99Ratio)},
		compare(scenario, metric{"delivered messages/s with the slow members", func(r *result) float64 { return r.DeliveredPerSec }, thousands, "", nil}, slow[serverOurs], slow[serverNode]),
		{scenario, "slow members the server disconnected (median run)", oursGone, nodeGone, "—", "all", goneMet},
	}
}

// idleRows are one idle-memory size's rows, or the reason it did not run.
func idleRows(n int, res map[string][]*result, skip string) []row {
	scenario := fmt.Sprintf("idle memory, %s websockets", thousands(float64(n)))
	if skip != "" {
		return []row{{scenario, "server RSS per idle websocket (KiB)", skip, skip, "—", "≤ 12 KiB", "—"}}
	}
	if res == nil {
		return nil
	}
	per := compare(scenario, metric{"server RSS per idle websocket (KiB)", func(r *result) float64 { return r.PerConnKiB }, fixed(1), "≤ 12 KiB", nil}, res[serverOurs], res[serverNode])
	if st := summarize(res[serverOurs], func(r *result) float64 { return r.PerConnKiB }); st.n > 0 {
		per.met = yesNo(st.med <= 12)
	} else {
		per.met = "—"
	}
	return []row{per,
		compare(scenario, metric{"server RSS with them connected (MiB)", func(r *result) float64 { return float64(r.RSSAfterKiB) / 1024 }, fixed(0), "", nil}, res[serverOurs], res[serverNode]),
	}
}

// recoveryNode is the Node.js column of the recovery rows.
const recoveryNode = "not supported: in-memory recovery is lost on restart"

// recoveryRows are the rows of recovery after a kill -9 and restart (issue
// 16, "Cost"): ours only. Every failure of every run is shown.
func recoveryRows(o options, res map[string][]*result) []row {
	if res == nil {
		return nil
	}
	n := o.recRooms * o.recMembers
	scenario := fmt.Sprintf("recovery after kill -9 and restart, %s clients (%d rooms × %d) × %d missed messages", thousands(float64(n)), o.recRooms, o.recMembers, o.recMessages)
	ours := res[serverOurs]
	one := func(name string, val func(*result) float64, f func(float64) string, inf string) row {
		st := summarize(ours, val)
		return row{scenario, name, st.format(f, inf), recoveryNode, "—", "", ""}
	}
	// A run counts only when every client recovered with every message;
	// the others are shown as how far they got.
	all := one("time from the restarted server's /readyz until every client has `recovered === true` and all it missed (s)", func(r *result) float64 {
		if r.TimedOut || r.Recovered < r.Clients {
			return math.Inf(1)
		}
		return r.RecoverSeconds
	}, fixed(2), "not all recovered")
	var short []string
	for _, r := range ours {
		switch {
		case r.TimedOut:
			short = append(short, fmt.Sprintf("%s of %s by %v, when it gave up", thousands(float64(r.Recovered)), thousands(float64(r.Clients)), o.recTimeout))
		case r.Recovered < r.Clients:
			short = append(short, fmt.Sprintf("%s of %s, the others had failed after %.2f s", thousands(float64(r.Recovered)), thousands(float64(r.Clients)), r.RecoverSeconds))
		}
	}
	if len(short) > 0 {
		all.ours += fmt.Sprintf(" (short in %d of %d runs; recovered with exactly what they missed: %s)", len(short), len(ours), strings.Join(short, "; "))
	}
	// failures sums each kind over the runs.
	failures := "failed"
	met := "—"
	if len(ours) > 0 {
		var f [5]int
		var errs []string
		for _, r := range ours {
			for i, x := range []int{r.NotReconnected, r.NotRecovered, r.Missing, r.Duplicated, r.OutOfOrder} {
				f[i] += x
			}
			for _, e := range r.ConnectErrors {
				if !slices.Contains(errs, e) {
					errs = append(errs, e)
				}
			}
		}
		failures = fmt.Sprintf("%d / %d / %d / %d / %d", f[0], f[1], f[2], f[3], f[4])
		if len(ours) > 1 {
			failures += fmt.Sprintf(" (over %d runs)", len(ours))
		}
		if len(errs) > 0 {
			failures += " (connect errors: " + strings.Join(errs, "; ") + ")"
		}
		met = yesNo(f == [5]int{})
	}
	return []row{
		all,
		one("the median time of the clients that recovered (s)", func(r *result) float64 { return r.RecoverP50Seconds }, fixed(2), ""),
		{scenario, "clients not reconnected / not recovered / missing messages / with duplicates / out of order", failures, recoveryNode, "—", "none", met},
		one("restart: kill -9 until /readyz (s)", func(r *result) float64 { return r.RestartSeconds }, fixed(2), ""),
		one("server peak RSS, start to recovered (MiB)", func(r *result) float64 { return float64(r.ServerHWMKiB) / 1024 }, fixed(0), ""),
		one("server CPU from /readyz until recovered (CPU-seconds)", func(r *result) float64 { return r.ServerCPUSeconds }, fixed(2), ""),
	}
}

// floodRows are the memory after a flood into one room (issue 16: no
// packet buffer per socket): ours only.
func floodRows(o options, res map[string][]*result) []row {
	if res == nil {
		return nil
	}
	scenario := fmt.Sprintf("memory after a flood, 1 sender, %s messages into a room of %d members", thousands(float64(o.floodMsgs)), o.floodMembers)
	ours := res[serverOurs]
	const node = "not run (ours only)"
	mib := func(k int64) string { return fmt.Sprintf("%.0f", float64(k)/1024) }
	rss, failures, met := "failed", "failed", "—"
	if len(ours) > 0 {
		r := ours[len(ours)/2]
		if len(ours) > 1 { // the median run by the settled RSS
			rs := slices.Clone(ours)
			slices.SortFunc(rs, func(a, b *result) int { return int(a.RSSAfterKiB - b.RSSAfterKiB) })
			r = rs[len(rs)/2]
		}
		rss = fmt.Sprintf("%s → %s → %s", mib(r.RSSBeforeKiB), mib(r.RSSFloodEndKiB), mib(r.RSSAfterKiB))
		if r.RSSAfterGCKiB > 0 {
			rss += " → " + mib(r.RSSAfterGCKiB)
		}
		var short, dropped, refused int
		timedOut := false
		for _, r := range ours {
			short, dropped, refused = short+r.Short, dropped+r.Dropped, refused+r.Refused
			timedOut = timedOut || r.TimedOut
		}
		failures = fmt.Sprintf("%d / %d / %d", short, dropped, refused)
		if timedOut {
			failures += " (timed out)"
		}
		met = yesNo(short+dropped+refused == 0 && !timedOut)
	}
	settle := o.floodSettle.String()
	return []row{
		{scenario, "server RSS before → at the end → " + settle + " later → after a forced GC and " + settle + " (MiB)", rss, node, "—", "", ""},
		{scenario, "members short of the messages / disconnected / refused sends", failures, node, "—", "none", met},
		{scenario, "flood rate (messages/s, each to every member)", summarize(ours, func(r *result) float64 {
			if r.FloodSeconds <= 0 {
				return 0
			}
			return float64(r.Messages) / r.FloodSeconds
		}).format(thousands, ""), node, "—", "", ""},
	}
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
	fmt.Fprintf(&b, "Generated by `make bench` on %s in %s (`%s`).\n\n", m.date, m.took.Round(time.Second), strings.Join(append([]string{"go run ./bench/run"}, os.Args[1:]...), " "))
	fmt.Fprintf(&b, "Machine: %d CPUs (`nproc`), %s, %s RAM, Linux %s; %s; Node.js %s with socket.io %s; our server `%s` (`bin/auraos version`). ",
		m.cpus, m.model, m.memory, m.kernel, m.goVersion, m.node, m.socketIO, m.ours)
	fmt.Fprintf(&b, "Load average at the start %s, at the end %s (the load generators and the servers share these cores).\n\n", m.loadStart, m.loadEnd)
	b.WriteString("| scenario | metric | ours | Node.js (or the server the metric names) | ratio (ours ÷ it) | target | met |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- |\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", r.scenario, r.metric, r.ours, r.node, r.ratio, r.target, r.met)
	}
	b.WriteString("\nNotes:\n\n")
	notes := []string{
		fmt.Sprintf("Each scenario ran %d× per server, alternating the servers, each run against a freshly started server. A figure is the median of the runs (the mean of the middle two for an even count); the brackets give the spread, the lowest and highest run. Ratios and targets compare the medians of this one `make bench`.", o.runs),
		"Ours: `bin/auraos serve` at its defaults but `--rate-message 100000 --burst-message 100000`: embedded SQLite in a fresh temporary `--data-dir` (WAL, `synchronous=FULL`: every message is durably appended before it is pushed, and every join is stored), Connection State Recovery on (an offset argument on every event it emits), `--log-level warn`.",
		fmt.Sprintf("Node.js: `bench/node-server/server.js`, the source document's events in memory on socket.io %s with its default settings: no connection state recovery, no perMessageDeflate, nothing stored; `online_users` goes to everyone after every join. Node.js, 2 workers: the same server in a primary and two workers, `@socket.io/sticky` handing connections to the workers and `@socket.io/cluster-adapter` sharing broadcasts, as a Node.js user on two cores runs it (fan-out only: each worker keeps its own presence).", m.socketIO),
		"Server CPU is user+system time from `/proc/PID/stat` over the measured window, summed over the server's process group (the workers count); delivered per server CPU-second is delivered messages/s divided by it. The load generator runs on the same two cores: the CPU it uses is CPU the server does not get.",
		fmt.Sprintf("Chat fan-out: %d rooms × %d members = %s websockets; one member per room sends, keeping 4 messages in flight (the next goes when one of its own `new_message` echoes arrives), without acks; every member, the sender included, records the delay from the send to its receipt. %v warm-up, then %v measured; delivered messages/s counts receipts in the window. Go client: `bench/loadgen` (its own Engine.IO 4 / Socket.IO 5 websocket client, one reading goroutine per connection). socket.io-client: `bench/jsload`, the official JavaScript client 4.x, every connection in one Node.js process.",
			o.rooms, o.members, thousands(float64(o.rooms*o.members)), o.warmup, o.duration),
		"Centrifugo (with `-centrifugo`, reference only): v" + centrifugoVersion + " built by `go install github.com/centrifugal/centrifugo/v6@v" + centrifugoVersion + "`, memory engine, history 50 per channel with recovery on (in memory: not durable), insecure client mode (no tokens), driven by the same fan-out through its JSON websocket protocol (connect, subscribe, publish) by `bench/loadgen`.",
		fmt.Sprintf("Presence storm: N websockets connect, then send `join_user_room` evenly over %v; the time runs until every client's latest `online_users` lists all N users (entries counted by their `\"socketId\"` keys), from the first join and from the last; given up %v after the first join (shown as `>`). MB are websocket bytes the clients read from the first join on. `online_users_diff` clients connect with `auth: { presence: 'diff' }` and keep the set the diffs build (a full list replaces it).", o.stormSpread, o.stormTimeout),
		fmt.Sprintf("Slow consumers: the fan-out with %d rooms × %d members, %d messages in flight per sender and %v measured (busy rooms: a member that stops reading falls megabytes behind, past the server's queue bound and the kernel's socket buffers) and, in each room, one more member that joins and then never reads (a raw websocket with a 4 KiB receive buffer that sends an Engine.IO pong every 2 s, so a heartbeat alone keeps it), against the same run without them; disconnected means its connection was closed when read after the run (and, for ours, `auraos_slow_disconnects_total` on `/metrics`).", o.slowRooms, o.members, o.slowInflight, o.slowDuration),
		"Idle memory: the server's VmRSS before and 3 s after N websockets completed the Socket.IO handshake, divided by the connections. Each process needs N open files besides its own; a size over the hard open-files limit (`ulimit -Hn`) is shown as not runnable.",
		fmt.Sprintf("Recovery (ours only; the Node.js reference keeps recovery in memory, which a restart loses): `bench/jsload/recovery.js`, the official client, connects %d rooms × %d members; each joins its user room and its chat room as the source document's clients do, then every member loses its connection without a clean disconnect (its engine is closed under it), and one more client per room sends %d messages into it, each acknowledged (stored). The harness then kills the server (SIGKILL to its process group) and starts it again on the same `--data-dir` and port, and every member reconnects at once with the private session id and offset the client kept. The time runs from the restarted server's `/readyz` until every member has `socket.recovered === true` and exactly the messages it missed, in log order (the acks' positions); given up after %v (shown as `>`). A member is counted once per failure it shows: not reconnected, not recovered (a fresh connection), missing messages, duplicated messages, out of order. Peak RSS is the restarted process's VmHWM, CPU its user+system time from `/readyz` until recovered. Our server runs with `--presence-grace %s` here: the members drop before the messages are sent, seconds before the restart, and the default 5 s would have them recorded as left meanwhile.", o.recRooms, o.recMembers, o.recMessages, o.recTimeout, recoveryGrace),
		fmt.Sprintf("Memory after a flood (ours only): %d members join one chat room (each its user room too); the first sends %s messages, keeping 32 in flight (the next goes when one of its own echoes arrives), and every member reads them all; the server's VmRSS before the flood, at its end, %v later, and %v after a forced GC (`/debug/pprof/heap?gc=1` on a `--debug-addr` listener).", o.floodMembers, thousands(float64(o.floodMsgs)), o.floodSettle, o.floodSettle),
		"Event store and projections (ours only): `go test -run '^$' -bench 'SQLite/append/writers=16|SQLite/readall' -benchtime 2s ./eventstore/sqlstore`, with `AURAOS_TEST_POSTGRES_URL` set also `-bench 'Postgres/append/writers=16'` (16 goroutines each appending one event at a time and waiting for it to be durable, to 50 streams), and `AURAOS_BENCH_EVENTS=200000 go test -run '^$' -bench '^BenchmarkRebuildChatHistory$/^sqlite$' -benchtime 1x ./projections` (with `-smoke`: `-benchtime 1x` and 2000 events).",
		"Whole-process rebuild (ours only): `bench/filllog` appends a chat log shaped like production traffic (1,000 users come online and join one of 100 rooms, then messages across the rooms, every tenth event an app status change; 8 writers, 500 events an append), then the wall time of `bin/auraos projections rebuild --all` is measured around the process: start, one read of the log feeding the three projections, and their swaps. PostgreSQL (event store and read models in one fresh schema) when `AURAOS_TEST_POSTGRES_URL` is set.",
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
