"""SQLite's set-based insert: a batch staged in a temporary table, then a few statements.

The batch comes either from Python (events reported through the API) or straight from the
capture log (attached as `cap`), which costs no Python per event. IDs are drawn before the
insert, so flags and counters are computed from the staged rows alone.
"""

from __future__ import annotations

from mailstats.kinds import CLICKS, DELIVERIES, ERRORS, IMPRESSIONS, KINDS
from mailstats.store.events import GEO_COLUMNS, INSERT_COLUMNS, VALUE_COLUMNS

_VALUES = ", ".join(VALUE_COLUMNS)
VERDICT_KINDS = ", ".join(str(kind.code) for kind in KINDS.values() if kind.verdicts)
_BOUNDS = {c.name: c.max_length for kind in KINDS.values() for c in kind.columns}

# One row per event in batch order (n). `hit`: captured by a tracking endpoint, with its
# account and emailing still to be found from its destination.
STAGING = (
    "PRAGMA temp_store = MEMORY",
    f"""CREATE TEMP TABLE IF NOT EXISTS batch (
        n INTEGER PRIMARY KEY, id INTEGER, kind INTEGER, key BLOB UNIQUE, ts INTEGER,
        account_id INTEGER, emailing_id INTEGER, destination_id INTEGER, link_id INTEGER,
        first INTEGER NOT NULL DEFAULT 0, retried INTEGER NOT NULL DEFAULT 0,
        reasons INTEGER NOT NULL DEFAULT 0, settled INTEGER NOT NULL DEFAULT 1,
        hit INTEGER NOT NULL DEFAULT 0, country TEXT, network_id INTEGER, {_VALUES})""",
    "CREATE TEMP TABLE IF NOT EXISTS ranks (k INTEGER PRIMARY KEY, n INTEGER UNIQUE)",
)


def stage_rows_sql() -> str:
    """Staging from Python: (n, *INSERT_COLUMNS) per event."""
    marks = ", ".join("?" for _ in INSERT_COLUMNS)
    return f"INSERT OR IGNORE INTO temp.batch (n, {', '.join(INSERT_COLUMNS)}) VALUES (?, {marks})"


def _bounded(name: str) -> str:
    bound = _BOUNDS.get(name, 0)
    return f"substr({name}, 1, {bound})" if bound else name


# Staging from the log: rows with IDs in [?, ?], long values cut to their column's bound.
# (Staging keeps the first of the rows that name one key: a key twice is a replay.)
STAGE_LOG = f"""
INSERT OR IGNORE INTO temp.batch (n, kind, key, ts, account_id, emailing_id, destination_id, link_id,
    hit, reasons, settled, {_VALUES})
SELECT id, kind, key, ts, account_id, emailing_id, destination_id, link_id, account_id = 0,
    reasons, kind NOT IN ({VERDICT_KINDS}), {", ".join(_bounded(name) for name in VALUE_COLUMNS)}
FROM cap.log WHERE id >= ? AND id <= ?
"""
# Hits get their account and emailing; those naming no destination, or a link of another
# emailing (only a token signed for another database can), are dropped.
RESOLVE = """
UPDATE temp.batch SET account_id = d.account_id, emailing_id = d.emailing_id
FROM destinations d WHERE batch.hit AND d.id = batch.destination_id
"""
DROP = f"""
DELETE FROM temp.batch WHERE hit AND (account_id = 0 OR (kind = {CLICKS.code} AND NOT EXISTS
    (SELECT 1 FROM links l WHERE l.id = batch.link_id AND l.emailing_id = batch.emailing_id)))
"""

