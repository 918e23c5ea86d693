-- Where an event came from (mailstats.geo), found by the indexer from the full address:
-- its country (ISO 3166-1 alpha-2, '' when unknown, NULL when not looked up) and its
-- network, whose number and organisation are kept once in `networks` (asn 0: no number).
ALTER TABLE events ADD COLUMN country TEXT;
ALTER TABLE events ADD COLUMN network_id INTEGER;
CREATE TABLE networks (
    id   INTEGER PRIMARY KEY,
    asn  INTEGER NOT NULL DEFAULT 0,
    name TEXT NOT NULL,
    UNIQUE (asn, name)
);
