package schema_test

import (
	"context"
	"net/url"
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
