-- Token records. No plaintext anywhere: `digest` is SHA-256 of the token's secret.
CREATE TABLE IF NOT EXISTS tokens (
    -- AUTOINCREMENT: ids of deleted tokens are never reused (Sanctum-style tokens carry them).
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    name           TEXT    NOT NULL,
    tenant         TEXT    NOT NULL,
    -- Space-separated scope names (scope names never contain spaces).
    scopes         TEXT    NOT NULL,
    env            TEXT    NOT NULL CHECK (env IN ('live', 'test')),
    kind           TEXT    NOT NULL CHECK (kind IN ('api_key', 'session')),
    display_prefix TEXT    NOT NULL,
    digest         BLOB    NOT NULL CHECK (length(digest) = 32),
    -- Unix milliseconds.
    created_at     INTEGER NOT NULL,
    -- NULL: never expires.
    expires_at     INTEGER,
    last_used_at   INTEGER,
    use_count      INTEGER NOT NULL DEFAULT 0
);

CREATE UNIQUE INDEX IF NOT EXISTS tokens_digest ON tokens (digest);
CREATE INDEX IF NOT EXISTS tokens_tenant ON tokens (tenant, id);
CREATE INDEX IF NOT EXISTS tokens_expires_at ON tokens (expires_at) WHERE expires_at IS NOT NULL;
