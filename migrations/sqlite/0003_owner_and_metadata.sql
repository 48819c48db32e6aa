-- Who a token belongs to in the application (an opaque user id), and the application's
-- own notes about it (a JSON object of at most 4 KiB).
ALTER TABLE tokens ADD COLUMN owner TEXT;
ALTER TABLE tokens ADD COLUMN metadata TEXT;
CREATE INDEX IF NOT EXISTS tokens_owner ON tokens (tenant, owner, id) WHERE owner IS NOT NULL;
