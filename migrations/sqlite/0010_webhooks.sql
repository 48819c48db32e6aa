-- Webhook endpoints (feature `webhooks`): where a tenant's events are delivered, and the
-- secret deliveries are signed with (a sender must know it: stored as it is, mode 0600
-- like the rest of the file).
CREATE TABLE IF NOT EXISTS webhook_endpoints (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant          TEXT    NOT NULL,
    url             TEXT    NOT NULL,
    -- JSON array of event types.
    events          TEXT    NOT NULL,
    description     TEXT,
    secret          BLOB    NOT NULL,
    previous_secret BLOB,
    -- Unix milliseconds.
    previous_until  INTEGER,
    created_at      INTEGER NOT NULL,
    failing_since   INTEGER
);
CREATE INDEX IF NOT EXISTS webhook_endpoints_tenant ON webhook_endpoints (tenant, id);
