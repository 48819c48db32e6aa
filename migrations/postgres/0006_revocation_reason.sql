-- Why a remembered token was revoked (manual, cascade, rotated, leaked) and, for a
-- leaked one, where a secret scanner found it; the tenant's admins read it back by id.
ALTER TABLE tower_bearer_activity_revoked
    ADD COLUMN IF NOT EXISTS reason TEXT NOT NULL DEFAULT 'manual',
    ADD COLUMN IF NOT EXISTS leak_url TEXT,
    ADD COLUMN IF NOT EXISTS leak_source TEXT;
CREATE INDEX IF NOT EXISTS tower_bearer_activity_revoked_token
    ON tower_bearer_activity_revoked (tenant, token_id);
