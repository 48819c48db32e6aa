-- The change log: every deletion and change of a token row, written in the transaction
-- that makes it, so that every process on this file (each polling it) evicts the token
-- from its cache within a poll interval. Rows older than a few minutes are pruned.
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('invalidated', 'updated')),
    token_id INTEGER NOT NULL,
    digest BLOB NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS changes_at ON changes (at);
