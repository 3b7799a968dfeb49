-- Crypto-shredding (eventstore/shred): one row per data key, keyed by a
-- random key id that every encrypted field names; a user has one key per
-- generation (a forgotten user who comes back is a new person with a new
-- key). key is the 32-byte AES-256 key, wrapped by the key-encryption key
-- when wrapping names one ('' when stored unwrapped). Times are unix
-- microseconds. Deleting a user's rows is what forgets them: losing this
-- table loses every personal field of the log.
CREATE TABLE IF NOT EXISTS user_keys (
    key_id     TEXT    PRIMARY KEY,
    user_id    TEXT    NOT NULL,
    key        BYTEA   NOT NULL,
    wrapping   TEXT    NOT NULL,
    created_at BIGINT  NOT NULL
);
CREATE INDEX IF NOT EXISTS user_keys_user_idx ON user_keys (user_id, created_at);
-- The users forgotten and when: keys import refuses their older keys.
CREATE TABLE IF NOT EXISTS forgotten_keys (
    user_id      TEXT    PRIMARY KEY,
    forgotten_at BIGINT  NOT NULL
);
