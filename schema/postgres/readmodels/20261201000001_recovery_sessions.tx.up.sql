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
    generation      BIGINT  NOT NULL,
    revision        BIGINT  NOT NULL,
    user_id         TEXT    NOT NULL DEFAULT '',
    state           TEXT    NOT NULL,
    connected       BOOLEAN NOT NULL,
    disconnected_at BIGINT,
    end_reason      TEXT    NOT NULL DEFAULT '',
    ended           BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS recovery_sessions_due_idx ON recovery_sessions (connected, disconnected_at);
CREATE INDEX IF NOT EXISTS recovery_sessions_node_idx ON recovery_sessions (node_id, connected);
