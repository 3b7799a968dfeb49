-- Positions come from a sequence that writers draw from while they hold the
-- log's advisory lock, so drawing them and taking the lock is one round trip
-- and commit order stays position order. It starts after the events already
-- stored.
CREATE SEQUENCE IF NOT EXISTS events_position_seq;
--bun:split
SELECT setval('events_position_seq', COALESCE((SELECT MAX(position) FROM events), 0) + 1, false);
