-- Per-key policies: the limits and allowed networks as JSON (with the credits' refill),
-- the credits' balance apart (it changes on every reservation; NULL is unlimited) and
-- when that balance was last set, in Unix milliseconds.
ALTER TABLE tokens ADD COLUMN policies TEXT;
ALTER TABLE tokens ADD COLUMN credits_remaining INTEGER;
ALTER TABLE tokens ADD COLUMN credits_since INTEGER NOT NULL DEFAULT 0;
-- What every process reserved of a key's rate limit in its current window.
CREATE TABLE IF NOT EXISTS rate_windows (
    token_id INTEGER NOT NULL,
    policy TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    reserved INTEGER NOT NULL,
    PRIMARY KEY (token_id, policy)
);
