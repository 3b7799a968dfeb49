-- auraos_append_at commits a batch of events in one statement, so a writer
-- that knows where the log ends needs one round trip per group commit
-- instead of four (BEGIN, draw positions, insert, COMMIT). Under the log's
-- advisory lock it compares the head (the position sequence's last value)
-- with expected_head: if another writer has moved it, it writes nothing and
-- returns the head, and the writer decides again with the log looked up.
-- Otherwise it moves the sequence past the batch, inserts the rows (given as
-- one array per column, at positions expected_head+1 onwards), queues the
-- notice that wakes other processes' subscribers, and returns expected_head.
-- A taken event id or stream version fails the statement (unique
-- violation), which rolls it back whole.
CREATE OR REPLACE FUNCTION auraos_append_at(
    lock_key bigint, expected_head bigint,
    positions bigint[], event_ids text[], streams text[], versions bigint[],
    types text[], data text[], metadata text[], created timestamptz, hashes bytea[],
    channel text, notice text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    head bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(lock_key);
    SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END INTO head FROM events_position_seq;
    IF head <> expected_head THEN
        RETURN head;
    END IF;
    PERFORM setval('events_position_seq', expected_head + cardinality(positions));
    INSERT INTO events (position, event_id, stream, version, type, data, metadata, created_at, hash)
        SELECT u.position, u.event_id, u.stream, u.version, u.type, u.data, u.metadata, created, u.hash
        FROM unnest(positions, event_ids, streams, versions, types, data, metadata, hashes)
            AS u(position, event_id, stream, version, type, data, metadata, hash);
    PERFORM pg_notify(channel, notice);
    RETURN head;
END
$$;