_PAIR = "(kind, destination_id, link_id)"
# Replays: keys already stored.
REPLAYS = "DELETE FROM temp.batch WHERE EXISTS (SELECT 1 FROM events e WHERE e.key = batch.key)"
# IDs in batch order above every stored one (`n` with gaps: ranks from a second table).
SPAN = "SELECT min(n), max(n), count(*), (SELECT coalesce(max(id), 0) FROM events) FROM temp.batch"
IDS_RUN = "UPDATE temp.batch SET id = n + ?"
IDS_RANKED = (
    "DELETE FROM temp.ranks",
    "INSERT INTO temp.ranks (n) SELECT n FROM temp.batch ORDER BY n",
    "UPDATE temp.batch SET id = ? + (SELECT r.k FROM temp.ranks r WHERE r.n = batch.n)",
)
# Where the events came from (mailstats.geo), its own step: the staged events' full
# addresses are read and looked up in Python (cached by address and prefix), new network
# organisations are added to `networks`, and the insert takes each event's country and
# network from the functions geo_country(n) and geo_network(n), by the event's batch row.
PLACE_ADDRESSES = "SELECT n, ip FROM temp.batch WHERE ip IS NOT NULL AND ip <> ''"
NETWORKS_TOP = "SELECT coalesce(max(id), 0) FROM networks"
NETWORKS_ALL = "SELECT id, asn, name FROM networks"
NETWORK_ADD = "INSERT INTO networks (asn, name) VALUES (?, ?)"
LOCATED = "geo_country(n), geo_network(n)"  # the insert's geo columns, looked up
UNLOCATED = ", ".join(GEO_COLUMNS)  # or as staged (NULL)

