-- Events and webhooks (PostgreSQL). Keep in step with ../sqlite/0002_webhooks.sql.

-- Custom event types registered per project (built-in types need no row).
CREATE TABLE event_types (
    project_id  TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    description TEXT,
    schema      JSONB,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (project_id, name)
);

-- Whether the dispatcher has turned the event into deliveries yet. Events written before
-- webhooks existed had no endpoint to go to.
ALTER TABLE events ADD COLUMN fanned_out BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE events SET fanned_out = TRUE;
CREATE INDEX events_fanout_pending ON events (seq) WHERE fanned_out = FALSE;
CREATE INDEX events_project_time ON events (project_id, occurred_at);

-- Idempotency keys of published events, kept 24 hours.
CREATE TABLE idempotency_keys (
    project_id TEXT NOT NULL,
    key        TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (project_id, key)
);

CREATE TABLE webhooks (
    id                         TEXT PRIMARY KEY,
    project_id                 TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name                       TEXT,
    url                        TEXT NOT NULL,
    description                TEXT,
    events                     JSONB NOT NULL,
    secret                     TEXT NOT NULL,
    previous_secret            TEXT,
    previous_secret_expires_at TIMESTAMPTZ,
    active                     BOOLEAN NOT NULL,
    headers                    JSONB NOT NULL,
    rate_limit                 INTEGER,
    timeout_ms                 INTEGER NOT NULL,
    disabled_reason            TEXT,
    disabled_at                TIMESTAMPTZ,
    last_success_at            TIMESTAMPTZ,
    failing_since              TIMESTAMPTZ,
    -- The outbox sequence when the endpoint was created: it receives only later events.
    created_seq                BIGINT NOT NULL DEFAULT 0,
    created_at                 TIMESTAMPTZ NOT NULL,
    updated_at                 TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhooks_project ON webhooks (project_id, created_at, id);

-- One event to one endpoint. `status`: pending, succeeded, failed (retries exhausted or the
-- endpoint answered 410). A pending delivery is due at `next_attempt_at`; a dispatcher that
-- claims it holds a lease until `lease_expires_at`, after which any node may claim it again.
CREATE TABLE deliveries (
    id               TEXT PRIMARY KEY,
    project_id       TEXT NOT NULL,
    webhook_id       TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_id         TEXT NOT NULL,
    event_seq        BIGINT NOT NULL,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL,
    next_attempt_at  TIMESTAMPTZ,
    lease_owner      TEXT,
    lease_expires_at TIMESTAMPTZ,
    last_status_code INTEGER,
    last_error       TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    completed_at     TIMESTAMPTZ
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_webhook ON deliveries (webhook_id, created_at, id);
CREATE INDEX deliveries_event ON deliveries (event_id);
CREATE INDEX deliveries_completed ON deliveries (completed_at) WHERE completed_at IS NOT NULL;

CREATE TABLE delivery_attempts (
    id               TEXT PRIMARY KEY,
    delivery_id      TEXT NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
    attempt          INTEGER NOT NULL,
    attempted_at     TIMESTAMPTZ NOT NULL,
    status_code      INTEGER,
    latency_ms       INTEGER NOT NULL,
    response_headers JSONB NOT NULL,
    response_body    TEXT,
    error            TEXT,
    next_attempt_at  TIMESTAMPTZ
);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id, attempt);
