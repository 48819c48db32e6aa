-- The webhook outbox (feature `webhooks`): one message per event and subscribed endpoint,
-- written in the transaction of the change that caused the event, then delivered by the
-- writer until it succeeds or its retries run out. Times are Unix milliseconds.
CREATE TABLE IF NOT EXISTS webhook_messages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    -- The `webhook-id` of every attempt.
    event_id        TEXT    NOT NULL,
    endpoint_id     INTEGER NOT NULL,
    tenant          TEXT    NOT NULL,
    event_type      TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    body            TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    -- Held by a delivering node until then.
    lease_until     INTEGER,
    delivered_at    INTEGER,
    given_up_at     INTEGER,
    UNIQUE (event_id, endpoint_id)
);
CREATE INDEX IF NOT EXISTS webhook_messages_due ON webhook_messages (next_attempt_at)
    WHERE delivered_at IS NULL AND given_up_at IS NULL;

-- Every attempt, for an endpoint's deliveries list.
CREATE TABLE IF NOT EXISTS webhook_attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id  INTEGER NOT NULL,
    endpoint_id INTEGER NOT NULL,
    tenant      TEXT    NOT NULL,
    event_id    TEXT    NOT NULL,
    event_type  TEXT    NOT NULL,
    attempt     INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    status      INTEGER,
    latency_ms  INTEGER NOT NULL,
    error       TEXT
);
CREATE INDEX IF NOT EXISTS webhook_attempts_endpoint ON webhook_attempts (endpoint_id, id);
CREATE INDEX IF NOT EXISTS webhook_attempts_message ON webhook_attempts (message_id);

-- The expiry thresholds each token's events were written for (0: the expiry itself), so
-- that each is written once.
CREATE TABLE IF NOT EXISTS webhook_expiry_marks (
    token_id INTEGER NOT NULL,
    mark_ms  INTEGER NOT NULL,
    PRIMARY KEY (token_id, mark_ms)
) WITHOUT ROWID;
