-- online-users: the chat rooms each live session has joined.
CREATE TABLE {{.Table}} (
    room_name    TEXT    NOT NULL,
    session_id   TEXT    NOT NULL,
    user_id      TEXT    NOT NULL,
    node_id      TEXT    NOT NULL,
    email        TEXT    NOT NULL,
    display_name TEXT    NOT NULL,
    photo_url    TEXT    NOT NULL,
    joined_at    BIGINT  NOT NULL,
    PRIMARY KEY (room_name, session_id)
);
--bun:split
CREATE INDEX chat_members_node_id_idx{{.Suffix}} ON {{.Table}} (node_id);
--bun:split
CREATE INDEX chat_members_session_id_idx{{.Suffix}} ON {{.Table}} (session_id);
