"""SQLite: one file in WAL mode, a connection per reading thread, one writing connection."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from importlib import resources

from mailstats.kinds import DELIVERIES
from mailstats.store import queries
from mailstats.store.base import BLOCK_BITS, Backend, Cursor, Event, Params, Row
from mailstats.store.events import INSERT_COLUMNS, event_row

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
        self._insert_sql = _insert_sql()

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
        """Insert new events; the earliest of each (kind, destination, link) is `first`.

        An event that arrives late (a replayed spool) with an earlier time takes the flag
        over, so `unique` always means the earliest, whatever the order of arrival. The
        event_blocks counters change in the same transaction.
        """
        new = 0
        bits = self.block_bits()
        tallies: dict[tuple[int, int, int, int], list[int]] = {}
        with self._transaction() as cur:
            for event in events:
                pair = (event.kind.code, event.destination_id, event.link_id)
                held = cur.execute(_FIRST_GET, pair).fetchone()
                first = held is None or event.ts < held[1]
                cur.execute(self._insert_sql, event_row(event, int(first)))
                if cur.rowcount == 0:
                    continue  # a replay of an event already stored
                new += 1
                event_id = cur.lastrowid
                assert event_id is not None
                retry = retried = 0
                if event.kind is DELIVERIES and (event.values[0] or 0) > 1:
                    retry = 1
                    cur.execute(_RETRIED_PUT, (event.destination_id,))
                    retried = cur.rowcount
                _tally(tallies, event, event_id >> bits, (1, int(first), retry, retried), event.ts)
                if not first:
                    continue
                if held is not None:
                    cur.execute("UPDATE events SET first = 0 WHERE id = ?", (held[0],))
                    _tally(tallies, event, held[0] >> bits, (0, -1, 0, 0), held[1])
                cur.execute(_FIRST_PUT, (*pair, event_id, event.ts))
            cur.executemany(_BLOCK_ADD, [(*key, *t) for key, t in tallies.items()])
        return new

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


def _statements(script: str) -> list[str]:
    """Split a migration into statements (migrations hold no semicolons inside literals)."""
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


_FIRST_GET = "SELECT event_id, ts FROM firsts WHERE kind = ? AND destination_id = ? AND link_id = ?"
_FIRST_PUT = "INSERT OR REPLACE INTO firsts (kind, destination_id, link_id, event_id, ts) VALUES (?, ?, ?, ?, ?)"


_RETRIED_PUT = "INSERT OR IGNORE INTO retried (destination_id) VALUES (?)"
_BLOCK_ADD = """
INSERT INTO event_blocks
    (account_id, kind, block, emailing_id, n, firsts, retries, retried, min_ts, max_ts)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (account_id, kind, block, emailing_id) DO UPDATE SET
    n = n + excluded.n, firsts = firsts + excluded.firsts,
    retries = retries + excluded.retries, retried = retried + excluded.retried,
    min_ts = min(min_ts, excluded.min_ts), max_ts = max(max_ts, excluded.max_ts)
"""


def _tally(
    tallies: dict[tuple[int, int, int, int], list[int]],
    event: Event,
    block: int,
    add: tuple[int, int, int, int],
    ts: int,
) -> None:
    """Add (events, firsts, retries, retried) to the counters of `block` for the event's
    account, kind and emailing, and widen its time span to `ts`."""
    key = (event.account_id, event.kind.code, block, event.emailing_id)
    t = tallies.get(key)
    if t is None:
        tallies[key] = [*add, ts, ts]
    else:
        for i in range(4):
            t[i] += add[i]
        t[4] = min(t[4], ts)
        t[5] = max(t[5], ts)


def _insert_sql() -> str:
    marks = ", ".join("?" for _ in INSERT_COLUMNS)
    return (
        f"INSERT INTO events ({', '.join(INSERT_COLUMNS)}) VALUES ({marks}) ON CONFLICT DO NOTHING"
    )
