-- The system of record, version 1. Times are Unix milliseconds (BIGINT) so the
-- PostgreSQL and SQLite schemas hold the same values.

CREATE TABLE campaigns (
    campaign_id TEXT PRIMARY KEY,
    request TEXT NOT NULL,
    state TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- One row per personalized message: the message id is the idempotency key.
CREATE TABLE assignments (
    message_id TEXT PRIMARY KEY,
    campaign_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    segment TEXT NOT NULL,
    arm TEXT NOT NULL,
    variant TEXT NOT NULL
);
CREATE INDEX assignments_campaign ON assignments (campaign_id);

-- Two-phase sends: claimed (with a lease) -> sent | failed.
CREATE TABLE sends (
    message_id TEXT PRIMARY KEY,
    sink TEXT NOT NULL,
    provider_message_id TEXT,
    state TEXT NOT NULL CHECK (state IN ('claimed', 'sent', 'failed')),
    attempts INTEGER NOT NULL,
    lease_until BIGINT NOT NULL,
    first_claimed_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    sent_at BIGINT,
    last_error TEXT
);

-- Provider events, deduplicated by the provider's own event id.
CREATE TABLE events (
    provider TEXT NOT NULL,
    provider_event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    message_id TEXT,
    occurred_at BIGINT NOT NULL,
    raw TEXT NOT NULL,
    PRIMARY KEY (provider, provider_event_id)
);
CREATE INDEX events_message ON events (message_id);

-- A suppression is keyed by a customer id or by the keyed hash of an address
-- (never the address itself).
CREATE TABLE suppressions (
    kind TEXT NOT NULL CHECK (kind IN ('customer', 'address')),
    value TEXT NOT NULL,
    reason TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (kind, value)
);

-- Contact history for frequency caps; the message id makes a replay a no-op.
CREATE TABLE contacts (
    message_id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    campaign_id TEXT NOT NULL,
    contacted_at BIGINT NOT NULL
);
CREATE INDEX contacts_customer_time ON contacts (customer_id, contacted_at);
