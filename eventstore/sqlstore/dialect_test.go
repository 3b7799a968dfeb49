package sqlstore

import "testing"

// The statements are part of the store's contract with the database (the
// driver's parameter limits, PostgreSQL's prepared-statement cache), so they
// are pinned here byte for byte.
func TestInsertStatementPlaceholders(t *testing.T) {
	t.Parallel()
	rows := rowsAt(7, 2)
	const prefix = "INSERT INTO events (position, event_id, stream, version, type, data, metadata, created_at, hash) VALUES "
	for _, tc := range []struct {
		name string
		d    dialect
		want string
	}{
		{"sqlite", sqliteDialect{}, prefix + "(?,?,?,?,?,?,?,?,?),(?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING"},
		{"postgres", newPGDialect("public"), prefix + "($1,$2,$3,$4,$5,$6,$7,$8,$9),($10,$11,$12,$13,$14,$15,$16,$17,$18) ON CONFLICT DO NOTHING"},
	} {
		query, args := insertStatement(tc.d, rows)
		if query != tc.want {
			t.Errorf("%s: got\n%s\nwant\n%s", tc.name, query, tc.want)
		}
		if len(args) != 18 || args[0] != int64(7) || args[9] != int64(8) || args[1] != rows[0].EventID {
			t.Errorf("%s: args %v", tc.name, args)
		}
	}
}

// Every process on a schema must derive the same lock and channel from it,
// servers of the previous release included while a deployment rolls (so the
// values for "public" are pinned), and a store must recognize its own
// notices and only those.
func TestPGDialectPerSchema(t *testing.T) {
	t.Parallel()
	a, b, other := newPGDialect("public"), newPGDialect("public"), newPGDialect("tenant_2")
	if a.lockKey != -7985979842212580616 || a.notifyChannel != "auraos_events_912c19a5217d32f8" {
		t.Fatalf("public: lock %d, channel %q", a.lockKey, a.notifyChannel)
	}
	if a.lockKey != b.lockKey || a.notifyChannel != b.notifyChannel {
		t.Fatalf("one schema, two locks or channels: %+v %+v", a, b)
	}
	if a.lockKey == other.lockKey || a.notifyChannel == other.notifyChannel {
		t.Fatalf("two schemas share a lock or channel: %+v %+v", a, other)
	}
	if a.instance == b.instance {
		t.Fatal("two stores share an instance name")
	}
	if n := a.notice(42); !a.ownNotice(n) || b.ownNotice(n) || n != a.instance+":42" {
		t.Fatalf("notice %q: own %v, other's %v", n, a.ownNotice(n), b.ownNotice(n))
	}
}
