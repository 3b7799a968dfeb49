package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/uptrace/bun"

	"github.com/spf13/pflag"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/esdb"
	"github.com/auraos/realtime/eventstore/shred"
	"github.com/auraos/realtime/eventstore/sqlstore"
	"github.com/auraos/realtime/internal/redact"
	"github.com/auraos/realtime/schema"
)

// Storage says where the event log and the read models live, as the
// storage flags every command shares set it: DataDir holds the embedded
// SQLite databases; EventStore is "sqlite" (or empty), a postgres:// URL,
// or an esdb:// or esdb+discover:// connection string; ReadDB is empty
// (SQLite in DataDir) or a postgres:// URL; KeyEncryptionKey is empty or
// the base64 key-encryption key that wraps the data keys of personal data.
type Storage struct {
	DataDir          string
	EventStore       string
	ReadDB           string
	KeyEncryptionKey string
	// PersonalDataInClear turns encryption of new events off (see
	// shred.Store.AppendInClear).
	PersonalDataInClear bool
}

// Register adds the storage flags to flags, with their defaults.
func (c *Storage) Register(flags *pflag.FlagSet) {
	flags.StringVar(&c.DataDir, "data-dir", "./data", "directory of the embedded SQLite databases (event store and read models)")
	flags.StringVar(&c.EventStore, "event-store", "sqlite", `event store: "sqlite" (embedded, in --data-dir), a postgres:// URL, or an esdb:// or esdb+discover:// EventStoreDB/KurrentDB connection string`)
	flags.StringVar(&c.ReadDB, "read-db", "", `read-model database: empty for SQLite in --data-dir, or a postgres:// URL`)
	flags.BoolVar(&c.PersonalDataInClear, "personal-data-in-clear", false, "store new events' personal fields unencrypted (they cannot be forgotten): only for servers that share an event store but not a read database, whose key tables would differ")
	flags.StringVar(&c.KeyEncryptionKey, "key-encryption-key", "", "32 random bytes in base64 that wrap every user's data key in the key table (a secret; empty: keys are stored unwrapped); every command must then be given the same one")
}

// kek returns the key-encryption key, nil when none is set, or an EINVALID
// error for a malformed one.
func (c *Storage) kek() ([]byte, error) {
	if c.KeyEncryptionKey == "" {
		return nil, nil
	}
	return shred.ParseKEK(c.KeyEncryptionKey)
}

// keysTable is the read-model table of the data keys.
const keysTable = "user_keys"

// Keys returns the key table in the read database rdb under the
// key-encryption key the flags give: EINVALID for a malformed or wrong
// key-encryption key, EUNAVAILABLE when rdb fails. A read database
// without the table (one written before encryption existed, opened
// read-only) holds no keys. A writable rdb records in an empty table how
// its keys will be wrapped, so a later start with another
// key-encryption key is refused even before any key exists.
func (c *Storage) Keys(ctx context.Context, rdb ReadDB) (shred.Keys, error) {
	return c.keys(ctx, rdb, false)
}

func (c *Storage) keys(ctx context.Context, rdb ReadDB, writable bool) (shred.Keys, error) {
	kek, err := c.kek()
	if err != nil {
		return nil, err
	}
	ok, err := schema.HasTable(ctx, rdb.Reader, keysTable)
	if err != nil {
		return nil, domain.WrapError(domain.EUNAVAILABLE, "read database unavailable", err)
	}
	if !ok {
		return shred.NoKeys{}, nil
	}
	keys, err := shred.OpenSQLKeys(ctx, rdb.Writer, rdb.Reader, kek)
	if err == nil && writable {
		err = keys.RecordWrapping(ctx)
	}
	if err != nil {
		return nil, err
	}
	return keys, nil
}

// shredded wraps store so that personal fields are encrypted at append and
// decrypted (or shown as erased) on every read, with the keys in rdb. On
// failure it closes both.
func (c *Storage) shredded(ctx context.Context, store eventstore.Store, rdb ReadDB, writable bool) (*shred.Store, ReadDB, error) {
	keys, err := c.keys(ctx, rdb, writable)
	var s *shred.Store
	if err == nil {
		s, err = shred.New(ctx, store, keys)
	}
	if err == nil && c.PersonalDataInClear {
		s.AppendInClear()
	}
	if err != nil {
		store.Close()
		rdb.Close()
		return nil, ReadDB{}, err
	}
	return s, rdb, nil
}

