-- Revoked tokens the activity log remembers (by digest, never a secret), so that calls
-- still made with them are recorded against them; pruned with the rows.
CREATE TABLE IF NOT EXISTS activity_revoked (
    digest     BLOB    PRIMARY KEY CHECK (length(digest) = 32),
    token_id   INTEGER NOT NULL,
    session_id TEXT,
    tenant     TEXT    NOT NULL,
    -- Unix milliseconds.
    revoked_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS activity_revoked_at ON activity_revoked (revoked_at);
