package schema_test

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auraos/realtime/schema"
	"github.com/auraos/realtime/schema/schematest"
)

func TestMigrateSQLiteTwiceAndTables(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := schema.OpenSQLite(filepath.Join(t.TempDir(), "read.db"), schema.SQLiteOptions{Mode: schema.SQLiteWriter})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for range 2 {
		if err := schema.Migrate(ctx, db, schema.ReadModels); err != nil {
			t.Fatalf("migrate: %v", err)
		}
		if err := schema.Migrate(ctx, db, schema.EventStore); err != nil {
			t.Fatalf("migrate: %v", err)
		}
	}
	for _, table := range append([]string{"events", "projection_checkpoints"}, schema.ReadModelTables...) {
		var n int
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", table).Scan(&n); err != nil || n != 1 {
			t.Errorf("table %s: %d, %v", table, n, err)
		}
	}
	names, err := schema.IndexNames(db.Dialect().Name(), "chat_messages", "")
	if err != nil || len(names) != 1 || names[0] != "chat_messages_room_idx" {
		t.Fatalf("index names: %v %v", names, err)
	}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = ?", names[0]).Scan(&n); err != nil || n != 1 {
		t.Fatalf("index %s: %d %v", names[0], n, err)
	}
	// A copy made from the template has the same columns.
	if err := schema.CreateTable(ctx, db, "chat_messages", "chat_messages_copy"); err != nil {
		t.Fatal(err)
	}
	var a, b int
	db.QueryRowContext(ctx, "SELECT count(*) FROM pragma_table_info('chat_messages')").Scan(&a)
	db.QueryRowContext(ctx, "SELECT count(*) FROM pragma_table_info('chat_messages_copy')").Scan(&b)
	if a == 0 || a != b {
		t.Fatalf("columns: %d vs %d", a, b)
	}
}

// A search_path naming a schema that does not exist is refused when the
// database is opened, naming the schema and how to create it, instead of
// failing later with "no schema has been selected to create in".
func TestOpenPostgresNamesAMissingSchema(t *testing.T) {
	t.Parallel()
	u, err := url.Parse(schematest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", "no_such_schema_here")
	u.RawQuery = q.Encode()
	db, err := schema.OpenPostgres(context.Background(), u.String(), 1)
	if err == nil {
		db.Close()
		t.Fatal("opened a database whose search_path names no existing schema")
	}
	for _, want := range []string{`schema "no_such_schema_here"`, "does not exist", "CREATE SCHEMA no_such_schema_here"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// A read-only open creates nothing, reads what a writer committed (also while
// the writer still holds the database open) and refuses writes.
func TestOpenSQLiteReadOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	missing := filepath.Join(dir, "nothing", "read.db")
	if db, err := schema.OpenSQLite(missing, schema.SQLiteOptions{Mode: schema.SQLiteReadOnly}); err == nil {
		db.Close()
		t.Fatal("a missing database opened read-only")
	}
	if _, err := os.Stat(filepath.Dir(missing)); !os.IsNotExist(err) {
		t.Fatalf("the read-only open created its directory: %v", err)
	}
	path := filepath.Join(dir, "read.db")
	w, err := schema.OpenSQLite(path, schema.SQLiteOptions{Mode: schema.SQLiteWriter})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := schema.Migrate(ctx, w, schema.ReadModels); err != nil {
		t.Fatal(err)
	}
	if _, err := w.ExecContext(ctx, "INSERT INTO app_status (app_id, status, updated_at, updated_by) VALUES ('a1', 'active', 1, 'u')"); err != nil {
		t.Fatal(err)
	}
	for _, writerOpen := range []bool{true, false} {
		if !writerOpen {
			w.Close()
		}
		before, _ := os.ReadDir(dir)
		ro, err := schema.OpenSQLite(path, schema.SQLiteOptions{Mode: schema.SQLiteReadOnly})
		if err != nil {
			t.Fatalf("writer open %v: %v", writerOpen, err)
		}
		var n int
		if err := ro.QueryRowContext(ctx, "SELECT count(*) FROM app_status").Scan(&n); err != nil || n != 1 {
			t.Errorf("writer open %v: read %d rows, %v", writerOpen, n, err)
		}
		if _, err := ro.ExecContext(ctx, "DELETE FROM app_status"); err == nil {
			t.Errorf("writer open %v: a read-only connection deleted rows", writerOpen)
		}
		ro.Close()
		if created := after(dir, before); len(created) > 0 {
			t.Errorf("writer open %v: the read-only open left files behind: %v", writerOpen, created)
		}
	}
	// A writer that opens while the reader holds the database does not
	// disturb it, and the reader still refuses writes.
	ro, err := schema.OpenSQLite(path, schema.SQLiteOptions{Mode: schema.SQLiteReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	w2, err := schema.OpenSQLite(path, schema.SQLiteOptions{Mode: schema.SQLiteWriter})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	if _, err := w2.ExecContext(ctx, "INSERT INTO app_status (app_id, status, updated_at, updated_by) VALUES ('a2', 'active', 2, 'u')"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := ro.QueryRowContext(ctx, "SELECT count(*) FROM app_status").Scan(&n); err != nil || n < 1 {
		t.Errorf("read beside a new writer: %d rows, %v", n, err)
	}
	if _, err := ro.ExecContext(ctx, "DELETE FROM app_status"); err == nil {
		t.Error("the read-only connection deleted rows beside a writer")
	}
}

// Each in-memory database is its own: two never see each other's tables.
func TestOpenSQLiteMemory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, err := schema.OpenSQLiteMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := schema.OpenSQLiteMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := schema.Migrate(ctx, a, schema.ReadModels); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ExecContext(ctx, "INSERT INTO app_status (app_id, status, updated_at, updated_by) VALUES ('a1', 'active', 1, 'u')"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := a.QueryRowContext(ctx, "SELECT count(*) FROM app_status").Scan(&n); err != nil || n != 1 {
		t.Fatalf("memory database a: %d rows, %v", n, err)
	}
	if err := b.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE name = 'app_status'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("memory database b sees a's table: %d, %v", n, err)
	}
}

// after returns the names in dir that were not in before.
func after(dir string, before []os.DirEntry) []string {
	had := map[string]bool{}
	for _, e := range before {
		had[e.Name()] = true
	}
	now, _ := os.ReadDir(dir)
	var out []string
	for _, e := range now {
		if !had[e.Name()] {
			out = append(out, e.Name())
		}
	}
	return out
}
