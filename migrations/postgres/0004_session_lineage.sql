-- The session a token was issued through (an access token of its creator key's), so
-- that ending that session with its cascade revokes what it created.
ALTER TABLE tower_bearer_tokens ADD COLUMN IF NOT EXISTS created_by_session BIGINT;
CREATE INDEX IF NOT EXISTS tower_bearer_tokens_created_by_session
    ON tower_bearer_tokens (tenant, created_by_session) WHERE created_by_session IS NOT NULL;
