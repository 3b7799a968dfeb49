-- The hash chain (package eventstore/chain): hash is the 32-byte SHA-256 of
-- the previous event's hash and this event's fields. Rows stored before this
-- migration have none yet; the store fills them in position order when it
-- opens (in batches, resuming where it stopped), and the partial index finds
-- them without scanning the log.
ALTER TABLE events ADD COLUMN IF NOT EXISTS hash BYTEA;
--bun:split
CREATE INDEX IF NOT EXISTS events_unhashed ON events (position) WHERE hash IS NULL;
