package shred

import (
	"context"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/auraos/realtime/domain"
)

// keyRow is a row of user_keys (created by the read-model migrations in
// schema).
type keyRow struct {
	bun.BaseModel `bun:"table:user_keys"`

	KeyID     string `bun:"key_id,pk"`
	UserID    string `bun:"user_id"`
	Key       []byte `bun:"key"`
	Wrapping  string `bun:"wrapping"`
	CreatedAt int64  `bun:"created_at"`
}

// tombstoneRow is a row of forgotten_keys.
type tombstoneRow struct {
	bun.BaseModel `bun:"table:forgotten_keys"`

	UserID      string `bun:"user_id,pk"`
	ForgottenAt int64  `bun:"forgotten_at"`
}

// ParseKEK reads a key-encryption key: 32 bytes in standard or URL-safe
// base64, padded or not. It returns an EINVALID error otherwise.
func ParseKEK(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != keySize {
				return nil, domain.Errorf(domain.EINVALID, "--key-encryption-key must be %d bytes in base64, not %d bytes", keySize, len(b))
			}
			return b, nil
		}
	}
	return nil, domain.Errorf(domain.EINVALID, "--key-encryption-key is not base64 (want %d random bytes, e.g. from `openssl rand -base64 32`)", keySize)
}

// SQLKeys is the key table in the read database (SQLite or PostgreSQL):
// user_keys and forgotten_keys. With a key-encryption key every data key is
// stored wrapped (AES-256-GCM), so a copy of the databases alone reveals no
// personal data.
type SQLKeys struct {
	db       bun.IDB     // writes
	reader   bun.IDB     // lookups
	kek      cipher.AEAD // nil: keys are stored unwrapped
	wrapping string      // the wrapping column of the rows this table writes
	now      func() time.Time
	postgres bool
}

// OpenSQLKeys returns the key table in the read database whose
// read-model migrations have run: writer for new keys and forgets, reader
// for lookups (the same pool on PostgreSQL; on SQLite the reader pool, so
// that a lookup never waits for the one writer connection a projection's
// transaction holds). kek is nil, or the 32-byte key-encryption key. It checks the keys
// already stored against kek and refuses, with an EINVALID error that says
// what to do, a KEK other than the one that wrapped them, a KEK for keys
// stored unwrapped, and no KEK for wrapped keys; EUNAVAILABLE when db cannot
// be read.
func OpenSQLKeys(ctx context.Context, writer, reader bun.IDB, kek []byte) (*SQLKeys, error) {
	k := &SQLKeys{db: writer, reader: reader, now: time.Now, postgres: writer.Dialect().Name() == dialect.PG}
	if kek != nil {
		aead, err := newAEAD(kek)
		if err != nil {
			return nil, domain.WrapError(domain.EINVALID, "--key-encryption-key", err)
		}
		k.kek, k.wrapping = aead, kekFingerprint(kek)
	}
	var kinds []string
	if err := reader.NewSelect().Model((*keyRow)(nil)).ColumnExpr("DISTINCT wrapping").Scan(ctx, &kinds); err != nil {
		return nil, unavailable("read the key table", err)
	}
	for _, w := range kinds {
		switch {
		case w == k.wrapping:
		case w == "":
			return nil, domain.Errorf(domain.EINVALID, "the key table holds keys stored unwrapped, but a --key-encryption-key is set: start without it (keys cannot be wrapped after the fact yet)")
		case k.wrapping == "":
			return nil, domain.Errorf(domain.EINVALID, "the key table's keys are wrapped by a key-encryption key: give it with --key-encryption-key or AURAOS_KEY_ENCRYPTION_KEY")
		default:
			return nil, domain.Errorf(domain.EINVALID, "--key-encryption-key is not the key that wrapped the stored keys (it is wrong, or the key table comes from another installation)")
		}
	}
	return k, nil
}

// wrappingRow is the key id of the row that records, in a key table that
// holds no key yet, how its keys are wrapped; its user id is empty, which
// no user has, so no lookup finds it.
const wrappingRow = "wrapping"

