-- Keep in step with the other backend's 0005. Webhook subscriptions and their durable
-- outbox (issue 16).

-- A subscription: where to POST, the secrets to sign with (several during a rotation, as
-- a JSON array of whsec_ strings), which alerts (a JSON filter), in which format, and
-- whether it is active or disabled (410 Gone, or by an admin) and why.
CREATE TABLE webhook_subscriptions (
    id           TEXT PRIMARY KEY,
    url          TEXT NOT NULL,
    secrets      TEXT NOT NULL,
    filter       TEXT NOT NULL,
    format       TEXT NOT NULL,
    status       TEXT NOT NULL,
    reason       TEXT,
    created_by   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    -- Transitions after this timeline line are delivered (none from before it existed).
    start_seq    BIGINT NOT NULL
);

-- The outbox: one delivery per subscription and alert transition (the timeline line it
-- comes from: change_seq), recorded before it is attempted; its id is the webhook-id,
-- the same on every attempt and after a restart. status: pending, delivered, failed.
CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    subscription    TEXT NOT NULL,
    alert_id        TEXT NOT NULL,
    change_seq      BIGINT NOT NULL,
    event           TEXT NOT NULL,
    payload         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    attempts        BIGINT NOT NULL,
    status          TEXT NOT NULL,
    delivered_at    BIGINT,
    last_error      TEXT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (subscription, status, change_seq);

-- Every attempt: when, the answer's status (none: no answer), how long, what went wrong.
CREATE TABLE webhook_attempts (
    delivery     TEXT NOT NULL,
    n            BIGINT NOT NULL,
    at           BIGINT NOT NULL,
    status_code  BIGINT,
    latency_ms   BIGINT NOT NULL,
    error        TEXT,
    PRIMARY KEY (delivery, n)
);

-- How far the outbox has read the timeline (the changes feed's cursor), one row.
CREATE TABLE webhook_cursor (
    name   TEXT PRIMARY KEY,
    seq    BIGINT NOT NULL
);
