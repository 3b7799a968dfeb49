// Package schematest gives tests fresh databases: a PostgreSQL schema of
// their own (when AURAOS_TEST_POSTGRES_URL is set) or a SQLite file.
package schematest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/uptrace/bun"

	"github.com/auraos/realtime/schema"
)

// PostgresEnv names the variable that points tests at a PostgreSQL database.
const PostgresEnv = "AURAOS_TEST_POSTGRES_URL"

// PostgresURL returns a URL to a fresh, empty schema of the test database,
// dropped when the test ends. It skips the test, saying why, when
// AURAOS_TEST_POSTGRES_URL is not set, and fails it when the variable is set
// but the database cannot be reached.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(PostgresEnv)
	if base == "" {
		t.Skip("PostgreSQL tests skipped: set " + PostgresEnv + " (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable) to run them")
	}
	ctx := context.Background()
	db, err := schema.OpenPostgres(ctx, base, 1)
	if err != nil {
		t.Fatalf("%s is set but unreachable: %v", PostgresEnv, err)
	}
	defer db.Close()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "test_" + hex.EncodeToString(b[:])
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+name); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		db, err := schema.OpenPostgres(context.Background(), base, 1)
		if err != nil {
			return
		}
		defer db.Close()
		_, _ = db.ExecContext(context.Background(), "DROP SCHEMA "+name+" CASCADE")
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %s: %v", PostgresEnv, err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String()
}

// ReadDB is a migrated read-model database for a test.
type ReadDB struct {
	Name string // "sqlite" or "postgres"
	// Writer is for runners and rebuilds; Reader for queries. On PostgreSQL
	// both are one pool.
	Writer, Reader *bun.DB
}

// OpenReadDB opens a migrated read-model database of the given kind
// ("sqlite" or "postgres"), closed when the test ends.
func OpenReadDB(t testing.TB, kind string) ReadDB {
	t.Helper()
	ctx := context.Background()
	var rdb ReadDB
	switch kind {
	case "sqlite":
		path := filepath.Join(t.TempDir(), "read.db")
		w, err := schema.OpenSQLite(path, schema.SQLiteOptions{Mode: schema.SQLiteWriter, Synchronous: "NORMAL"})
		if err != nil {
			t.Fatal(err)
		}
		r, err := schema.OpenSQLite(path, schema.SQLiteOptions{Mode: schema.SQLiteReader, Synchronous: "NORMAL"})
		if err != nil {
			t.Fatal(err)
		}
		rdb = ReadDB{Name: kind, Writer: w, Reader: r}
	case "postgres":
		db, err := schema.OpenPostgres(ctx, PostgresURL(t), 4)
		if err != nil {
			t.Fatal(err)
		}
		rdb = ReadDB{Name: kind, Writer: db, Reader: db}
	default:
		t.Fatalf("unknown read database kind %q", kind)
	}
	t.Cleanup(func() {
		rdb.Writer.Close()
		if rdb.Reader != rdb.Writer {
			rdb.Reader.Close()
		}
	})
	if err := schema.Migrate(ctx, rdb.Writer, schema.ReadModels); err != nil {
		t.Fatalf("migrate read models: %v", err)
	}
	return rdb
}

// Kinds returns the read-database kinds to test: SQLite always, PostgreSQL
// when configured.
func Kinds() []string {
	if os.Getenv(PostgresEnv) != "" {
		return []string{"sqlite", "postgres"}
	}
	return []string{"sqlite"}
}
