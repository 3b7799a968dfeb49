package projections

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/auraos/realtime/domain"
)

// AppStatus is the app-status projection: each app's last status and when it
// changed.
type AppStatus struct{}

// Name implements Projection.
func (AppStatus) Name() string { return "app-status" }

// Version implements Projection.
func (AppStatus) Version() int { return 1 }

// Tables implements Projection.
func (AppStatus) Tables() []string { return []string{"app_status"} }

// EventTypes implements Projection.
func (AppStatus) EventTypes() []string { return []string{domain.TypeAppStatusChanged} }

// appRow is a row of app_status.
type appRow struct {
	bun.BaseModel `bun:"table:app_status"`

	AppID     string `bun:"app_id,pk"`
	Status    string `bun:"status"`
	UpdatedAt int64  `bun:"updated_at"`
	UpdatedBy string `bun:"updated_by"`
}

// Apply implements Projection.
func (AppStatus) Apply(ctx context.Context, tx bun.Tx, t Tables, events []Envelope) error {
	// A change replaces the whole row, so only each app's last change in
	// the batch matters: one upsert of those, in order of first change,
	// not one statement per event.
	last := map[string]int{}
	var rows [][]any
	for _, rec := range events {
		e, ok := rec.Event.(domain.AppStatusChanged)
		if !ok {
			continue
		}
		row := []any{e.AppID, string(e.Status), micros(e.At), e.By}
		if i, seen := last[e.AppID]; seen {
			rows[i] = row
			continue
		}
		last[e.AppID] = len(rows)
		rows = append(rows, row)
	}
	upsert := bulkInsert{table: t.Name("app_status"), columns: []string{"app_id", "status", "updated_at", "updated_by"},
		conflict: "ON CONFLICT (app_id) DO UPDATE SET status = EXCLUDED.status, updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by"}
	if err := upsert.exec(ctx, tx, rows); err != nil {
		return fmt.Errorf("app status: %w", err)
	}
	return nil
}

// AppTotals are the counts of system_status_update.
type AppTotals struct {
	Total    int
	Active   int
	Inactive int
}

// AppTotalsQuery counts apps by status.
type AppTotalsQuery struct{ DB bun.IDB }

// Handle returns the app counts.
func (q AppTotalsQuery) Handle(ctx context.Context) (AppTotals, error) {
	var rows []struct {
		Status string `bun:"status"`
		N      int    `bun:"n"`
	}
	if err := q.DB.NewSelect().Model((*appRow)(nil)).ColumnExpr("status, count(*) AS n").Group("status").Scan(ctx, &rows); err != nil {
		return AppTotals{}, readError("app status", err)
	}
	var t AppTotals
	for _, r := range rows {
		t.Total += r.N
		switch domain.AppStatus(r.Status) {
		case domain.AppActive:
			t.Active += r.N
		case domain.AppInactive:
			t.Inactive += r.N
		}
	}
	return t, nil
}

// App is one app's status.
type App struct {
	AppID     string
	Status    string
	UpdatedAt time.Time
}

// AppQuery reads one app's status.
type AppQuery struct{ DB bun.IDB }

// Handle returns the app's status and whether it is known.
func (q AppQuery) Handle(ctx context.Context, appID string) (App, bool, error) {
	var rows []appRow
	if err := q.DB.NewSelect().Model(&rows).Where("app_id = ?", appID).Scan(ctx); err != nil {
		return App{}, false, readError("app status", err)
	}
	if len(rows) == 0 {
		return App{}, false, nil
	}
	return App{AppID: rows[0].AppID, Status: rows[0].Status, UpdatedAt: fromMicros(rows[0].UpdatedAt)}, true, nil
}

// AppsQuery lists every app's status.
type AppsQuery struct{ DB bun.IDB }

// Handle returns each app the read model holds, ordered by app id byte by
// byte (sorted here rather than by the database, whose collation may
// differ between SQLite and PostgreSQL). It returns EUNAVAILABLE when the
// read database cannot answer.
func (q AppsQuery) Handle(ctx context.Context) ([]App, error) {
	var rows []appRow
	if err := q.DB.NewSelect().Model(&rows).Scan(ctx); err != nil {
		return nil, readError("app status", err)
	}
	slices.SortFunc(rows, func(a, b appRow) int { return strings.Compare(a.AppID, b.AppID) })
	out := make([]App, len(rows))
	for i, r := range rows {
		out[i] = App{AppID: r.AppID, Status: r.Status, UpdatedAt: fromMicros(r.UpdatedAt)}
	}
	return out, nil
}
