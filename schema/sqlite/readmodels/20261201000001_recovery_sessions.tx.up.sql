-- The sessions clients may recover (Connection State Recovery from the
-- log): one row per socket session, keyed by a hash of its private session
-- id (the id itself is a secret the client holds, never stored). It is the
-- adapter's own state, not a projection of the log: rebuilds leave it
-- alone. state holds the identity, rooms and memberships as JSON;
-- generation fences writers (each claim by a server increments it);
-- disconnected_at (unix microseconds) is null while a server serves it;
-- ended says its presence and chat memberships were ended in the log after
-- the presence grace.
CREATE TABLE IF NOT EXISTS recovery_sessions (
    pid_hash        TEXT    PRIMARY KEY,
    session_id      TEXT    NOT NULL,
    node_id         TEXT    NOT NULL,
    generation      INTEGER  NOT NULL,
    revision        INTEGER  NOT NULL,
    user_id         TEXT    NOT NULL DEFAULT '',
    state           TEXT    NOT NULL,
    connected       INTEGER NOT NULL,
    disconnected_at INTEGER,
    end_reason      TEXT    NOT NULL DEFAULT '',
    ended           INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS recovery_sessions_due_idx ON recovery_sessions (connected, disconnected_at);
CREATE INDEX IF NOT EXISTS recovery_sessions_node_idx ON recovery_sessions (node_id, connected);
