package main

import (
	"bytes"
	"cmp"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Result is what one scenario run measured; -json prints it.
type Result struct {
	Scenario string `json:"scenario"`
	URL      string `json:"url"`
	Clients  int    `json:"clients"`
	Errors   int64  `json:"errors"`

	// fanout
	Rooms           int     `json:"rooms,omitempty"`
	Members         int     `json:"members,omitempty"`
	Inflight        int     `json:"inflight,omitempty"`
	WindowSeconds   float64 `json:"windowSeconds,omitempty"`
	Delivered       int64   `json:"delivered,omitempty"`
	DeliveredPerSec float64 `json:"deliveredPerSec,omitempty"`
	SentPerSec      float64 `json:"sentPerSec,omitempty"`
	P50Ms           float64 `json:"p50Ms,omitempty"`
	P99Ms           float64 `json:"p99Ms,omitempty"`
	P999Ms          float64 `json:"p999Ms,omitempty"`
	MaxMs           float64 `json:"maxMs,omitempty"`
	Reordered       int64   `json:"reordered,omitempty"`

	// slow (a fan-out with non-reading members)
	SlowMembers           int     `json:"slowMembers,omitempty"`
	SlowDisconnected      int     `json:"slowDisconnected,omitempty"`
	SlowDisconnectsMetric float64 `json:"slowDisconnectsMetric,omitempty"` // -1: no metric

	// storm
	SpreadSeconds      float64 `json:"spreadSeconds,omitempty"`
	JoinSeconds        float64 `json:"joinSeconds,omitempty"`
	ConvergeSeconds    float64 `json:"convergeSeconds,omitempty"`
	AfterLastJoin      float64 `json:"convergeAfterLastJoinSeconds,omitempty"`
	Converged          int     `json:"converged,omitempty"`
	TimedOut           bool    `json:"timedOut,omitempty"`
	MinListSize        int64   `json:"minListSize,omitempty"`
	BytesReceived      int64   `json:"bytesReceived,omitempty"`
	OnlineUsersPackets int64   `json:"onlineUsersPackets,omitempty"`
	PresenceDiff       bool    `json:"presenceDiff,omitempty"`

	// idle
	Alive          int     `json:"alive,omitempty"`
	ConnectSeconds float64 `json:"connectSeconds,omitempty"`
	RSSBeforeKiB   int64   `json:"rssBeforeKiB,omitempty"`
	RSSAfterKiB    int64   `json:"rssAfterKiB,omitempty"`
	PerConnKiB     float64 `json:"perConnKiB,omitempty"`

	// the server process, when -server-pid is given
	ServerRSSKiB int64   `json:"serverRssKiB,omitempty"`
	ServerHWMKiB int64   `json:"serverHwmKiB,omitempty"`
	ServerCPU    float64 `json:"serverCpuCores,omitempty"` // CPU seconds per second
	LoadgenCPU   float64 `json:"loadgenCpuCores,omitempty"`
}

func (r *Result) setLatencies(ns []int64) {
	if len(ns) == 0 {
		return
	}
	slices.Sort(ns)
	r.P50Ms = ms(quantile(ns, 0.50))
	r.P99Ms = ms(quantile(ns, 0.99))
	r.P999Ms = ms(quantile(ns, 0.999))
	r.MaxMs = ms(ns[len(ns)-1])
}

// quantile of sorted values, nearest rank.
func quantile(sorted []int64, q float64) int64 {
	i := int(float64(len(sorted))*q+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(ns int64) float64 { return float64(ns) / 1e6 }

// print writes the human summary.
func (r *Result) print(w *os.File) {
	switch r.Scenario {
	case "fanout", "slow", "centrifugo":
		fmt.Fprintf(w, "fanout %s: %d rooms × %d members, %d in flight per sender, %.1fs measured\n", r.URL, r.Rooms, r.Members, r.Inflight, r.WindowSeconds)
		fmt.Fprintf(w, "  delivered   %.0f messages/s (%d receipts; senders' echoes %.0f/s)\n", r.DeliveredPerSec, r.Delivered, r.SentPerSec)
		fmt.Fprintf(w, "  latency     p50 %.2f ms  p99 %.2f ms  p999 %.2f ms  max %.2f ms\n", r.P50Ms, r.P99Ms, r.P999Ms, r.MaxMs)
		fmt.Fprintf(w, "  errors %d, reordered %d\n", r.Errors, r.Reordered)
		if r.SlowMembers > 0 {
			fmt.Fprintf(w, "  slow members %d, disconnected by the server %d (auraos_slow_disconnects_total %g)\n", r.SlowMembers, r.SlowDisconnected, r.SlowDisconnectsMetric)
		}
	case "storm":
		state := "converged"
		if r.TimedOut {
			state = fmt.Sprintf("NOT converged (%d of %d clients had the full list; smallest latest list %d)", r.Converged, r.Clients, r.MinListSize)
		}
		fmt.Fprintf(w, "storm %s: %d clients joined over %.2fs\n", r.URL, r.Clients, r.JoinSeconds)
		fmt.Fprintf(w, "  %s after %.3f s from the first join, %.3f s after the last\n", state, r.ConvergeSeconds, r.AfterLastJoin)
		fmt.Fprintf(w, "  received    %.1f MB (%d online_users packets), errors %d\n", float64(r.BytesReceived)/1e6, r.OnlineUsersPackets, r.Errors)
	case "idle":
		fmt.Fprintf(w, "idle %s: %d connections (%d alive), connected in %.1fs\n", r.URL, r.Clients, r.Alive, r.ConnectSeconds)
		fmt.Fprintf(w, "  server RSS  %d KiB → %d KiB: %.2f KiB per connection\n", r.RSSBeforeKiB, r.RSSAfterKiB, r.PerConnKiB)
	}
	if r.ServerRSSKiB > 0 {
		fmt.Fprintf(w, "  server      RSS %d KiB (peak %d KiB)\n", r.ServerRSSKiB, r.ServerHWMKiB)
	}
	if r.ServerCPU > 0 || r.LoadgenCPU > 0 {
		fmt.Fprintf(w, "  CPU         server %.2f cores, load generator %.2f cores\n", r.ServerCPU, r.LoadgenCPU)
	}
}

// groupPIDs returns the processes of the process group pgid: the bench
// starts every server as the leader of its own group, so a server that
// forks workers (Node.js with two) is measured whole. A pid that leads no
// group is measured alone.
func groupPIDs(pgid int) []int {
	if pgid <= 0 {
		return nil
	}
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f, err := statFields(pid); err == nil && len(f) > 2 && f[2] == strconv.Itoa(pgid) {
			pids = append(pids, pid)
		}
	}
	if len(pids) == 0 {
		pids = []int{pgid}
	}
	return pids
}

// statFields returns the fields of /proc/<pid>/stat after the command
// (state is [0], utime [11], stime [12]).
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	return strings.Fields(string(b[i+1:])), nil
}

// procStatus sums a field of /proc/<pid>/status in KiB over the server's
// process group.
func procStatus(pgid int, field string) (int64, error) {
	var sum int64
	var firstErr error
	for _, pid := range groupPIDs(pgid) {
		v, err := statusField(pid, field)
		if err != nil {
			firstErr = cmp.Or(firstErr, err)
			continue
		}
		sum += v
	}
	return sum, firstErr
}

func statusField(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte(field+":")); ok {
			f := strings.Fields(string(rest))
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

func procRSS(pgid int) (int64, error) { return procStatus(pgid, "VmRSS") }
func procHWM(pgid int) (int64, error) { return procStatus(pgid, "VmHWM") }

// procCPU returns the user+system CPU seconds of the server's process
// group.
func procCPU(pgid int) (float64, error) {
	var sum float64
	var firstErr error
	for _, pid := range groupPIDs(pgid) {
		f, err := statFields(pid)
		if err == nil && len(f) < 13 {
			err = fmt.Errorf("unexpected /proc/%d/stat", pid)
		}
		if err != nil {
			firstErr = cmp.Or(firstErr, err)
			continue
		}
		ut, err1 := strconv.ParseFloat(f[11], 64)
		st, err2 := strconv.ParseFloat(f[12], 64)
		if err1 != nil || err2 != nil {
			firstErr = cmp.Or(firstErr, fmt.Errorf("unexpected /proc/%d/stat", pid))
			continue
		}
		const clkTck = 100 // USER_HZ on Linux
		sum += (ut + st) / clkTck
	}
	return sum, firstErr
}

// selfCPU returns this process's user+system CPU seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

var logStart = time.Now()

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[loadgen %6.1fs] %s\n", time.Since(logStart).Seconds(), fmt.Sprintf(format, args...))
}
