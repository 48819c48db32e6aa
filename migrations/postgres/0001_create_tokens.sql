-- Token records. No plaintext anywhere: `digest` is SHA-256 of the token's secret.
-- Ids come from a sequence: never reused (Sanctum-style tokens carry them).
CREATE TABLE IF NOT EXISTS tower_bearer_tokens (
    id             BIGSERIAL PRIMARY KEY,
    name           TEXT   NOT NULL,
    tenant         TEXT   NOT NULL,
    -- Space-separated scope names (scope names never contain spaces).
    scopes         TEXT   NOT NULL,
    env            TEXT   NOT NULL CHECK (env IN ('live', 'test')),
    kind           TEXT   NOT NULL CHECK (kind IN ('api_key', 'session')),
    display_prefix TEXT   NOT NULL,
    digest         BYTEA  NOT NULL UNIQUE CHECK (length(digest) = 32),
    -- Unix milliseconds, as in the SQLite store.
    created_at     BIGINT NOT NULL,
    -- NULL: never expires.
    expires_at     BIGINT,
    last_used_at   BIGINT,
    use_count      BIGINT NOT NULL DEFAULT 0,
    -- Lineage: the token that issued this one (NULL: issued server-side).
    created_by     BIGINT,
    -- While a rotated token lives on for its grace period: its replacement.
    rotated_to     BIGINT,
    owner          TEXT,
    -- A JSON object of at most 4 KiB.
    metadata       TEXT
);
CREATE INDEX IF NOT EXISTS tower_bearer_tokens_tenant ON tower_bearer_tokens (tenant, id);
CREATE INDEX IF NOT EXISTS tower_bearer_tokens_owner ON tower_bearer_tokens (tenant, owner, id)
    WHERE owner IS NOT NULL;
CREATE INDEX IF NOT EXISTS tower_bearer_tokens_created_by ON tower_bearer_tokens (created_by)
    WHERE created_by IS NOT NULL;
CREATE INDEX IF NOT EXISTS tower_bearer_tokens_expires_at ON tower_bearer_tokens (expires_at)
    WHERE expires_at IS NOT NULL;

-- One-time actions (the bootstrap admin token), written with their token.
CREATE TABLE IF NOT EXISTS tower_bearer_markers (
    name       TEXT   PRIMARY KEY,
    token_id   BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

-- The change log: every deletion and update of a token, in commit order (writers take
-- an advisory transaction lock, so sequence order is commit order). Nodes apply the
-- NOTIFY sent with each row at once, and catch up from it on every reconnect.
CREATE TABLE IF NOT EXISTS tower_bearer_changes (
    seq      BIGSERIAL PRIMARY KEY,
    kind     TEXT   NOT NULL CHECK (kind IN ('invalidated', 'updated')),
    token_id BIGINT NOT NULL,
    digest   BYTEA  NOT NULL,
    -- Unix milliseconds.
    at       BIGINT NOT NULL
);

-- The highest change-log sequence number pruned: a node whose last applied change is
-- older missed changes it can no longer read, and drops its whole cache.
CREATE TABLE IF NOT EXISTS tower_bearer_feed (
    singleton      BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    pruned_through BIGINT  NOT NULL DEFAULT 0
);
INSERT INTO tower_bearer_feed (singleton) VALUES (TRUE) ON CONFLICT DO NOTHING;
