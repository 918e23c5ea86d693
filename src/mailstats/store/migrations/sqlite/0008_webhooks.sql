-- Webhook endpoints: where an account's events are pushed, and how delivery stands.
CREATE TABLE webhooks (
    id           INTEGER PRIMARY KEY,
    account_id   INTEGER NOT NULL REFERENCES accounts (id),
    url          TEXT NOT NULL,
    kinds        INTEGER NOT NULL,              -- one bit per kind code (1 << code)
    bots         TEXT NOT NULL DEFAULT 'include',
    secret       TEXT NOT NULL,                 -- whsec_..., shown once, never listed
    created_at   INTEGER NOT NULL,
    disabled_at  INTEGER,                       -- NULL while enabled
    failures     INTEGER NOT NULL DEFAULT 0,    -- failed attempts since the last success
    message_id   TEXT,                          -- the batch in flight, kept by its retries
    attempts     INTEGER NOT NULL DEFAULT 0,    -- of that batch
    next_at      REAL NOT NULL DEFAULT 0,       -- no attempt before (epoch seconds)
    lease_owner  TEXT,                          -- the dispatcher delivering it now
    lease_until  REAL NOT NULL DEFAULT 0,
    delivered_id INTEGER NOT NULL DEFAULT 0     -- the highest event ID delivered
);
CREATE INDEX webhooks_account ON webhooks (account_id);

-- Events still to push, by ID only (the payload is built from `events` when sent, so
-- erasure and retention apply to what waits here too). Written by the derive step.
CREATE TABLE webhook_outbox (
    webhook_id INTEGER NOT NULL,
    event_id   INTEGER NOT NULL,
    message_id TEXT,                            -- set once the event is in a batch
    PRIMARY KEY (webhook_id, event_id)
) WITHOUT ROWID;

-- Recent attempts, for `GET ms/webhook/$id/deliveries`.
CREATE TABLE webhook_deliveries (
    id         INTEGER PRIMARY KEY,
    webhook_id INTEGER NOT NULL,
    message_id TEXT NOT NULL,
    attempt    INTEGER NOT NULL,
    at         REAL NOT NULL,
    events     INTEGER NOT NULL,
    first_id   INTEGER,
    last_id    INTEGER,
    status     INTEGER,                         -- the HTTP status, NULL without an answer
    latency_ms REAL NOT NULL,
    error      TEXT
);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, id);
