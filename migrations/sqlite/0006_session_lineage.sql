-- The session a token was issued through (an access token of its creator key's), so
-- that ending that session with its cascade revokes what it created.
ALTER TABLE tokens ADD COLUMN created_by_session INTEGER;
CREATE INDEX IF NOT EXISTS tokens_created_by_session ON tokens (tenant, created_by_session)
    WHERE created_by_session IS NOT NULL;
