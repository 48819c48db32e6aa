-- Why a remembered token was revoked (manual, cascade, rotated, leaked) and, for a
-- leaked one, where a secret scanner found it; the tenant's admins read it back by id.
ALTER TABLE activity_revoked ADD COLUMN reason TEXT NOT NULL DEFAULT 'manual';
ALTER TABLE activity_revoked ADD COLUMN leak_url TEXT;
ALTER TABLE activity_revoked ADD COLUMN leak_source TEXT;
CREATE INDEX IF NOT EXISTS activity_revoked_token ON activity_revoked (tenant, token_id);