// UsesDataDir reports whether the event store or the read models are the
// embedded SQLite databases in DataDir.
func (c *Storage) UsesDataDir() bool {
	return c.EventStore == "" || c.EventStore == "sqlite" || c.ReadDB == "" || c.ReadDB == "sqlite"
}

// ReadDB is the read-model database: a writer for runners and rebuilds, a
// reader pool for queries (the same pool on PostgreSQL).
type ReadDB struct {
	Writer, Reader *bun.DB
}

// Close closes both pools.
func (r ReadDB) Close() error {
	err := r.Writer.Close()
	if r.Reader != r.Writer {
		err = errors.Join(err, r.Reader.Close())
	}
	return err
}

// readModelFile is the SQLite read-model database inside the data directory.
const readModelFile = "read.db"

// OpenReadDB opens and migrates the read-model database the flags select.
// The SQLite read models sync with synchronous=NORMAL: they can always be
// rebuilt from the log, and their checkpoint commits with their rows.
func (c *Storage) OpenReadDB(ctx context.Context) (ReadDB, error) {
	var r ReadDB
	switch {
	case c.ReadDB == "" || c.ReadDB == "sqlite":
		path := filepath.Join(c.DataDir, readModelFile)
		// Secure delete: forgotten keys and the rewritten rows of forgotten
		// users must not stay behind in free pages.
		w, err := schema.OpenSQLite(path, schema.SQLiteOptions{Mode: schema.SQLiteWriter, Synchronous: "NORMAL", SecureDelete: true})
		if err != nil {
			return r, domain.WrapError(domain.EUNAVAILABLE, "read database unavailable", err)
		}
		rd, err := schema.OpenSQLite(path, schema.SQLiteOptions{Mode: schema.SQLiteReader, Synchronous: "NORMAL", MaxReaders: 8, SecureDelete: true})
		if err != nil {
			w.Close()
			return r, domain.WrapError(domain.EUNAVAILABLE, "read database unavailable", err)
		}
		r = ReadDB{Writer: w, Reader: rd}
	case schema.IsPostgresURL(c.ReadDB):
		db, err := schema.OpenPostgres(ctx, c.ReadDB, 16)
		if err != nil {
			return r, domain.WrapError(domain.EUNAVAILABLE, "read database unavailable", err)
		}
		r = ReadDB{Writer: db, Reader: db}
	default:
		return r, c.unknownReadDB()
	}
	if err := schema.Migrate(ctx, r.Writer, schema.ReadModels); err != nil {
		r.Close()
		return ReadDB{}, err
	}
	return r, nil
}

// OpenEventStore opens the event store the flags select; opts tune the SQL
// stores (their logger also serves EventStoreDB).
func (c *Storage) OpenEventStore(ctx context.Context, opts sqlstore.Options) (eventstore.Store, error) {
	switch {
	case c.EventStore == "" || c.EventStore == "sqlite":
		return sqlstore.OpenSQLite(ctx, c.DataDir, opts)
	case schema.IsPostgresURL(c.EventStore):
		return sqlstore.OpenPostgres(ctx, c.EventStore, opts)
	case isESDBURL(c.EventStore):
		return esdb.Open(ctx, c.EventStore, esdb.Options{Logger: opts.Logger})
	default:
		return nil, c.unknownEventStore()
	}
}

// unknownEventStore says what --event-store takes. The embedded store is
// named by a word and placed by --data-dir; an operator who tries a
// sqlite:// URL or a file name is told so rather than only that the kind
// is unknown.
func (c *Storage) unknownEventStore() error {
	shown := redact.Text(c.EventStore)
	if looksLikeSQLite(c.EventStore) {
		return fmt.Errorf("--event-store %q: the embedded SQLite store takes no URL or file name: give --event-store sqlite (the default) together with --data-dir DIR, the directory of its events.db", shown)
	}
	want := "want sqlite together with --data-dir DIR, a postgres:// URL, or an esdb:// or esdb+discover:// connection string"
	if scheme, _, ok := strings.Cut(c.EventStore, "://"); ok {
		return fmt.Errorf("--event-store %q: unknown kind %q (%s)", shown, scheme, want)
	}
	return fmt.Errorf("--event-store %q: not an event store (%s)", shown, want)
}

