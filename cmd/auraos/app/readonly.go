package app

import (
	"context"
	"errors"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"

	"github.com/uptrace/bun"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/schema"
)

// OpenReadDBReadOnly opens the read-model database c selects for reading
// only, for readers such as `auraos query` that must leave a live
// installation exactly as it was: it creates no file or directory, applies
// no migration, and the database itself refuses writes (SQLite's mode=ro;
// PostgreSQL sessions with default_transaction_read_only). A running server
// may keep writing meanwhile. It returns EUNAVAILABLE when there is no such
// database or it cannot be opened, and an EINVALID error for a --read-db of
// no known kind.
func (c *Storage) OpenReadDBReadOnly(ctx context.Context) (*bun.DB, error) {
	switch {
	case c.ReadDB == "" || c.ReadDB == "sqlite":
		path := filepath.Join(c.DataDir, readModelFile)
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, domain.Errorf(domain.EUNAVAILABLE, "no read database at %s: give the --data-dir a server uses, or run auraos migrate or serve there first", path)
		}
		db, err := schema.OpenSQLite(path, schema.SQLiteOptions{Mode: schema.SQLiteReadOnly})
		if err != nil {
			return nil, domain.WrapError(domain.EUNAVAILABLE, "read database unavailable", err)
		}
		return db, nil
	case schema.IsPostgresURL(c.ReadDB):
		u, err := url.Parse(c.ReadDB)
		if err != nil {
			return nil, domain.Errorf(domain.EINVALID, "--read-db %q is not a URL", schema.RedactURL(c.ReadDB))
		}
		q := u.Query()
		// lib/pq passes parameters it does not know to the server as run-time
		// settings of every session it opens.
		q.Set("default_transaction_read_only", "on")
		u.RawQuery = q.Encode()
		db, err := schema.OpenPostgres(ctx, u.String(), 2)
		if err != nil {
			return nil, domain.WrapError(domain.EUNAVAILABLE, "read database unavailable", err)
		}
		return db, nil
	default:
		return nil, domain.Errorf(domain.EINVALID, "--read-db %q: want empty (SQLite in --data-dir) or a postgres:// URL", schema.RedactURL(c.ReadDB))
	}
}
