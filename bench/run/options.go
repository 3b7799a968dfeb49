package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// parseSizes reads a comma-separated list of positive counts.
func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive count", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// makeSmoke shrinks every scenario to seconds: the point is that the
// harness works end to end (servers start and stop, generators report,
// the table renders), not the figures. Flags given on the command line
// (set) keep their values, so -smoke -idle-sizes 100,50000 still shows
// the open-files check.
func (o *options) makeSmoke(set map[string]bool) {
	smoke := func(flagName string, apply func()) {
		if !set[flagName] {
			apply()
		}
	}
	smoke("runs", func() { o.runs = 1 })
	smoke("warmup", func() { o.warmup = time.Second })
	smoke("duration", func() { o.duration = 2 * time.Second })
	smoke("rooms", func() { o.rooms = 4 })
	smoke("members", func() { o.members = 5 })
	smoke("slow-rooms", func() { o.slowRooms = 2 })
	smoke("slow-duration", func() { o.slowDuration = 2 * time.Second })
	smoke("storm-sizes", func() { o.stormSizes = []int{20, 50, 100} })
	smoke("storm-spread", func() { o.stormSpread = time.Second })
	smoke("storm-timeout", func() { o.stormTimeout = 10 * time.Second })
	smoke("storm-node-max", func() { o.stormNodeMax = 100 })
	smoke("idle-sizes", func() { o.idleSizes = []int{100, 200} })
	smoke("recovery-rooms", func() { o.recRooms = 4 })
	smoke("recovery-members", func() { o.recMembers = 5 })
	smoke("recovery-messages", func() { o.recMessages = 10 })
	smoke("recovery-timeout", func() { o.recTimeout = 30 * time.Second })
	smoke("flood-messages", func() { o.floodMsgs = 2000 })
	smoke("flood-members", func() { o.floodMembers = 5 })
	smoke("flood-settle", func() { o.floodSettle = time.Second })
	o.storeSmall = true
}

// npmCI installs a Node.js package's locked dependencies unless they are
// there (make bench installs them first; this serves go run ./bench/run).
func npmCI(ctx context.Context, dir string) error {
	lock, err1 := os.Stat(filepath.Join(dir, "package-lock.json"))
	done, err2 := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json"))
	if err1 == nil && err2 == nil && !done.ModTime().Before(lock.ModTime()) {
		return nil
	}
	logf("installing %s's dependencies (npm ci)", dir)
	return command(ctx, "", nil, "npm", "ci", "--prefix", dir, "--no-audit", "--no-fund")
}
