-- Counters kept with every insert: per account, kind, block of IDs (id >> block_bits, fixed
-- in meta when the layout is made) and emailing, how many events and `first` flags, and the
-- earliest and latest time. Totals, statistics and deep offsets add whole blocks up instead
-- of counting rows; a block whose time span straddles a bound is counted row by row.
CREATE TABLE event_blocks (
    account_id  BIGINT NOT NULL,
    kind        SMALLINT NOT NULL,
    block       BIGINT NOT NULL,
    emailing_id BIGINT NOT NULL,
    n           BIGINT NOT NULL,
    firsts      BIGINT NOT NULL,
    min_ts      BIGINT NOT NULL,
    max_ts      BIGINT NOT NULL,
    retries     BIGINT NOT NULL DEFAULT 0, -- deliveries after more than one attempt
    retried     BIGINT NOT NULL DEFAULT 0, -- ... the first of them for their destination
    PRIMARY KEY (account_id, kind, block, emailing_id)
);
CREATE INDEX event_blocks_emailing ON event_blocks (emailing_id, kind, block)
    INCLUDE (n, firsts, min_ts, max_ts);

-- Every destination with a delivery after more than one attempt (for `retried` above).
CREATE TABLE retried (
    destination_id BIGINT PRIMARY KEY
);
