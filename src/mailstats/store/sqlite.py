"""SQLite: one file in WAL mode, a connection per reading thread, one writing connection."""

from __future__ import annotations

import fcntl
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from importlib import resources
from typing import IO

from mailstats.kinds import DELIVERIES
from mailstats.store import queries
from mailstats.store.base import BLOCK_BITS, Backend, Cursor, Event, Params, Row
from mailstats.store.capture import SQLiteCapture
from mailstats.store.derive import Derived, resolve
from mailstats.store.events import INSERT_COLUMNS, VALUE_COLUMNS, event_row

_PRAGMAS = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",
    "PRAGMA busy_timeout = 10000",
    "PRAGMA foreign_keys = OFF",
    "PRAGMA cache_size = -65536",
)


class SQLiteBackend(Backend):
    dialect = "sqlite"
    placeholder = "?"
    like = "LIKE"
    unindexed = "+"  # before a column: the planner looks for no index on it

    def __init__(self, path: str) -> None:
        self.path = path.removeprefix("sqlite:///").removeprefix("sqlite://")
        self.queries = queries.load("sqlite")
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._writer = self._connect()
        self._stage_sql = _stage_sql()
        self._staging = False
        self._capture: SQLiteCapture | None = None
        self._role: bool | None = None
        self._role_file: IO[bytes] | None = None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        for pragma in _PRAGMAS:
            conn.execute(pragma)
        self._connections.append(conn)
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    def fetch(self, sql: str, params: Params = ()) -> list[Row]:
        return self._reader().execute(sql, params).fetchall()

    def transaction(self) -> AbstractContextManager[Cursor]:
        return self._transaction()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Cursor]:
        with self._write_lock:
            cur = self._writer.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                self._writer.rollback()
                raise
            else:
                cur.execute("COMMIT")

    def insert_events(self, events: Sequence[Event]) -> int:
        """Insert new events with set-based SQL; return how many were new.

        In each (kind, destination, link) group the earliest event is `first`, ties going
        to the one stored first, so an event that arrives late with an earlier time takes
        the flag over: `unique` always means the earliest, whatever the order of arrival.
        A replay (a key already stored, or named twice) inserts nothing. IDs are drawn in
        batch order, and the event_blocks counters change in the same transaction.
        """
        if not events:
            return 0
        bits = self.block_bits()
        rows = [(n, *event_row(event, 0)) for n, event in enumerate(events)]
        with self._transaction() as cur:
            if not self._staging:
                for statement in _STAGING:
                    cur.execute(statement)
                self._staging = True
            cur.execute("DELETE FROM temp.batch")
            cur.executemany(self._stage_sql, rows)
            for statement in _DERIVE:
                cur.execute(statement.format(bits=bits))
            new = int(cur.execute("SELECT count(*) FROM temp.batch").fetchone()[0])
        return new

    @property
    def capture(self) -> SQLiteCapture:
        """The capture log, in a file of its own beside the database."""
        if self._capture is None:
            memory = self.path in ("", ":memory:")
            self._capture = SQLiteCapture(":memory:" if memory else self.path + ".capture")
        return self._capture

    def derive(self, limit: int) -> Derived:
        """Derive the oldest batches; they leave the log after their events are committed,
        so a crash in between derives them again, and their keys store them once."""
        taken = self.capture.take(limit)
        if not taken.ids:
            return Derived()
        events, dropped = resolve(self.fetch, self.queries, taken.events)
        stored = self.insert_events(events)
        self.capture.remove(taken.ids)
        return Derived(len(taken.events), stored, dropped, taken.captured)

    def indexer_role(self) -> bool:
        """Held through an exclusive lock on a file beside the database, until exit."""
        if self._role is None:
            if self.path in ("", ":memory:"):
                self._role = True
            else:
                fh = open(self.path + ".indexer", "a+b")  # noqa: SIM115 - held until exit
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    fh.close()
                    return False
                self._role_file = fh
                self._role = True
        return self._role

    def migrate(self, block_bits: int = BLOCK_BITS) -> list[str]:
        with self._write_lock:
            self._writer.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations"
                " (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)"
            )
        done = {row[0] for row in self.fetch("SELECT name FROM schema_migrations")}
        applied = []
        folder = resources.files("mailstats.store") / "migrations" / "sqlite"
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if not entry.name.endswith(".sql") or entry.name in done:
                continue
            with self.transaction() as cur:
                if cur.execute(
                    "SELECT 1 FROM schema_migrations WHERE name = ?", (entry.name,)
                ).fetchone():
                    continue
                for statement in _statements(entry.read_text(encoding="utf-8")):
                    cur.execute(statement)
                cur.execute(
                    "INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
                    (entry.name, int(time.time())),
                )
            applied.append(entry.name)
        with self.transaction() as cur:
            self._make_layout(cur, block_bits)
        return applied

    def close(self) -> None:
        for conn in self._connections:
            conn.close()
        self._connections.clear()
        if self._capture is not None:
            self._capture.close()
            self._capture = None
        if self._role_file is not None:
            self._role_file.close()  # releases the indexer role
            self._role_file, self._role = None, None


def _statements(script: str) -> list[str]:
    """Split a migration into statements (migrations hold no semicolons inside literals)."""
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _stage_sql() -> str:
    marks = ", ".join("?" for _ in INSERT_COLUMNS)
    return f"INSERT INTO temp.batch (n, {', '.join(INSERT_COLUMNS)}) VALUES (?, {marks})"


_VALUES = ", ".join(VALUE_COLUMNS)
# A batch on its way into `events`, one row per event in batch order (n). `id` is drawn
# before the insert, so flags and counters come from this table alone.
_STAGING = (
    "PRAGMA temp_store = MEMORY",
    f"""CREATE TEMP TABLE IF NOT EXISTS batch (
        n INTEGER PRIMARY KEY, id INTEGER, kind INTEGER, key BLOB, ts INTEGER,
        account_id INTEGER, emailing_id INTEGER, destination_id INTEGER, link_id INTEGER,
        first INTEGER, retried INTEGER NOT NULL DEFAULT 0, {_VALUES})""",
    "CREATE INDEX IF NOT EXISTS temp.batch_key ON batch (key)",
    "CREATE TEMP TABLE IF NOT EXISTS ranks (k INTEGER PRIMARY KEY, n INTEGER UNIQUE)",
    "CREATE INDEX IF NOT EXISTS temp.batch_pair ON batch (kind, destination_id, link_id, ts, n)",
)
_PAIR = "(kind, destination_id, link_id)"
_DERIVE = (
    # replays: keys already stored, or named earlier in the batch
    "DELETE FROM temp.batch WHERE key IN"
    " (SELECT e.key FROM events e WHERE e.key IN (SELECT key FROM temp.batch))",
    "DELETE FROM temp.batch WHERE n > (SELECT min(b.n) FROM temp.batch b WHERE b.key = batch.key)",
    # IDs in batch order, above every stored one: the rank of each row comes from the
    # rowids of a second table filled in batch order
    "DELETE FROM temp.ranks",
    "INSERT INTO temp.ranks (n) SELECT n FROM temp.batch ORDER BY n",
    "UPDATE temp.batch SET id = (SELECT coalesce(max(id), 0) FROM events)"
    " + (SELECT r.k FROM temp.ranks r WHERE r.n = batch.n)",
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
