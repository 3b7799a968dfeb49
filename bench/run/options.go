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
// the table renders), not the figures.
func (o *options) makeSmoke() {
	o.runs = 1
	o.warmup, o.duration = time.Second, 2*time.Second
	o.rooms, o.members, o.slowRooms = 4, 5, 2
	o.stormSizes = []int{20, 50, 100}
	o.stormSpread, o.stormTimeout = time.Second, 10*time.Second
	o.stormNodeMax = 100
	o.idleSizes = []int{100, 200}
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
