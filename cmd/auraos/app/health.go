package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/uptrace/bun"

	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/projections"
)

// healthz answers whether the process is alive.
func healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
}

// readiness answers /readyz: the event store and the read database answer,
// and every projection is within maxLag positions of the head.
type readiness struct {
	store   eventstore.Store
	readDB  *bun.DB
	runners []*projections.Runner
	maxLag  uint64
	timeout time.Duration
	appends *appendHealth
}

func (rd readiness) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), rd.timeout)
	defer cancel()
	var reasons []string
	head, err := rd.store.Head(ctx)
	if err != nil {
		reasons = append(reasons, "event store unreachable")
	}
	if err := rd.readDB.PingContext(ctx); err != nil {
		reasons = append(reasons, "read database unreachable")
	} else if _, err := rd.readDB.NewSelect().ColumnExpr("1").Exec(ctx); err != nil {
		reasons = append(reasons, "read database unreachable")
	}
	if why := rd.appends.failure(); why != "" {
		reasons = append(reasons, "appends are failing: "+why)
	}
	lags := map[string]uint64{}
	for _, run := range rd.runners {
		name := run.Projection().Name()
		if !run.CaughtUp() {
			reasons = append(reasons, name+" has not caught up with the log yet")
			continue
		}
		if err == nil {
			pos := run.Position()
			lag := uint64(0)
			if pos.Commit < head.Commit {
				lag = head.Commit - pos.Commit
			}
			lags[name] = lag
			if lag > rd.maxLag {
				reasons = append(reasons, fmt.Sprintf("%s is %d positions behind the log (limit %d)", name, lag, rd.maxLag))
			}
		}
	}
	if len(reasons) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "reasons": reasons, "projectionLag": lags})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "head": head.Commit, "projectionLag": lags})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
