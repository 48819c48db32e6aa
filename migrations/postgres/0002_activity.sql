-- The activity log (feature `activity`): one row per request attributable to a token.
-- No secret, no query string, no body. Ids come from a sequence (never reused).
CREATE TABLE IF NOT EXISTS tower_bearer_activity (
    id         BIGSERIAL PRIMARY KEY,
    -- Unix milliseconds.
    at         BIGINT  NOT NULL,
    token_id   BIGINT  NOT NULL,
    session_id TEXT,
    tenant     TEXT    NOT NULL,
    method     TEXT    NOT NULL,
    route      TEXT    NOT NULL,
    status     BIGINT  NOT NULL,
    outcome    TEXT    NOT NULL,
    latency_us BIGINT  NOT NULL,
    client_ip  TEXT,
    user_agent TEXT,
    request_id TEXT,
    new_ip     BOOLEAN NOT NULL
);
CREATE INDEX IF NOT EXISTS tower_bearer_activity_tenant ON tower_bearer_activity (tenant, id);
CREATE INDEX IF NOT EXISTS tower_bearer_activity_token ON tower_bearer_activity (tenant, token_id, id);
CREATE INDEX IF NOT EXISTS tower_bearer_activity_token_ip ON tower_bearer_activity (token_id, client_ip, at);
CREATE INDEX IF NOT EXISTS tower_bearer_activity_at ON tower_bearer_activity (at);
