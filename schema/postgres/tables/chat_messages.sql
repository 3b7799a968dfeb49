-- chat-history: every message, found by room in log order.
CREATE TABLE {{.Table}} (
    commit_position  BIGINT  NOT NULL,
    prepare_position BIGINT  NOT NULL,
    id               TEXT    NOT NULL,
    room_name        TEXT    NOT NULL,
    user_id          TEXT    NOT NULL,
    user_name        TEXT    NOT NULL,
    user_avatar      TEXT,
    message          TEXT    NOT NULL,
    message_type     TEXT    NOT NULL,
    is_ai            BOOLEAN NOT NULL,
    in_reply_to      TEXT    NOT NULL,
    created_at       BIGINT  NOT NULL,
    PRIMARY KEY (commit_position, prepare_position)
);
--bun:split
CREATE INDEX chat_messages_room_idx{{.Suffix}} ON {{.Table}} (room_name, commit_position, prepare_position);