_STORED = ", ".join((*INSERT_COLUMNS, *GEO_COLUMNS))
_COLUMNS = ", ".join(INSERT_COLUMNS)
DERIVE = (
    # the earliest of each group is first, unless a stored event is as early or earlier
    f"""UPDATE temp.batch SET first = 1 WHERE n IN (
        SELECT n FROM (SELECT n, row_number() OVER (PARTITION BY {_PAIR[1:-1]} ORDER BY ts, n) AS k
                       FROM temp.batch) WHERE k = 1)
      AND NOT EXISTS (SELECT 1 FROM firsts f WHERE f.kind = batch.kind
          AND f.destination_id = batch.destination_id AND f.link_id = batch.link_id
          AND f.ts <= batch.ts)""",
    # stored events that lose the flag, and their blocks' counts of flags
    """INSERT INTO event_blocks
        (account_id, kind, block, emailing_id, n, firsts, retries, retried, min_ts, max_ts)
    SELECT b.account_id, b.kind, f.event_id >> {bits}, b.emailing_id, 0, -count(*), 0, 0,
        min(f.ts), max(f.ts)
    FROM firsts f JOIN temp.batch b ON (b.kind, b.destination_id, b.link_id)
        = (f.kind, f.destination_id, f.link_id)
    WHERE b.first = 1 GROUP BY b.account_id, b.kind, f.event_id >> {bits}, b.emailing_id
    ON CONFLICT (account_id, kind, block, emailing_id) DO UPDATE SET
        firsts = firsts + excluded.firsts""",
    # ... their quarter hours', links' and (opens) clients' counts of flags
    """INSERT INTO slot_counts (account_id, emailing_id, kind, slot, n, firsts)
    SELECT b.account_id, b.emailing_id, b.kind, f.ts / 900, 0, -count(*)
    FROM firsts f JOIN temp.batch b ON (b.kind, b.destination_id, b.link_id)
        = (f.kind, f.destination_id, f.link_id)
    WHERE b.first = 1 GROUP BY b.account_id, b.emailing_id, b.kind, f.ts / 900
    ON CONFLICT (account_id, emailing_id, kind, slot) DO UPDATE SET
        firsts = firsts + excluded.firsts""",
    f"""UPDATE link_counts SET firsts = firsts - (SELECT count(*) FROM firsts f
        JOIN temp.batch b ON (b.kind, b.destination_id, b.link_id)
            = (f.kind, f.destination_id, f.link_id)
        WHERE b.first = 1 AND b.link_id = link_counts.link_id)
    WHERE link_id IN (SELECT b.link_id FROM temp.batch b JOIN firsts f
        ON (b.kind, b.destination_id, b.link_id) = (f.kind, f.destination_id, f.link_id)
        WHERE b.first = 1 AND b.kind = {CLICKS.code})""",
    f"""INSERT INTO client_counts (account_id, emailing_id, device, client, os, n, firsts)
    SELECT b.account_id, b.emailing_id, coalesce(e.device, ''), coalesce(e.client, ''),
        coalesce(e.os, ''), 0,
        -count(*)
    FROM firsts f JOIN temp.batch b ON (b.kind, b.destination_id, b.link_id)
        = (f.kind, f.destination_id, f.link_id)
    JOIN events e ON e.id = f.event_id
    WHERE b.first = 1 AND b.kind = {IMPRESSIONS.code}
    GROUP BY b.account_id, b.emailing_id, coalesce(e.device, ''), coalesce(e.client, ''),
        coalesce(e.os, '')
    ON CONFLICT (account_id, emailing_id, device, client, os) DO UPDATE SET
        firsts = firsts + excluded.firsts""",
    """INSERT INTO country_counts (account_id, emailing_id, kind, country, n, firsts)
    SELECT b.account_id, b.emailing_id, b.kind, coalesce(e.country, ''), 0, -count(*)
    FROM firsts f JOIN temp.batch b ON (b.kind, b.destination_id, b.link_id)
        = (f.kind, f.destination_id, f.link_id)
    JOIN events e ON e.id = f.event_id
    WHERE b.first = 1 GROUP BY b.account_id, b.emailing_id, b.kind, coalesce(e.country, '')
    ON CONFLICT (account_id, emailing_id, kind, country) DO UPDATE SET
        firsts = firsts + excluded.firsts""",
    """UPDATE events SET first = 0 WHERE id IN (SELECT f.event_id FROM firsts f
        JOIN temp.batch b ON (b.kind, b.destination_id, b.link_id)
            = (f.kind, f.destination_id, f.link_id) WHERE b.first = 1)""",
    """INSERT OR REPLACE INTO firsts (kind, destination_id, link_id, event_id, ts)
    SELECT kind, destination_id, link_id, id, ts FROM temp.batch WHERE first = 1""",
    # deliveries after a retry: the first of each destination not yet in `retried`
    f"""UPDATE temp.batch SET retried = 1 WHERE n IN (
        SELECT min(n) FROM temp.batch WHERE kind = {DELIVERIES.code} AND attempts > 1
          AND destination_id NOT IN (SELECT destination_id FROM retried)
        GROUP BY destination_id)""",
    "INSERT OR IGNORE INTO retried (destination_id)"
    " SELECT destination_id FROM temp.batch WHERE retried = 1",
    f"""INSERT INTO events (id, {_STORED})
    SELECT id, {_COLUMNS}, {{located}} FROM temp.batch ORDER BY n""",
    f"""INSERT INTO event_blocks
        (account_id, kind, block, emailing_id, n, firsts, retries, retried, min_ts, max_ts)
    SELECT account_id, kind, id >> {{bits}}, emailing_id, count(*), sum(first),
        sum(CASE WHEN kind = {DELIVERIES.code} AND attempts > 1 THEN 1 ELSE 0 END),
        sum(retried), min(ts), max(ts)
    FROM temp.batch GROUP BY account_id, kind, id >> {{bits}}, emailing_id
    ON CONFLICT (account_id, kind, block, emailing_id) DO UPDATE SET
        n = n + excluded.n, firsts = firsts + excluded.firsts,
        retries = retries + excluded.retries, retried = retried + excluded.retried,
        min_ts = min(min_ts, excluded.min_ts), max_ts = max(max_ts, excluded.max_ts)""",
    # the dashboard's counters (migration 0012_facets); countries from the rows just
    # stored, as they are looked up on their way in (the batch's IDs are one run)
    """INSERT INTO country_counts (account_id, emailing_id, kind, country, n, firsts)
    SELECT account_id, emailing_id, kind, coalesce(country, ''), count(*), sum(first)
    FROM events WHERE id >= (SELECT min(id) FROM temp.batch)
        AND id <= (SELECT max(id) FROM temp.batch)
    GROUP BY account_id, emailing_id, kind, coalesce(country, '')
    ON CONFLICT (account_id, emailing_id, kind, country) DO UPDATE SET
        n = n + excluded.n, firsts = firsts + excluded.firsts""",
    """INSERT INTO slot_counts (account_id, emailing_id, kind, slot, n, firsts)
    SELECT account_id, emailing_id, kind, ts / 900, count(*), sum(first) FROM temp.batch
    GROUP BY account_id, emailing_id, kind, ts / 900
    ON CONFLICT (account_id, emailing_id, kind, slot) DO UPDATE SET
        n = n + excluded.n, firsts = firsts + excluded.firsts""",
    f"""INSERT INTO link_counts (account_id, link_id, emailing_id, n, firsts)
    SELECT account_id, link_id, emailing_id, count(*), sum(first) FROM temp.batch
    WHERE kind = {CLICKS.code} GROUP BY account_id, link_id, emailing_id
    ON CONFLICT (account_id, link_id) DO UPDATE SET
        n = n + excluded.n, firsts = firsts + excluded.firsts""",
    f"""INSERT INTO client_counts (account_id, emailing_id, device, client, os, n, firsts)
    SELECT account_id, emailing_id, coalesce(device, ''), coalesce(client, ''), coalesce(os, ''),
        count(*), sum(first)
    FROM temp.batch WHERE kind = {IMPRESSIONS.code}
    GROUP BY account_id, emailing_id, coalesce(device, ''), coalesce(client, ''), coalesce(os, '')
    ON CONFLICT (account_id, emailing_id, device, client, os) DO UPDATE SET
        n = n + excluded.n, firsts = firsts + excluded.firsts""",
    # recipients clicking for the first time (any link), counted before they are kept
    f"""INSERT INTO reach_counts (account_id, emailing_id, kind, n)
    SELECT account_id, emailing_id, {CLICKS.code}, count(DISTINCT destination_id)
    FROM temp.batch b WHERE kind = {CLICKS.code} AND NOT EXISTS
        (SELECT 1 FROM clickers c WHERE (c.account_id, c.destination_id)
            = (b.account_id, b.destination_id))
    GROUP BY account_id, emailing_id
    ON CONFLICT (account_id, emailing_id, kind) DO UPDATE SET n = n + excluded.n""",
    f"""INSERT OR IGNORE INTO clickers (account_id, destination_id)
    SELECT account_id, destination_id FROM temp.batch WHERE kind = {CLICKS.code}""",
    # bounces per type and code, and the recipients each reached (counted before kept)
    f"""INSERT INTO bounce_counts (account_id, emailing_id, errortype, errorcode, n, destinations)
    SELECT account_id, emailing_id, coalesce(errortype, ''), coalesce(errorcode, ''), count(*),
        count(DISTINCT CASE WHEN NOT EXISTS (SELECT 1 FROM bouncers x
            WHERE (x.account_id, x.destination_id, x.errortype, x.errorcode) = (b.account_id,
                b.destination_id, coalesce(b.errortype, ''), coalesce(b.errorcode, '')))
            THEN destination_id END)
    FROM temp.batch b WHERE kind = {ERRORS.code}
    GROUP BY account_id, emailing_id, coalesce(errortype, ''), coalesce(errorcode, '')
    ON CONFLICT (account_id, emailing_id, errortype, errorcode) DO UPDATE SET
        n = n + excluded.n, destinations = destinations + excluded.destinations""",
    f"""INSERT OR IGNORE INTO bouncers (account_id, destination_id, errortype, errorcode)
    SELECT account_id, destination_id, coalesce(errortype, ''), coalesce(errorcode, '')
    FROM temp.batch WHERE kind = {ERRORS.code}""",
)

