// Package sqlstoretest opens SQL event stores for other packages' tests.
package sqlstoretest

import (
	"context"
	"testing"

	"github.com/auraos/realtime/eventstore/sqlstore"
)

// OpenSQLite opens an embedded SQLite event store in a fresh temporary
// directory, closed when the test ends; it fails the test if the store
// cannot be opened.
func OpenSQLite(t testing.TB, opts sqlstore.Options) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.OpenSQLite(context.Background(), t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
