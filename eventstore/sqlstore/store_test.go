package sqlstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/sqlstore"
	"github.com/auraos/realtime/eventstore/storetest"
	"github.com/auraos/realtime/schema"
)

func openSQLite(t *testing.T, dir string) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.OpenSQLite(context.Background(), dir, sqlstore.Options{})
	if err != nil {
		t.Fatalf("open sqlite store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSQLiteContract(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) eventstore.Store { return openSQLite(t, t.TempDir()) })
}

// postgresURL returns a URL to a fresh, empty schema of the test database,
// dropped when the test ends, or skips the test when AURAOS_TEST_POSTGRES_URL
// is not set.
func postgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv("AURAOS_TEST_POSTGRES_URL")
	if base == "" {
		t.Skip("PostgreSQL tests skipped: set AURAOS_TEST_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable) to run them")
	}
	ctx := context.Background()
	db, err := schema.OpenPostgres(ctx, base, 2)
	if err != nil {
		t.Fatalf("AURAOS_TEST_POSTGRES_URL is set but unreachable: %v", err)
	}
	defer db.Close()
	var b [6]byte
	rand.Read(b[:])
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
		db.ExecContext(context.Background(), "DROP SCHEMA "+name+" CASCADE")
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse AURAOS_TEST_POSTGRES_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String()
}

func openPostgres(t *testing.T, dsn string) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.OpenPostgres(context.Background(), dsn, sqlstore.Options{})
	if err != nil {
		t.Fatalf("open postgres store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestPostgresContract(t *testing.T) {
	t.Parallel()
	postgresURL(t) // skip early, with the message, when PostgreSQL is not configured
	storetest.Run(t, func(t *testing.T) eventstore.Store { return openPostgres(t, postgresURL(t)) })
}
