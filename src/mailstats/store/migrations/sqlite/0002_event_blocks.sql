-- Counters kept with every insert: per account, kind, block of IDs (id >> block_bits, fixed
-- in meta when the layout is made) and emailing, how many events and `first` flags, and the
-- earliest and latest time. Totals, statistics and deep offsets add whole blocks up instead
-- of counting rows; a block whose time span straddles a bound is counted row by row.
CREATE TABLE event_blocks (
    account_id  INTEGER NOT NULL,
    kind        INTEGER NOT NULL,
    block       INTEGER NOT NULL,
    emailing_id INTEGER NOT NULL,
    n           INTEGER NOT NULL,
    firsts      INTEGER NOT NULL,
    min_ts      INTEGER NOT NULL,
    max_ts      INTEGER NOT NULL,
    retries     INTEGER NOT NULL DEFAULT 0, -- deliveries after more than one attempt
    retried     INTEGER NOT NULL DEFAULT 0, -- ... the first of them for their destination
    PRIMARY KEY (account_id, kind, block, emailing_id)
) WITHOUT ROWID;
CREATE INDEX event_blocks_emailing ON event_blocks (emailing_id, kind, block, n, firsts, min_ts, max_ts);

-- Every destination with a delivery after more than one attempt (for `retried` above).
CREATE TABLE retried (
    destination_id INTEGER PRIMARY KEY
);
