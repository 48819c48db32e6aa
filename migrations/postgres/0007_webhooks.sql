-- Webhook endpoints (feature `webhooks`): where a tenant's events are delivered, and the
-- secret deliveries are signed with (a sender must know it: stored as it is).
CREATE TABLE IF NOT EXISTS tower_bearer_webhook_endpoints (
    id              BIGSERIAL PRIMARY KEY,
    tenant          TEXT   NOT NULL,
    url             TEXT   NOT NULL,
    -- JSON array of event types.
    events          TEXT   NOT NULL,
    description     TEXT,
    secret          BYTEA  NOT NULL,
    previous_secret BYTEA,
    -- Unix milliseconds.
    previous_until  BIGINT,
    created_at      BIGINT NOT NULL,
    failing_since   BIGINT
);
CREATE INDEX IF NOT EXISTS tower_bearer_webhook_endpoints_tenant
    ON tower_bearer_webhook_endpoints (tenant, id);
