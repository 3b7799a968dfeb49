-- online-users: one row per live session (a socket that joined presence).
-- Times are unix microseconds taken from the events.
CREATE TABLE {{.Table}} (
    session_id   TEXT    PRIMARY KEY,
    user_id      TEXT    NOT NULL,
    node_id      TEXT    NOT NULL,
    email        TEXT    NOT NULL,
    display_name TEXT    NOT NULL,
    photo_url    TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    connected_at INTEGER NOT NULL,
    last_seen    INTEGER NOT NULL
);
--bun:split
CREATE INDEX online_sessions_user_id_idx{{.Suffix}} ON {{.Table}} (user_id);
--bun:split
CREATE INDEX online_sessions_node_id_idx{{.Suffix}} ON {{.Table}} (node_id);
