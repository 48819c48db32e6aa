-- Per-key policies: the limits and allowed networks as JSON (with the credits' refill),
-- the credits' balance apart (it changes on every reservation; NULL is unlimited) and
-- when that balance was last set, in Unix milliseconds.
ALTER TABLE tower_bearer_tokens ADD COLUMN IF NOT EXISTS policies TEXT;
ALTER TABLE tower_bearer_tokens ADD COLUMN IF NOT EXISTS credits_remaining BIGINT;
ALTER TABLE tower_bearer_tokens ADD COLUMN IF NOT EXISTS credits_since BIGINT NOT NULL DEFAULT 0;
-- What every node reserved of a key's rate limit in its current window.
CREATE TABLE IF NOT EXISTS tower_bearer_rate_windows (
    token_id BIGINT NOT NULL REFERENCES tower_bearer_tokens (id) ON DELETE CASCADE,
    policy TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    reserved BIGINT NOT NULL,
    PRIMARY KEY (token_id, policy)
);
