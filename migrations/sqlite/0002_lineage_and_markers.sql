-- Lineage: the token that issued this one (NULL: issued server-side). Cascading
-- revocation walks it.
ALTER TABLE tokens ADD COLUMN created_by INTEGER;
-- Set while a rotated token lives on for its grace period: the token it was rotated into.
ALTER TABLE tokens ADD COLUMN rotated_to INTEGER;
CREATE INDEX IF NOT EXISTS tokens_created_by ON tokens (created_by) WHERE created_by IS NOT NULL;

-- One-time actions (the bootstrap admin token): a row here means "done", written in the
-- same transaction as the token.
CREATE TABLE IF NOT EXISTS markers (
    name       TEXT    PRIMARY KEY,
    token_id   INTEGER NOT NULL,
    -- Unix milliseconds.
    created_at INTEGER NOT NULL
);