// RecordWrapping records in an empty key table how this table wraps keys
// (under which key-encryption key, or none), so that a later start with
// another key-encryption key, or without one, is refused before any user's
// key exists. Writers call it once at open; on a table that holds keys it
// does nothing. It returns EUNAVAILABLE when the database fails.
func (k *SQLKeys) RecordWrapping(ctx context.Context) error {
	r := keyRow{KeyID: wrappingRow, UserID: "", Key: k.wrap(wrappingRow, make([]byte, keySize)), Wrapping: k.wrapping, CreatedAt: k.now().UnixMicro()}
	if k.wrapping == "" {
		return nil // an unwrapped table is told apart by its first key
	}
	if _, err := k.db.NewInsert().Model(&r).On("CONFLICT (key_id) DO NOTHING").Exec(ctx); err != nil {
		return unavailable("record the key wrapping", err)
	}
	return nil
}

// kekFingerprint names a KEK without revealing it: an HMAC of a fixed text
// under it, so a wrong KEK is recognised at start rather than by failing
// decryptions.
func kekFingerprint(kek []byte) string {
	m := hmac.New(sha256.New, kek)
	m.Write([]byte("auraos key-encryption key check"))
	return "kek1:" + hex.EncodeToString(m.Sum(nil)[:8])
}

// unavailable wraps a key-table failure as EUNAVAILABLE.
func unavailable(what string, err error) error {
	if domain.ErrorCode(err) != domain.EINTERNAL {
		return err
	}
	return domain.WrapError(domain.EUNAVAILABLE, "key table unavailable: "+what, err)
}

// wrap returns the stored form of a data key.
func (k *SQLKeys) wrap(keyID string, key []byte) []byte {
	if k.kek == nil {
		return key
	}
	return seal(k.kek, key, []byte(keyID))
}

// unwrap reverses wrap.
func (k *SQLKeys) unwrap(r keyRow) ([]byte, error) {
	if k.kek == nil {
		return r.Key, nil
	}
	key, err := open(k.kek, r.Key, []byte(r.KeyID))
	if err != nil {
		return nil, domain.WrapError(domain.EINTERNAL, "key "+r.KeyID+" does not unwrap under the key-encryption key", err)
	}
	return key, nil
}

// Keys implements Keys: one query per 500 ids.
func (k *SQLKeys) Keys(ctx context.Context, keyIDs []string) (map[string]StoredKey, error) {
	out := make(map[string]StoredKey, len(keyIDs))
	for start := 0; start < len(keyIDs); start += 500 {
		var rows []keyRow
		chunk := keyIDs[start:min(start+500, len(keyIDs))]
		if err := k.reader.NewSelect().Model(&rows).Where("key_id IN (?)", bun.List(chunk)).Where("user_id <> ''").Scan(ctx); err != nil {
			return nil, unavailable("read keys", err)
		}
		for _, r := range rows {
			key, err := k.unwrap(r)
			if err != nil {
				return nil, err
			}
			out[r.KeyID] = StoredKey{UserID: r.UserID, Key: key}
		}
	}
	return out, nil
}

// CurrentKey returns the newest key of userID; found is false when the
// user has none.
func (k *SQLKeys) CurrentKey(ctx context.Context, userID string) (string, []byte, bool, error) {
	var r keyRow
	err := k.reader.NewSelect().Model(&r).Where("user_id = ?", userID).OrderExpr("created_at DESC, key_id DESC").Limit(1).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil, false, nil
	}
	if err != nil {
		return "", nil, false, unavailable("read a user's key", err)
	}
	key, err := k.unwrap(r)
	return r.KeyID, key, err == nil, err
}

