-- Machine events: every click and open gets a verdict (0 human, else a machine class, see
-- mailstats.verdicts) and its reasons (bits); it is `settled` once the verdict window has
-- passed and a derive step looked at it again. Events of other kinds, and every event
-- stored before verdicts, are settled humans. `hfirst`: the earliest settled human event
-- of its (kind, destination, link), what `unique=true` means with `bots=exclude`.
ALTER TABLE events ADD COLUMN verdict SMALLINT NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN reasons INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN settled SMALLINT NOT NULL DEFAULT 1;
ALTER TABLE events ADD COLUMN hfirst SMALLINT NOT NULL DEFAULT 0;
UPDATE events SET hfirst = 1 WHERE first = 1 AND kind IN (1, 2);
-- The few events whose verdict is not settled yet (a minute's worth), by time and by message.
CREATE INDEX events_unsettled ON events (ts) WHERE settled <> 1;
CREATE INDEX events_unsettled_destination ON events (destination_id, kind) WHERE settled <> 1;
CREATE INDEX events_account_hfirst ON events (account_id, kind, id) WHERE hfirst = 1;
-- A message's events by kind and time: what the verdicts look at around each event (other
-- links within a second, the trap link, a delivery). It takes the place of the index by
-- kind and ID (a message's list is sorted from it), so inserts keep one index as before.
DROP INDEX IF EXISTS events_destination;
CREATE INDEX events_destination ON events (destination_id, kind, ts, id);

-- As `firsts`, for settled human clicks and opens.
CREATE TABLE human_firsts (
    kind           SMALLINT NOT NULL,
    destination_id BIGINT NOT NULL,
    link_id        BIGINT NOT NULL,
    event_id       BIGINT NOT NULL,
    ts             BIGINT NOT NULL,
    PRIMARY KEY (kind, destination_id, link_id)
);
INSERT INTO human_firsts SELECT * FROM firsts WHERE kind IN (1, 2);

-- Counters of settled clicks and opens, of the human ones among them and of their `hfirst`
-- flags, so that `bots=exclude` totals and statistics add blocks up as `bots=include` does.
ALTER TABLE event_blocks ADD COLUMN settled BIGINT NOT NULL DEFAULT 0;
ALTER TABLE event_blocks ADD COLUMN humans BIGINT NOT NULL DEFAULT 0;
ALTER TABLE event_blocks ADD COLUMN hfirsts BIGINT NOT NULL DEFAULT 0;
UPDATE event_blocks SET settled = n, humans = n, hfirsts = firsts WHERE kind IN (1, 2);

-- The indexer's scratch table while it settles verdicts (emptied at every step): the new
-- earliest human event of each pair, and the event that held that place before.
CREATE UNLOGGED TABLE settling (
    kind           SMALLINT NOT NULL,
    destination_id BIGINT NOT NULL,
    link_id        BIGINT NOT NULL,
    event_id       BIGINT NOT NULL,
    ts             BIGINT NOT NULL,
    held_id        BIGINT,
    held_ts        BIGINT
);

-- What the capture step already knows of a hit's reasons (a HEAD request).
ALTER TABLE capture_log ADD COLUMN reasons INTEGER NOT NULL DEFAULT 0;
