-- The webhook outbox (feature `webhooks`): one message per event and subscribed endpoint,
-- written in the transaction of the change that caused the event, then claimed by one
-- node at a time (FOR UPDATE SKIP LOCKED) until delivered or its retries run out.
-- Times are Unix milliseconds.
CREATE TABLE IF NOT EXISTS tower_bearer_webhook_messages (
    id              BIGSERIAL PRIMARY KEY,
    -- The `webhook-id` of every attempt.
    event_id        TEXT   NOT NULL,
    endpoint_id     BIGINT NOT NULL,
    tenant          TEXT   NOT NULL,
    event_type      TEXT   NOT NULL,
    created_at      BIGINT NOT NULL,
    body            TEXT   NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    -- Held by a delivering node until then.
    lease_until     BIGINT,
    delivered_at    BIGINT,
    given_up_at     BIGINT,
    UNIQUE (event_id, endpoint_id)
);
CREATE INDEX IF NOT EXISTS tower_bearer_webhook_messages_due
    ON tower_bearer_webhook_messages (next_attempt_at)
    WHERE delivered_at IS NULL AND given_up_at IS NULL;

-- Every attempt, for an endpoint's deliveries list.
CREATE TABLE IF NOT EXISTS tower_bearer_webhook_attempts (
    id          BIGSERIAL PRIMARY KEY,
    message_id  BIGINT NOT NULL,
    endpoint_id BIGINT NOT NULL,
    tenant      TEXT   NOT NULL,
    event_id    TEXT   NOT NULL,
    event_type  TEXT   NOT NULL,
    attempt     BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    status      BIGINT,
    latency_ms  BIGINT NOT NULL,
    error       TEXT
);
CREATE INDEX IF NOT EXISTS tower_bearer_webhook_attempts_endpoint
    ON tower_bearer_webhook_attempts (endpoint_id, id);
CREATE INDEX IF NOT EXISTS tower_bearer_webhook_attempts_message
    ON tower_bearer_webhook_attempts (message_id);

-- The expiry thresholds each token's events were written for (0: the expiry itself), so
-- that each is written once however many nodes see the time pass.
CREATE TABLE IF NOT EXISTS tower_bearer_webhook_expiry_marks (
    token_id BIGINT NOT NULL,
    mark_ms  BIGINT NOT NULL,
    PRIMARY KEY (token_id, mark_ms)
);
