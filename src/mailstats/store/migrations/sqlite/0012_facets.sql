-- Counters the dashboard's emailing page reads instead of the events, kept with every
-- insert like event_blocks: events and `first` flags per quarter hour (slot = ts / 900,
-- so buckets of any zone's hours and days add whole slots up), per link (clicks), per
-- device class, client and OS parsed at capture (impressions; never the agent itself),
-- bounces per error type and code with the recipients they reached, and the recipients with
-- a click (any link).
-- Each is filled from the events already stored.
CREATE TABLE slot_counts (
    account_id  INTEGER NOT NULL,
    emailing_id INTEGER NOT NULL,
    kind        INTEGER NOT NULL,
    slot        INTEGER NOT NULL,
    n           INTEGER NOT NULL,
    firsts      INTEGER NOT NULL,
    PRIMARY KEY (account_id, emailing_id, kind, slot)
) WITHOUT ROWID;
INSERT INTO slot_counts (account_id, emailing_id, kind, slot, n, firsts)
SELECT account_id, emailing_id, kind, ts / 900, count(*), sum(first) FROM events
GROUP BY account_id, emailing_id, kind, ts / 900;

CREATE TABLE link_counts (
    account_id  INTEGER NOT NULL,
    link_id     INTEGER NOT NULL,
    emailing_id INTEGER NOT NULL,
    n           INTEGER NOT NULL,
    firsts      INTEGER NOT NULL,
    PRIMARY KEY (account_id, link_id)
) WITHOUT ROWID;
CREATE INDEX link_counts_emailing ON link_counts (emailing_id);
INSERT INTO link_counts (account_id, link_id, emailing_id, n, firsts)
SELECT account_id, link_id, emailing_id, count(*), sum(first) FROM events WHERE kind = 1
GROUP BY account_id, link_id, emailing_id;

CREATE TABLE client_counts (
    account_id  INTEGER NOT NULL,
    emailing_id INTEGER NOT NULL,
    device      TEXT NOT NULL,
    client      TEXT NOT NULL,
    os          TEXT NOT NULL,
    n           INTEGER NOT NULL,
    firsts      INTEGER NOT NULL,
    PRIMARY KEY (account_id, emailing_id, device, client, os)
) WITHOUT ROWID;
INSERT INTO client_counts (account_id, emailing_id, device, client, os, n, firsts)
SELECT account_id, emailing_id, coalesce(device, ''), coalesce(client, ''), coalesce(os, ''),
    count(*), sum(first)
FROM events WHERE kind = 2
GROUP BY account_id, emailing_id, coalesce(device, ''), coalesce(client, ''), coalesce(os, '');

CREATE TABLE clickers (
    account_id     INTEGER NOT NULL,
    destination_id INTEGER NOT NULL,
    PRIMARY KEY (account_id, destination_id)
) WITHOUT ROWID;
INSERT INTO clickers (account_id, destination_id)
SELECT DISTINCT account_id, destination_id FROM events WHERE kind = 1;

CREATE TABLE reach_counts (
    account_id  INTEGER NOT NULL,
    emailing_id INTEGER NOT NULL,
    kind        INTEGER NOT NULL,
    n           INTEGER NOT NULL,
    PRIMARY KEY (account_id, emailing_id, kind)
) WITHOUT ROWID;
INSERT INTO reach_counts (account_id, emailing_id, kind, n)
SELECT account_id, emailing_id, 1, count(DISTINCT destination_id) FROM events WHERE kind = 1
GROUP BY account_id, emailing_id;

CREATE TABLE bounce_counts (
    account_id   INTEGER NOT NULL,
    emailing_id  INTEGER NOT NULL,
    errortype    TEXT NOT NULL,
    errorcode    TEXT NOT NULL,
    n            INTEGER NOT NULL,
    destinations INTEGER NOT NULL,
    PRIMARY KEY (account_id, emailing_id, errortype, errorcode)
) WITHOUT ROWID;
CREATE TABLE bouncers (
    account_id     INTEGER NOT NULL,
    destination_id INTEGER NOT NULL,
    errortype      TEXT NOT NULL,
    errorcode      TEXT NOT NULL,
    PRIMARY KEY (account_id, destination_id, errortype, errorcode)
) WITHOUT ROWID;
INSERT INTO bouncers (account_id, destination_id, errortype, errorcode)
SELECT DISTINCT account_id, destination_id, coalesce(errortype, ''), coalesce(errorcode, '')
FROM events WHERE kind = 4;
INSERT INTO bounce_counts (account_id, emailing_id, errortype, errorcode, n, destinations)
SELECT account_id, emailing_id, coalesce(errortype, ''), coalesce(errorcode, ''), count(*),
    count(DISTINCT destination_id)
FROM events WHERE kind = 4
GROUP BY account_id, emailing_id, coalesce(errortype, ''), coalesce(errorcode, '');

-- Events and `first` flags per country of origin (mailstats.geo; "" when unknown).
CREATE TABLE country_counts (
    account_id  INTEGER NOT NULL,
    emailing_id INTEGER NOT NULL,
    kind        INTEGER NOT NULL,
    country     TEXT NOT NULL,
    n           INTEGER NOT NULL,
    firsts      INTEGER NOT NULL,
    PRIMARY KEY (account_id, emailing_id, kind, country)
) WITHOUT ROWID;
INSERT INTO country_counts (account_id, emailing_id, kind, country, n, firsts)
SELECT account_id, emailing_id, kind, coalesce(country, ''), count(*), sum(first) FROM events
GROUP BY account_id, emailing_id, kind, coalesce(country, '');