// CurrentKeys implements Keys: one query per 500 users.
func (k *SQLKeys) CurrentKeys(ctx context.Context, userIDs []string) (map[string]CurrentKey, error) {
	out := make(map[string]CurrentKey, len(userIDs))
	newest := make(map[string]keyRow, len(userIDs))
	for start := 0; start < len(userIDs); start += 500 {
		var rows []keyRow
		chunk := userIDs[start:min(start+500, len(userIDs))]
		if err := k.reader.NewSelect().Model(&rows).Where("user_id IN (?)", bun.List(chunk)).Scan(ctx); err != nil {
			return nil, unavailable("read users' keys", err)
		}
		for _, r := range rows {
			// The newest by creation, as CurrentKey orders them.
			if n, ok := newest[r.UserID]; !ok || r.CreatedAt > n.CreatedAt || r.CreatedAt == n.CreatedAt && r.KeyID > n.KeyID {
				newest[r.UserID] = r
			}
		}
	}
	for user, r := range newest {
		key, err := k.unwrap(r)
		if err != nil {
			return nil, err
		}
		out[user] = CurrentKey{KeyID: r.KeyID, Key: key}
	}
	return out, nil
}

// AddKeys implements Keys: one transaction, one insert per 500 keys.
func (k *SQLKeys) AddKeys(ctx context.Context, keys []NewKey) error {
	now := k.now().UnixMicro()
	rows := make([]keyRow, len(keys))
	for i, n := range keys {
		rows[i] = keyRow{KeyID: n.KeyID, UserID: n.UserID, Key: k.wrap(n.KeyID, n.Key), Wrapping: k.wrapping, CreatedAt: now}
	}
	err := k.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		for start := 0; start < len(rows); start += 500 {
			chunk := rows[start:min(start+500, len(rows))]
			if _, err := tx.NewInsert().Model(&chunk).Exec(ctx); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return unavailable("store new keys", err)
	}
	return nil
}

// Forget implements Keys: in one transaction it deletes the user's keys and
// records (or moves forward) the tombstone. On SQLite with secure_delete on
// the deleted key bytes are overwritten in the database file; on
// PostgreSQL they stay in dead tuples until VACUUM (see Vacuum).
func (k *SQLKeys) Forget(ctx context.Context, userID string) (int, error) {
	var n int64
	err := k.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewDelete().Model((*keyRow)(nil)).Where("user_id = ?", userID).Exec(ctx)
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		t := tombstoneRow{UserID: userID, ForgottenAt: k.now().UnixMicro()}
		_, err = tx.NewInsert().Model(&t).On("CONFLICT (user_id) DO UPDATE").Set("forgotten_at = EXCLUDED.forgotten_at").Exec(ctx)
		return err
	})
	if err != nil {
		return 0, unavailable("forget a user's keys", err)
	}
	return int(n), nil
}

// Forgotten implements Keys.
func (k *SQLKeys) Forgotten(ctx context.Context) ([]string, error) {
	var users []string
	if err := k.reader.NewSelect().Model((*tombstoneRow)(nil)).Column("user_id").Scan(ctx, &users); err != nil {
		return nil, unavailable("read the forgotten users", err)
	}
	return users, nil
}

// Vacuum, on PostgreSQL, vacuums the key table and tables so that the dead
// tuples a forget left (deleted keys, rewritten rows) are removed from the
// table files now rather than whenever autovacuum runs; the WAL and backups
// are not scrubbed. On SQLite it does nothing: secure_delete overwrites
// deleted bytes at once. It returns EUNAVAILABLE when the database fails.
func (k *SQLKeys) Vacuum(ctx context.Context, tables ...string) error {
	if !k.postgres {
		return nil
	}
	idents := []string{"user_keys", "forgotten_keys"}
	idents = append(idents, tables...)
	for _, t := range idents {
		if _, err := k.db.ExecContext(ctx, "VACUUM ?", bun.Ident(t)); err != nil {
			return unavailable("vacuum "+t, err)
		}
	}
	return nil
}

// ExportedKey is one key as `keys export` writes it: as stored, so wrapped
// under the key-encryption key when there is one.
type ExportedKey struct {
	KeyID     string `json:"keyId"`
	UserID    string `json:"userId"`
	Key       []byte `json:"key"`
	Wrapping  string `json:"wrapping"`
	CreatedAt int64  `json:"createdAt"`
}