func (c *Storage) unknownReadDB() error {
	shown := redact.Text(c.ReadDB)
	if looksLikeSQLite(c.ReadDB) {
		return fmt.Errorf("--read-db %q: the embedded SQLite read models take no URL or file name: leave --read-db empty and give --data-dir DIR, the directory of their %s", shown, readModelFile)
	}
	return domain.Errorf(domain.EINVALID, "--read-db %q: want empty (SQLite in --data-dir) or a postgres:// URL", shown)
}

// looksLikeSQLite reports whether s names SQLite the way other programs
// do: a sqlite: or file: URL, or a database file.
func looksLikeSQLite(s string) bool {
	scheme, _, ok := strings.Cut(strings.ToLower(s), ":")
	return ok && (scheme == "sqlite" || scheme == "sqlite3" || scheme == "file") || strings.HasSuffix(strings.ToLower(s), ".db")
}

// OpenEventStoreReadOnly opens the event store the flags select for the
// commands that only read: nothing is created or migrated, and a store
// that is not there is an error saying where it was looked for, rather
// than an empty log.
func (c *Storage) OpenEventStoreReadOnly(ctx context.Context, opts sqlstore.Options) (eventstore.Store, error) {
	var store *sqlstore.Store
	var err error
	var hint string
	switch {
	case c.EventStore == "" || c.EventStore == "sqlite":
		store, err = sqlstore.OpenSQLiteReadOnly(ctx, c.DataDir, opts)
		hint = "serve creates it, or check --data-dir"
	case schema.IsPostgresURL(c.EventStore):
		store, err = sqlstore.OpenPostgresReadOnly(ctx, c.EventStore, opts)
		hint = "serve or migrate creates it, or check --event-store"
	case isESDBURL(c.EventStore):
		// Opening an EventStoreDB store only reads.
		return esdb.Open(ctx, c.EventStore, esdb.Options{Logger: opts.Logger})
	default:
		return nil, c.unknownEventStore()
	}
	if errors.Is(err, sqlstore.ErrNoStore) {
		return nil, fmt.Errorf("%w; %s", err, hint)
	}
	if err != nil {
		return nil, err
	}
	return store, nil
}

// OpenReadDBReadOnly opens the read-model database the flags select for
// the commands that only read, creating and migrating nothing; read models
// that are not there are an error saying where they were looked for.
func (c *Storage) OpenReadDBReadOnly(ctx context.Context) (ReadDB, error) {
	var db *bun.DB
	var err error
	var noTable string // what to say when the database has no read models
	switch {
	case c.ReadDB == "" || c.ReadDB == "sqlite":
		db, err = schema.OpenSQLiteReadOnly(filepath.Join(c.DataDir, readModelFile), 8)
		if errors.Is(err, fs.ErrNotExist) {
			return ReadDB{}, domain.Errorf(domain.EUNAVAILABLE, "no read models in %s (%s not found); serve creates them, or check --data-dir", c.DataDir, readModelFile)
		}
		noTable = fmt.Sprintf("no read models in %s (%s has no %s table); serve creates them, or check --data-dir", c.DataDir, readModelFile, checkpointsTable)
	case schema.IsPostgresURL(c.ReadDB):
		// lib/pq passes parameters it does not know to the server as
		// run-time settings of every session it opens: these sessions
		// refuse writes.
		dsn := c.ReadDB
		if u, perr := url.Parse(dsn); perr == nil {
			q := u.Query()
			q.Set("default_transaction_read_only", "on")
			u.RawQuery = q.Encode()
			dsn = u.String()
		}
		db, err = schema.OpenPostgres(ctx, dsn, 4)
		noTable = fmt.Sprintf("no read models in %s (its schema has no %s table); serve or migrate creates them, or check --read-db", redact.Text(c.ReadDB), checkpointsTable)
	default:
		return ReadDB{}, c.unknownReadDB()
	}
	if err != nil {
		return ReadDB{}, domain.WrapError(domain.EUNAVAILABLE, "read database unavailable", err)
	}
	ok, err := schema.HasTable(ctx, db, checkpointsTable)
	if err == nil && !ok {
		err = domain.Errorf(domain.EUNAVAILABLE, "%s", noTable)
	}
	if err != nil {
		db.Close()
		return ReadDB{}, err
	}
	return ReadDB{Writer: db, Reader: db}, nil
}

