package sqlstore_test

import (
	"context"
	"testing"

	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/sqlstore"
	"github.com/auraos/realtime/eventstore/storetest"
	"github.com/auraos/realtime/schema/schematest"
)

func openSQLite(t *testing.T, dir string) *sqlstore.Store {
	t.Helper()
	return openSQLiteWith(t, dir, sqlstore.Options{})
}

// openSQLiteWith opens a store on dir with opts, closed when the test ends;
// several on one dir stand for several processes.
func openSQLiteWith(t *testing.T, dir string, opts sqlstore.Options) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.OpenSQLite(context.Background(), dir, opts)
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

func postgresURL(t testing.TB) string { return schematest.PostgresURL(t) }

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
