-- Counters the dashboard's emailing page reads instead of the events, kept with every
-- insert like event_blocks: events and `first` flags per quarter hour (slot = ts / 900,
-- so buckets of any zone's hours and days add whole slots up), per link (clicks), per
-- device class, client and OS parsed at capture (impressions; never the agent itself),
-- bounces per error type and code with the recipients they reached, and the recipients with
-- a click (any link).
-- Each is filled from the events already stored.
CREATE TABLE slot_counts (
    account_id  BIGINT NOT NULL,
    emailing_id BIGINT NOT NULL,
    kind        BIGINT NOT NULL,
    slot        BIGINT NOT NULL,
    n           BIGINT NOT NULL,
    firsts      BIGINT NOT NULL,
    PRIMARY KEY (account_id, emailing_id, kind, slot)
);
INSERT INTO slot_counts (account_id, emailing_id, kind, slot, n, firsts)
SELECT account_id, emailing_id, kind, ts / 900, count(*), sum(first) FROM events
GROUP BY account_id, emailing_id, kind, ts / 900;

CREATE TABLE link_counts (
    account_id  BIGINT NOT NULL,
    link_id     BIGINT NOT NULL,
    emailing_id BIGINT NOT NULL,
    n           BIGINT NOT NULL,
    firsts      BIGINT NOT NULL,
    PRIMARY KEY (account_id, link_id)
);
CREATE INDEX link_counts_emailing ON link_counts (emailing_id);
INSERT INTO link_counts (account_id, link_id, emailing_id, n, firsts)
SELECT account_id, link_id, emailing_id, count(*), sum(first) FROM events WHERE kind = 1
GROUP BY account_id, link_id, emailing_id;

CREATE TABLE client_counts (
    account_id  BIGINT NOT NULL,
    emailing_id BIGINT NOT NULL,
    device      TEXT NOT NULL,
    client      TEXT NOT NULL,
    os          TEXT NOT NULL,
    n           BIGINT NOT NULL,
    firsts      BIGINT NOT NULL,
    PRIMARY KEY (account_id, emailing_id, device, client, os)
);
INSERT INTO client_counts (account_id, emailing_id, device, client, os, n, firsts)
SELECT account_id, emailing_id, coalesce(device, ''), coalesce(client, ''), coalesce(os, ''),
    count(*), sum(first)
FROM events WHERE kind = 2
GROUP BY account_id, emailing_id, coalesce(device, ''), coalesce(client, ''), coalesce(os, '');

CREATE TABLE clickers (
    account_id     BIGINT NOT NULL,
    destination_id BIGINT NOT NULL,
    PRIMARY KEY (account_id, destination_id)
);
INSERT INTO clickers (account_id, destination_id)
SELECT DISTINCT account_id, destination_id FROM events WHERE kind = 1;

CREATE TABLE reach_counts (
    account_id  BIGINT NOT NULL,
    emailing_id BIGINT NOT NULL,
    kind        BIGINT NOT NULL,
    n           BIGINT NOT NULL,
    PRIMARY KEY (account_id, emailing_id, kind)
);
INSERT INTO reach_counts (account_id, emailing_id, kind, n)
SELECT account_id, emailing_id, 1, count(DISTINCT destination_id) FROM events WHERE kind = 1
GROUP BY account_id, emailing_id;

CREATE TABLE bounce_counts (
    account_id   BIGINT NOT NULL,
    emailing_id  BIGINT NOT NULL,
    errortype    TEXT NOT NULL,
    errorcode    TEXT NOT NULL,
    n            BIGINT NOT NULL,
    destinations BIGINT NOT NULL,
    PRIMARY KEY (account_id, emailing_id, errortype, errorcode)
);
CREATE TABLE bouncers (
    account_id     BIGINT NOT NULL,
    destination_id BIGINT NOT NULL,
    errortype      TEXT NOT NULL,
    errorcode      TEXT NOT NULL,
    PRIMARY KEY (account_id, destination_id, errortype, errorcode)
);
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
    account_id  BIGINT NOT NULL,
    emailing_id BIGINT NOT NULL,
    kind        BIGINT NOT NULL,
    country     TEXT NOT NULL,
    n           BIGINT NOT NULL,
    firsts      BIGINT NOT NULL,
    PRIMARY KEY (account_id, emailing_id, kind, country)
);
INSERT INTO country_counts (account_id, emailing_id, kind, country, n, firsts)
SELECT account_id, emailing_id, kind, coalesce(country, ''), count(*), sum(first) FROM events
GROUP BY account_id, emailing_id, kind, coalesce(country, '');
