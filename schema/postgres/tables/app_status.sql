-- app-status: each app's last status.
CREATE TABLE {{.Table}} (
    app_id     TEXT    PRIMARY KEY,
    status     TEXT    NOT NULL,
    updated_at BIGINT  NOT NULL,
    updated_by TEXT    NOT NULL
);
