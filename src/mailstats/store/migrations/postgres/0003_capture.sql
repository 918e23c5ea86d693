-- Capture first, derive after: tracking hits are appended to capture_log, one row per
-- event with nothing but the primary key; the indexer takes rows off it and derives events,
-- flags and counters in one transaction. Account 0: a hit whose account and emailing the
-- indexer finds from its destination.
CREATE TABLE capture_log (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    captured       DOUBLE PRECISION NOT NULL,  -- epoch seconds
    kind           SMALLINT NOT NULL,
    key            BYTEA NOT NULL,
    ts             BIGINT NOT NULL,
    account_id     BIGINT NOT NULL,
    emailing_id    BIGINT NOT NULL,
    destination_id BIGINT NOT NULL,
    link_id        BIGINT NOT NULL,
    ip             TEXT,
    useragent      TEXT,
    device         TEXT,
    attempts       BIGINT,
    status         TEXT,
    errorcode      TEXT,
    description    TEXT,
    errortype      TEXT,
    report         TEXT
);

-- A time range is an ID range now (event_blocks knows each block's earliest and latest
-- time, and partitions prune by month), so the indexes on time no longer earn their cost.
DROP INDEX IF EXISTS events_account_ts;
DROP INDEX IF EXISTS events_emailing_ts;
