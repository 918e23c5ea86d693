-- Capture first, derive after: tracking hits are appended to capture_log, one row per
-- group commit (the events of the batch as JSON lines), with nothing but the primary key;
-- the indexer takes rows off it and derives events, flags and counters in one transaction.
CREATE TABLE capture_log (
    id   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    n    INTEGER NOT NULL,            -- events in the batch
    ts   DOUBLE PRECISION NOT NULL,   -- when it was captured, epoch seconds
    data BYTEA NOT NULL
);

-- A time range is an ID range now (event_blocks knows each block's earliest and latest
-- time, and partitions prune by month), so the indexes on time no longer earn their cost.
DROP INDEX IF EXISTS events_account_ts;
DROP INDEX IF EXISTS events_emailing_ts;
