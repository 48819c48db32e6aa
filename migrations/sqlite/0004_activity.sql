-- The activity log (feature `activity`): one row per request attributable to a token.
-- No secret, no query string, no body. Ids are never reused (AUTOINCREMENT), so that
-- paging by id stays stable while rows are pruned.
CREATE TABLE IF NOT EXISTS activity (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Unix milliseconds.
    at         INTEGER NOT NULL,
    token_id   INTEGER NOT NULL,
    session_id TEXT,
    tenant     TEXT    NOT NULL,
    method     TEXT    NOT NULL,
    route      TEXT    NOT NULL,
    status     INTEGER NOT NULL,
    outcome    TEXT    NOT NULL,
    latency_us INTEGER NOT NULL,
    client_ip  TEXT,
    user_agent TEXT,
    request_id TEXT,
    new_ip     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS activity_tenant ON activity (tenant, id);
CREATE INDEX IF NOT EXISTS activity_token ON activity (tenant, token_id, id);
CREATE INDEX IF NOT EXISTS activity_token_ip ON activity (token_id, client_ip, at);
CREATE INDEX IF NOT EXISTS activity_at ON activity (at);
