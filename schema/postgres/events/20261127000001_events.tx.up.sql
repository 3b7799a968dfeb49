-- The event log. position is the global order (strictly increasing in commit
-- order: appends hold a transaction-level advisory lock); event_id makes
-- appends idempotent; (stream, version) is the optimistic-concurrency key.
-- data and metadata are JSON kept byte for byte as appended (cast to json or
-- jsonb to query them).
CREATE TABLE IF NOT EXISTS events (
    position   BIGINT      PRIMARY KEY,
    event_id   TEXT        NOT NULL,
    stream     TEXT        NOT NULL,
    version    BIGINT      NOT NULL,
    type       TEXT        NOT NULL,
    data       TEXT        NOT NULL,
    metadata   TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
--bun:split
CREATE UNIQUE INDEX IF NOT EXISTS events_event_id ON events (event_id);
--bun:split
CREATE UNIQUE INDEX IF NOT EXISTS events_stream_version ON events (stream, version);
