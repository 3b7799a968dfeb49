-- Where each projection has read the log up to, and the version of the code
-- that wrote its tables. A projection's tables and its checkpoint change in
-- one transaction. (The read-model tables themselves are created from the
-- templates in ../tables, which rebuilds also use.)
CREATE TABLE IF NOT EXISTS projection_checkpoints (
    name             TEXT    PRIMARY KEY,
    version          INTEGER NOT NULL,
    commit_position  INTEGER NOT NULL,
    prepare_position INTEGER NOT NULL
);