# Privacy (store/privacy.py), the last change to the batch before its rows go into events:
# anything derived from the full address or user agent must run before it. An account's
# `ip` and `useragent` modes, then nothing at all for a destination whose personal data was
# cleared (erased, or past its retention) and that is still being clicked.
PRIVACY = (
    """UPDATE temp.batch SET
        ip = CASE s.ip WHEN 'none' THEN NULL
            WHEN 'truncated' THEN mailstats_ip_prefix(batch.ip) ELSE batch.ip END,
        useragent = CASE s.useragent WHEN 'parsed' THEN NULL ELSE batch.useragent END
    FROM account_settings s
    WHERE s.account_id = batch.account_id AND (s.ip <> 'full' OR s.useragent <> 'full')
      AND (batch.ip IS NOT NULL OR batch.useragent IS NOT NULL)""",
    """UPDATE temp.batch SET ip = NULL, useragent = NULL
    WHERE (ip IS NOT NULL OR useragent IS NOT NULL) AND destination_id IN
        (SELECT id FROM destinations WHERE cleared_at IS NOT NULL
         AND id IN (SELECT destination_id FROM temp.batch))""",
)

# The webhook outbox: each new event's ID for every endpoint of its account that takes its
# kind, in the transaction that makes it visible (see mailstats.webhooks).
OUTBOX = """
INSERT INTO webhook_outbox (webhook_id, event_id)
SELECT w.id, b.id FROM temp.batch b JOIN webhooks w ON w.account_id = b.account_id
WHERE ((w.kinds >> b.kind) & 1) = 1
"""
