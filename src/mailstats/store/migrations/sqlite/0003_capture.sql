-- Capture first, derive after: tracking hits go to a capture log of their own (a separate
-- file, see store/capture.py) and the indexer derives events from it in batches.
-- A time range is an ID range now (event_blocks knows each block's earliest and latest
-- time), so the indexes on time no longer earn what they cost every insert.
DROP INDEX IF EXISTS events_account_ts;
DROP INDEX IF EXISTS events_emailing_ts;
