"""SQLite's set-based insert: a batch staged in a temporary table, then a few statements.

The batch comes either from Python (events reported through the API) or straight from the
capture log (attached as `cap`), which costs no Python per event. IDs are drawn before the
insert, so flags and counters are computed from the staged rows alone.
"""

from __future__ import annotations

from mailstats.kinds import CLICKS, DELIVERIES, KINDS
from mailstats.store.events import INSERT_COLUMNS, VALUE_COLUMNS

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
        hit INTEGER NOT NULL DEFAULT 0, {_VALUES})""",
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
    f"""INSERT INTO events (id, {", ".join(INSERT_COLUMNS)})
    SELECT id, {", ".join(INSERT_COLUMNS)} FROM temp.batch ORDER BY n""",
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
)
