-- Revoked tokens the activity log remembers (by digest, never a secret), so that calls
-- still made with them, on any node, are recorded against them; pruned with the rows.
CREATE TABLE IF NOT EXISTS tower_bearer_activity_revoked (
    digest     BYTEA  PRIMARY KEY CHECK (length(digest) = 32),
    token_id   BIGINT NOT NULL,
    session_id TEXT,
    tenant     TEXT   NOT NULL,
    -- Unix milliseconds.
    revoked_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS tower_bearer_activity_revoked_at
    ON tower_bearer_activity_revoked (revoked_at);