// Export returns every stored key, in creation order, or EUNAVAILABLE.
func (k *SQLKeys) Export(ctx context.Context) ([]ExportedKey, error) {
	var rows []keyRow
	if err := k.reader.NewSelect().Model(&rows).Where("user_id <> ''").OrderExpr("created_at, key_id").Scan(ctx); err != nil {
		return nil, unavailable("read the keys", err)
	}
	out := make([]ExportedKey, len(rows))
	for i, r := range rows {
		out[i] = r.exported()
	}
	return out, nil
}

func (r keyRow) exported() ExportedKey {
	return ExportedKey{KeyID: r.KeyID, UserID: r.UserID, Key: r.Key, Wrapping: r.Wrapping, CreatedAt: r.CreatedAt}
}

// ImportResult counts what Import did.
type ImportResult struct {
	Stored, AlreadyPresent, SkippedForgotten int
}

// Import stores the keys not present yet. A key of a user forgotten after
// the key was made is skipped, never stored again: restoring it would make
// the erased data readable. It refuses (EINVALID, storing nothing) keys
// wrapped otherwise than this table wraps them, and returns EUNAVAILABLE
// when the database fails.
func (k *SQLKeys) Import(ctx context.Context, keys []ExportedKey) (ImportResult, error) {
	var res ImportResult
	for _, e := range keys {
		if e.Wrapping != k.wrapping {
			return res, domain.Errorf(domain.EINVALID, "key %s was exported %s, but this key table is %s: give the same --key-encryption-key as the exporting installation",
				e.KeyID, wrappingName(e.Wrapping), wrappingName(k.wrapping))
		}
		if e.KeyID == "" || e.UserID == "" || len(e.Key) == 0 {
			return res, domain.Errorf(domain.EINVALID, "a key of the import has no key id, user or key")
		}
	}
	err := k.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		res = ImportResult{}
		for _, e := range keys {
			var t tombstoneRow
			err := tx.NewSelect().Model(&t).Where("user_id = ?", e.UserID).Scan(ctx)
			switch {
			case err == nil && e.CreatedAt <= t.ForgottenAt:
				res.SkippedForgotten++
				continue
			case err != nil && !errors.Is(err, sql.ErrNoRows):
				return err
			}
			r := keyRow{KeyID: e.KeyID, UserID: e.UserID, Key: e.Key, Wrapping: e.Wrapping, CreatedAt: e.CreatedAt}
			ins, err := tx.NewInsert().Model(&r).On("CONFLICT (key_id) DO NOTHING").Exec(ctx)
			if err != nil {
				return err
			}
			if n, _ := ins.RowsAffected(); n == 1 {
				res.Stored++
			} else {
				res.AlreadyPresent++
			}
		}
		return nil
	})
	if err != nil {
		return ImportResult{}, unavailable("import keys", err)
	}
	return res, nil
}

func wrappingName(w string) string {
	if w == "" {
		return "unwrapped"
	}
	return "wrapped by key-encryption key " + w
}

// NoKeys is the key table of a read database that has none (read models
// written before encryption existed, opened read-only): every key is gone
// and nobody is forgotten. AddKeys and Forget fail with EUNAVAILABLE.
type NoKeys struct{}

// Keys implements Keys.
func (NoKeys) Keys(context.Context, []string) (map[string]StoredKey, error) { return nil, nil }

// CurrentKeys implements Keys.
func (NoKeys) CurrentKeys(context.Context, []string) (map[string]CurrentKey, error) { return nil, nil }

// AddKeys implements Keys.
func (NoKeys) AddKeys(context.Context, []NewKey) error {
	return domain.Errorf(domain.EUNAVAILABLE, "the read database has no key table (run auraos migrate)")
}

// Forget implements Keys.
func (NoKeys) Forget(context.Context, string) (int, error) {
	return 0, domain.Errorf(domain.EUNAVAILABLE, "the read database has no key table (run auraos migrate)")
}

// Forgotten implements Keys.
func (NoKeys) Forgotten(context.Context) ([]string, error) { return nil, nil }
