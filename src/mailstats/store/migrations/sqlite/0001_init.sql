-- The first schema: accounts, tokens, emailings and their links, destinations, and events.
-- Every event kind shares one table and differs only in the columns it fills.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE accounts (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    timezone   TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE tokens (
    id         INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    hash       BLOB NOT NULL UNIQUE,
    hint       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

CREATE TABLE emailings (
    id           INTEGER PRIMARY KEY,
    account_id   INTEGER NOT NULL REFERENCES accounts (id),
    created_at   INTEGER NOT NULL,
    type         TEXT NOT NULL,
    subject      TEXT NOT NULL,
    from_name    TEXT NOT NULL,
    from_email   TEXT NOT NULL,
    html         TEXT NOT NULL,
    text         TEXT,
    tags         TEXT NOT NULL,
    destinations INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX emailings_account ON emailings (account_id, id);
CREATE INDEX emailings_account_time ON emailings (account_id, created_at);

CREATE TABLE links (
    id          INTEGER PRIMARY KEY,
    emailing_id INTEGER NOT NULL REFERENCES emailings (id),
    start       INTEGER NOT NULL,
    stop        INTEGER NOT NULL,
    url         TEXT NOT NULL
);
CREATE INDEX links_emailing ON links (emailing_id, start);

CREATE TABLE destinations (
    id          INTEGER PRIMARY KEY,
    account_id  INTEGER NOT NULL REFERENCES accounts (id),
    emailing_id INTEGER NOT NULL REFERENCES emailings (id),
    created_at  INTEGER NOT NULL,
    email       TEXT NOT NULL,
    profile     TEXT,
    subprofile  TEXT,
    fields      TEXT NOT NULL,
    message_key TEXT NOT NULL UNIQUE
);
CREATE INDEX destinations_emailing ON destinations (emailing_id, id);

CREATE TABLE events (
    id             INTEGER PRIMARY KEY,
    kind           INTEGER NOT NULL,
    account_id     INTEGER NOT NULL,
    emailing_id    INTEGER NOT NULL,
    destination_id INTEGER NOT NULL,
    link_id        INTEGER NOT NULL DEFAULT 0,
    ts             INTEGER NOT NULL,
    first          INTEGER NOT NULL DEFAULT 0,
    key            BLOB NOT NULL,
    ip             TEXT,
    useragent      TEXT,
    device         TEXT,
    attempts       INTEGER,
    status         TEXT,
    errorcode      TEXT,
    description    TEXT,
    errortype      TEXT,
    report         TEXT
);
CREATE UNIQUE INDEX events_key ON events (key);
CREATE INDEX events_account ON events (account_id, kind, id);
CREATE INDEX events_account_ts ON events (account_id, kind, ts);
CREATE INDEX events_account_first ON events (account_id, kind, id) WHERE first = 1;
CREATE INDEX events_emailing ON events (emailing_id, kind, id);
CREATE INDEX events_emailing_ts ON events (emailing_id, kind, ts);
CREATE INDEX events_destination ON events (destination_id, kind, id);

-- One row per (kind, destination, link) that has events: the earliest one, flagged `first`.
CREATE TABLE firsts (
    kind           INTEGER NOT NULL,
    destination_id INTEGER NOT NULL,
    link_id        INTEGER NOT NULL,
    event_id       INTEGER NOT NULL,
    ts             INTEGER NOT NULL,
    PRIMARY KEY (kind, destination_id, link_id)
) WITHOUT ROWID;