// checkpointsTable is the read models' table every projection writes to.
const checkpointsTable = "projection_checkpoints"

// OpenReadOnly is Open for the commands that only read: it creates and
// migrates nothing.
func (c *Storage) OpenReadOnly(ctx context.Context, opts sqlstore.Options) (*shred.Store, ReadDB, error) {
	store, rdb, err := openBoth(func() (eventstore.Store, error) { return c.OpenEventStoreReadOnly(ctx, opts) },
		func() (ReadDB, error) { return c.OpenReadDBReadOnly(ctx) })
	if err != nil {
		return nil, ReadDB{}, err
	}
	return c.shredded(ctx, store, rdb, false)
}

// Open opens (creating and migrating what is missing) the event store and
// then the read-model database, and returns the event store wrapped so
// that personal fields are encrypted at append and decrypted on every read
// with the keys of the read database (every read path of a process goes
// through it). The caller closes both.
func (c *Storage) Open(ctx context.Context, opts sqlstore.Options) (*shred.Store, ReadDB, error) {
	store, rdb, err := openBoth(func() (eventstore.Store, error) { return c.OpenEventStore(ctx, opts) },
		func() (ReadDB, error) { return c.OpenReadDB(ctx) })
	if err != nil {
		return nil, ReadDB{}, err
	}
	return c.shredded(ctx, store, rdb, true)
}

// OpenLogReadOnly opens the event store read-only, as
// OpenEventStoreReadOnly does, wrapped so that personal fields read
// decrypted, or erased for forgotten users, with the keys of the read
// database opened read-only: what `events read` and `query --at` show.
// With the SQLite read database not there yet, no key exists, and every
// encrypted field reads as erased. Closing the store closes the keys' database.
func (c *Storage) OpenLogReadOnly(ctx context.Context, opts sqlstore.Options) (eventstore.Store, error) {
	if _, err := c.kek(); err != nil {
		return nil, err
	}
	store, err := c.OpenEventStoreReadOnly(ctx, opts)
	if err != nil {
		return nil, err
	}
	sqlite := c.ReadDB == "" || c.ReadDB == "sqlite"
	if _, statErr := os.Stat(filepath.Join(c.DataDir, readModelFile)); sqlite && errors.Is(statErr, fs.ErrNotExist) {
		slog.Warn("no read database, so no key table: encrypted personal fields show as erased; give the --data-dir or --read-db of the read models to read them", "data_dir", c.DataDir)
		s, err := shred.New(ctx, store, shred.NoKeys{})
		if err != nil {
			store.Close()
			return nil, err
		}
		return s, nil
	}
	rdb, err := c.OpenReadDBReadOnly(ctx)
	if err != nil {
		store.Close()
		return nil, err
	}
	s, rdb, err := c.shredded(ctx, store, rdb, false)
	if err != nil {
		return nil, err
	}
	return closingStore{Store: s, also: rdb.Close}, nil
}

// closingStore is a store whose Close also closes what its wrapping
// needed.
type closingStore struct {
	eventstore.Store
	also func() error
}

// Close closes the store, then the rest.
func (s closingStore) Close() error { return errors.Join(s.Store.Close(), s.also()) }

// openBoth opens the event store and then the read-model database with the
// openers given; if the second fails, the first is closed again.
func openBoth(openStore func() (eventstore.Store, error), openRead func() (ReadDB, error)) (eventstore.Store, ReadDB, error) {
	store, err := openStore()
	if err != nil {
		return nil, ReadDB{}, err
	}
	rdb, err := openRead()
	if err != nil {
		store.Close()
		return nil, ReadDB{}, err
	}
	return store, rdb, nil
}

// isESDBURL reports whether s is an EventStoreDB/KurrentDB connection string.
func isESDBURL(s string) bool {
	return strings.HasPrefix(s, "esdb://") || strings.HasPrefix(s, "esdb+discover://")
}
