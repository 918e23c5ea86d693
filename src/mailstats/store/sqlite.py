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

from mailstats.store import queries, verdicts
from mailstats.store import sqlite_batch as batch
from mailstats.store.base import BLOCK_BITS, Backend, Cursor, Event, Params, Row
from mailstats.store.capture import SQLiteCapture
from mailstats.store.derive import Derived
from mailstats.store.events import event_row
from mailstats.store.privacy import ip_prefix

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
        self._staging = False
        self._capture: SQLiteCapture | None = None
        memory = self.path in ("", ":memory:")
        self._capture_path = ":memory:" if memory else self.path + ".capture"
        self._stage_rows = batch.stage_rows_sql()
        self._role: bool | None = None
        self._role_file: IO[bytes] | None = None
        # the batch's places by batch row, and (asn, organisation) -> networks.id
        self._located: dict[int, tuple[str, int | None]] = {}
        self._network_ids: dict[tuple[int, str], int] = {}
        self._network_top = -1
        self._writer.create_function("geo_country", 1, self._country, deterministic=True)
        self._writer.create_function("geo_network", 1, self._network, deterministic=True)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        for pragma in _PRAGMAS:
            conn.execute(pragma)
        # `ip=truncated` (PostgreSQL has the same function, made by its 0009 migration)
        conn.create_function("mailstats_ip_prefix", 1, ip_prefix, deterministic=True)
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
        """A write transaction on the main database, with the batch tables emptied.

        Not BEGIN IMMEDIATE: that would take the write lock of the attached capture log
        too, and hold up every capture commit for the length of the transaction. A no-op
        write takes the main database's lock first instead (so nothing read in the
        transaction can be overtaken by another writer before it writes).
        """
        with self._write_lock:
            cur = self._writer.cursor()
            if not self._staging:
                self._prepare(cur)
            cur.execute("BEGIN")
            try:
                cur.execute("UPDATE schema_migrations SET applied_at = applied_at WHERE 0")
                cur.execute("DELETE FROM temp.batch")
                yield cur
            except BaseException:
                self._writer.rollback()
                self._network_top = -1  # networks added in it are gone: read them again
                raise
            else:
                cur.execute("COMMIT")

    def _prepare(self, cur: sqlite3.Cursor) -> None:
        """Once per connection: the capture log attached, the batch tables made."""
        cur.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)"
        )
        self.capture  # noqa: B018 - makes the file and its table
        cur.execute("ATTACH DATABASE ? AS cap", (self._capture_path,))
        for statement in (*batch.STAGING, verdicts.SQLITE_HINTS):
            cur.execute(statement)
        self._staging = True

    def insert_events(self, events: Sequence[Event], now: float | None = None) -> int:
        """Insert new events with set-based SQL; return how many were new.

        In each (kind, destination, link) group the earliest event is `first`, ties going
        to the one stored first, so an event that arrives late with an earlier time takes
        the flag over: `unique` always means the earliest, whatever the order of arrival.
        A replay (a key already stored, or named twice) inserts nothing. IDs are drawn in
        batch order, and the event_blocks counters change in the same transaction.
        """
        if not events:
            return 0
        rows = [(n, *event_row(event, 0)) for n, event in enumerate(events)]
        with self._transaction() as cur:
            cur.executemany(self._stage_rows, rows)
            return self._derive_staged(cur, now)[0]

    def _derive_staged(self, cur: sqlite3.Cursor, now: float | None = None) -> tuple[int, int]:
        """Store what is staged; return (events new, hits dropped)."""
        cur.execute(batch.RESOLVE)
        dropped = max(0, cur.execute(batch.DROP).rowcount)
        cur.execute(batch.REPLAYS)
        captured = cur.execute(verdicts.SQLITE_CAPTURED).fetchall()  # before any trimming
        low, high, count, stored = cur.execute(batch.SPAN).fetchone()
        if not count:
            self._verdicts(cur, verdicts.NOTHING, (), now)
            return 0, dropped
        if high - low + 1 == count:
            cur.execute(batch.IDS_RUN, (stored + 1 - low,))
        else:
            for statement in batch.IDS_RANKED[:-1]:
                cur.execute(statement)
            cur.execute(batch.IDS_RANKED[-1], (stored,))
        # the place of each address first, from the full value; the privacy modes last
        located = batch.LOCATED if self._locate(cur) else batch.UNLOCATED
        for statement in batch.PRIVACY:  # last before the insert: see sqlite_batch.PRIVACY
            cur.execute(statement)
        bits = self.block_bits()
        for statement in batch.DERIVE:
            cur.execute(statement.format(bits=bits, located=located))
        self._located = {}
        cur.execute(batch.OUTBOX)
        self._verdicts(cur, "{a}.id > ?", (stored,), now, captured)
        return int(cur.execute("SELECT count(*) FROM temp.batch").fetchone()[0]), dropped

    def _verdicts(self, cur: sqlite3.Cursor, fresh: str, args: Sequence[int],
                  now: float | None = None, captured: Sequence[verdicts.Captured] = ()) -> None:  # fmt: skip
        """The verdict steps (store/verdicts.py) for the events `fresh` selects."""
        now = time.time() if now is None else now
        verdicts.step(cur, verdicts.SQLITE, fresh, args, now, self.rules, self.block_bits(),
                      captured)  # fmt: skip

    def settle(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        if not verdicts.due(self._reader(), verdicts.SQLITE, now, self.rules):
            return
        with self._transaction() as cur:
            self._verdicts(cur, verdicts.NOTHING, (), now)

    def rescore(self, destinations: Sequence[int], now: float | None = None) -> None:
        with self._transaction() as cur:
            verdicts.reset(cur, verdicts.SQLITE, destinations, self.block_bits())
            fresh = f"{{a}}.destination_id IN ({', '.join('?' for _ in destinations)})"
            stored = cur.execute(verdicts.stored_sql(verdicts.SQLITE, fresh), destinations)
            self._verdicts(cur, fresh, destinations, now, stored.fetchall())

    def _locate(self, cur: sqlite3.Cursor) -> bool:
        """The staged events' country and network, from their full address (mailstats.geo),
        kept by batch row for the insert; False if there is nothing to look up."""
        self._located = {}
        if not self.geo.on:
            return False
        rows = cur.execute(batch.PLACE_ADDRESSES).fetchall()
        if not rows:
            return False
        places = self.geo.places(ip for _, ip in rows)
        ids = self._networks(cur, {(p.asn or 0, p.asnorg) for p in places.values() if p.asnorg})
        pairs = {ip: (p.country, ids[p.asn or 0, p.asnorg] if p.asnorg else None)
                 for ip, p in places.items()}  # fmt: skip
        self._located = {n: pairs[ip] for n, ip in rows}
        return True

    def _networks(
        self, cur: sqlite3.Cursor, wanted: set[tuple[int, str]]
    ) -> dict[tuple[int, str], int]:
        """networks.id of each (asn, organisation), new ones added. The writer holds the
        write lock, so the table changes only here or in another process (seen by its top)."""
        top = int(cur.execute(batch.NETWORKS_TOP).fetchone()[0])
        if top != self._network_top:
            rows = cur.execute(batch.NETWORKS_ALL).fetchall()
            self._network_ids = {(int(asn), str(name)): int(i) for i, asn, name in rows}
            self._network_top = top
        for key in wanted - self._network_ids.keys():
            cur.execute(batch.NETWORK_ADD, key)
            self._network_ids[key] = self._network_top = int(cur.lastrowid or 0)
        return self._network_ids

    def _country(self, n: int) -> str | None:
        found = self._located.get(n)
        return found[0] if found else None

    def _network(self, n: int) -> int | None:
        found = self._located.get(n)
        return found[1] if found else None

    @property
    def capture(self) -> SQLiteCapture:
        """The capture log, in a file of its own beside the database."""
        if self._capture is None:
            self._capture = SQLiteCapture(self._capture_path)
        return self._capture

    def derive(self, limit: int, *, trim: bool = True) -> Derived:
        """Derive the oldest `limit` events of the log. They leave it after their events
        are committed, so a crash in between derives them again, and their keys store them
        once. `trim` False leaves them there (to show exactly that)."""
        if not self.capture.waiting():
            self.settle()  # only verdicts whose window has passed, if any
            return Derived()  # nothing waits: no write transaction either
        with self._transaction() as cur:
            span = cur.execute(
                "SELECT min(id), max(id), count(*), min(captured)"
                " FROM (SELECT id, captured FROM cap.log ORDER BY id LIMIT ?)",
                (limit,),
            ).fetchone()
            if span[0] is None:
                return Derived()
            cur.execute(batch.STAGE_LOG, (span[0], span[1]))
            stored, dropped = self._derive_staged(cur)
        if trim:
            with self._write_lock:
                self._writer.execute("DELETE FROM cap.log WHERE id <= ?", (span[1],))
        return Derived(int(span[2]), stored, dropped, [float(span[3])])

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
        with self._transaction():
            pass  # makes schema_migrations
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
