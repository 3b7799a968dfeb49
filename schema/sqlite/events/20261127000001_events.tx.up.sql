-- The event log. position is the global order (strictly increasing in commit
-- order, assigned by the single writer); event_id makes appends idempotent;
-- (stream, version) is the optimistic-concurrency key. created_at holds unix
-- microseconds (UTC).
CREATE TABLE IF NOT EXISTS events (
    position   INTEGER PRIMARY KEY,
    event_id   TEXT    NOT NULL,
    stream     TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    type       TEXT    NOT NULL,
    data       TEXT    NOT NULL,
    metadata   TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);
--bun:split
CREATE UNIQUE INDEX IF NOT EXISTS events_event_id ON events (event_id);
--bun:split
CREATE UNIQUE INDEX IF NOT EXISTS events_stream_version ON events (stream, version);
