package main

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/auraos/realtime/bench/internal/fdlimit"
)

// scenarioNames are what -scenarios takes, in the order of the table.
var scenarioNames = []string{"fanout", "fanout-js", "storm", "slow", "idle", "recovery", "store", "rebuild"}

// A variant is one kind of run of a scenario: a results key (the table's
// rows read results by it), the servers it runs against and the load
// generator's command line for one server.
type variant struct {
	key     string
	servers []string
	argv    func(base string, pid int, srv string) []string
	// skip, when set, says why the variant cannot run here; the table shows
	// it instead of figures.
	skip string
	// ourFlags are more flags for our server in this variant's runs.
	ourFlags []string
	// debug gives our server a --debug-addr listener (Go's pprof) on a free
	// port; the load generator gets its URL as --debug-url.
	debug bool
	// restart lets the load generator have the server killed and started
	// again mid-run (see runOne).
	restart bool
}

// tools are the load generators' paths.
type tools struct {
	loadgen string // bench/loadgen, built
	node    string // the Node.js executable, for bench/jsload
}

// goLoadgen is the Go load generator's command line: the scenario's flags
// after the ones every run has.
func (t tools) goLoadgen(args ...string) func(base string, pid int, srv string) []string {
	return func(base string, pid int, srv string) []string {
		return append([]string{t.loadgen, "-url", base, "-server-pid", strconv.Itoa(pid), "-json"}, args...)
	}
}

// variants expands a -scenarios name into its variants; ok is false for an
// unknown name. Their runs alternate per run index: every variant against
// every server, then the next run.
func variants(name string, o options, t tools) (vs []variant, ok bool) {
	fanoutServers := []string{serverOurs, serverNode, serverNode2W}
	fanout := []string{"-rooms", strconv.Itoa(o.rooms), "-members", strconv.Itoa(o.members), "-inflight", "4",
		"-warmup", o.warmup.String(), "-duration", o.duration.String()}
	switch name {
	case "fanout":
		servers := fanoutServers
		if o.centrifugo {
			servers = append(slices.Clone(servers), serverCentrifugo)
		}
		goArgs := t.goLoadgen(append([]string{"-scenario", "fanout"}, fanout...)...)
		centrifugoArgs := t.goLoadgen(append([]string{"-scenario", "centrifugo"}, fanout...)...)
		return []variant{{key: "fanout", servers: servers, argv: func(base string, pid int, srv string) []string {
			if srv == serverCentrifugo {
				return centrifugoArgs(base, pid, srv)
			}
			return goArgs(base, pid, srv)
		}}}, true
	case "fanout-js":
		return []variant{{key: "fanout-js", servers: fanoutServers, argv: func(base string, pid int, srv string) []string {
			return []string{t.node, "bench/jsload/fanout.js", "--url", base, "--server-pid", strconv.Itoa(pid),
				"--rooms", strconv.Itoa(o.rooms), "--members", strconv.Itoa(o.members), "--inflight", "4",
				"--warmup", fmt.Sprint(o.warmup.Seconds()), "--duration", fmt.Sprint(o.duration.Seconds())}
		}}}, true
	case "storm":
		for _, presence := range []string{"full", "diff"} {
			if presence == "diff" && !o.stormDiff {
				continue
			}
			for _, n := range o.stormSizes {
				servers := []string{serverOurs}
				// Node.js sends the whole list to everyone after every join:
				// past a thousand users that is tens of gigabytes, and it
				// has no diff form.
				if presence == "full" && n <= o.stormNodeMax {
					servers = append(servers, serverNode)
				}
				vs = append(vs, variant{key: stormKey(presence, n), servers: servers, argv: t.goLoadgen("-scenario", "storm",
					"-clients", strconv.Itoa(n), "-spread", o.stormSpread.String(), "-timeout", o.stormTimeout.String(), "-presence", presence)})
			}
		}
		return vs, true
	case "slow":
		for _, slow := range []int{0, 1} {
			argv := t.goLoadgen("-scenario", "slow", "-slow-members", strconv.Itoa(slow), "-rooms", strconv.Itoa(o.slowRooms),
				"-members", strconv.Itoa(o.members), "-inflight", strconv.Itoa(o.slowInflight), "-warmup", o.warmup.String(), "-duration", o.slowDuration.String())
			vs = append(vs, variant{key: slowKey(slow > 0), servers: []string{serverOurs, serverNode}, argv: func(base string, pid int, srv string) []string {
				return append(argv(base, pid, srv), "-metrics-url", base+"/metrics")
			}})
		}
		return vs, true
	case "idle":
		_, hard := fdlimit.Limits()
		for _, n := range o.idleSizes {
			v := variant{key: idleKey(n), servers: []string{serverOurs, serverNode},
				argv: t.goLoadgen("-scenario", "idle", "-idle", strconv.Itoa(n), "-settle", "3s")}
			if need := uint64(n) + fdHeadroom; hard < need {
				v.skip = fmt.Sprintf("not runnable here: hard limit %d open files (%d needed)", hard, need)
			}
			vs = append(vs, v)
		}
		return vs, true
	case "recovery":
		// Ours only: the Node.js reference keeps recovery in memory, and a
		// restart loses it. The grace outlasts the run: the members drop
		// before the messages are sent, seconds before the restart, and
		// what is measured is recovery, not leaves and joins again.
		js := func(args ...string) func(base string, pid int, srv string) []string {
			return func(base string, pid int, srv string) []string {
				return append([]string{t.node, "bench/jsload/recovery.js", "--url", base, "--server-pid", strconv.Itoa(pid)}, args...)
			}
		}
		return []variant{
			{key: "recovery", servers: []string{serverOurs}, restart: true, ourFlags: []string{"--presence-grace", recoveryGrace},
				argv: js("--mode", "recover", "--rooms", strconv.Itoa(o.recRooms), "--members", strconv.Itoa(o.recMembers),
					"--messages", strconv.Itoa(o.recMessages), "--timeout", fmt.Sprint(o.recTimeout.Seconds()))},
			{key: "recovery-flood", servers: []string{serverOurs}, debug: true,
				argv: js("--mode", "flood", "--flood-members", strconv.Itoa(o.floodMembers), "--flood-messages", strconv.Itoa(o.floodMsgs),
					"--inflight", "32", "--settle", fmt.Sprint(o.floodSettle.Seconds()), "--timeout", "240")},
		}, true
	}
	return nil, false
}

// recoveryGrace is our server's --presence-grace in the recovery runs.
const recoveryGrace = "2m"

// fdHeadroom is the descriptors a process needs besides its websockets.
const fdHeadroom = 1024

func stormKey(presence string, n int) string {
	if presence == "diff" {
		return fmt.Sprintf("storm-diff-%d", n)
	}
	return fmt.Sprintf("storm-%d", n)
}

func slowKey(slow bool) string {
	if slow {
		return "slow"
	}
	return "slow-base"
}

func idleKey(n int) string { return fmt.Sprintf("idle-%d", n) }

// largestRunnableIdle is the most descriptors a run needs: the open-files
// limit is raised to that.
func largestRunnableIdle(o options) uint64 {
	_, hard := fdlimit.Limits()
	need := uint64(fdHeadroom + 1000)
	for _, n := range o.idleSizes {
		if m := uint64(n) + fdHeadroom; m <= hard {
			need = max(need, m)
		}
	}
	for _, n := range append(slices.Clone(o.stormSizes), o.recRooms*(o.recMembers+1)) {
		if m := uint64(n) + fdHeadroom; m <= hard {
			need = max(need, m)
		}
	}
	return need
}
