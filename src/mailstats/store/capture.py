"""The capture log: what a visitor waits for, and nothing more.

A tracking hit is durable once its batch is appended to a narrow log, one row per group
commit, with no index but the primary key. The indexer (derive.py) drains the log into
`events`, flags and counters a moment later. SQLite keeps the log in a file of its own
beside the database, so an append never waits for a long derive transaction; PostgreSQL
keeps it in the `capture_log` table, so the indexer takes rows and writes what they become
in one transaction.

A batch is stored as the spool stores it: one JSON array per event and line.
"""

from __future__ import annotations

import abc
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from mailstats.kinds import KINDS
from mailstats.store.base import Cursor, Event

_KINDS_BY_CODE = {kind.code: kind for kind in KINDS.values()}


def encode(events: Iterable[Event]) -> bytes:
    """Events as JSON lines (what the spool and the capture log hold)."""
    return b"".join(
        orjson.dumps(
            [
                e.kind.code,
                e.key.hex(),
                e.ts,
                e.account_id,
                e.emailing_id,
                e.destination_id,
                e.link_id,
                e.values,
            ]
        )
        + b"\n"
        for e in events
    )


def decode(lines: Iterable[bytes]) -> Iterator[Event]:
    """The events of JSON lines; a torn line (never acknowledged) is skipped."""
    for line in lines:
        try:
            code, key, ts, account, emailing, dest, link, values = orjson.loads(line)
        except (orjson.JSONDecodeError, ValueError):
            continue
        yield Event(
            _KINDS_BY_CODE[code],
            bytes.fromhex(key),
            ts,
            account,
            emailing,
            dest,
            link,
            tuple(values),
        )


def decode_batch(data: bytes) -> list[Event]:
    return list(decode(data.splitlines()))


@dataclass(frozen=True)
class Backlog:
    """Events captured but not derived yet, and when the oldest of them was captured."""

    batches: int
    events: int
    oldest: float | None  # epoch seconds

    def age(self, now: float | None = None) -> float:
        """Seconds since the oldest waiting batch was captured (0 when there is none)."""
        if self.oldest is None:
            return 0.0
        return max(0.0, (time.time() if now is None else now) - self.oldest)


@dataclass(frozen=True)
class Taken:
    """Batches read from the log: their row IDs and their events, in capture order."""

    ids: list[int]
    events: list[Event]
    captured: list[float]  # capture time of each batch


class CaptureLog(abc.ABC):
    """Append-only batches of events on their way to `events`."""

    @abc.abstractmethod
    def append(self, events: Sequence[Event]) -> None:
        """Store one batch durably; when this returns, the events survive a crash."""

    @abc.abstractmethod
    def backlog(self) -> Backlog: ...

    def close(self) -> None:  # noqa: B027 - a hook, empty where nothing is held
        """Release connections."""


class SQLiteCapture(CaptureLog):
    """The log in its own SQLite file (WAL, synchronous FULL), one row per batch."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn = self._connect()
        self._conn.execute(_SQLITE_TABLE)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        for pragma in ("journal_mode = WAL", "synchronous = FULL", "busy_timeout = 10000"):
            conn.execute(f"PRAGMA {pragma}")
        return conn

    def append(self, events: Sequence[Event]) -> None:
        data = encode(events)
        with self._lock:
            self._conn.execute(
                "INSERT INTO log (n, ts, data) VALUES (?, ?, ?)", (len(events), time.time(), data)
            )

    def take(self, limit: int) -> Taken:
        """The oldest batches, about `limit` events in all (at least one batch)."""
        ids: list[int] = []
        events: list[Event] = []
        captured: list[float] = []
        with self._lock:
            rows = self._conn.execute("SELECT id, ts, n FROM log ORDER BY id LIMIT ?", (limit,))
            count = 0
            for row_id, ts, n in rows:  # read lazily: stop once the batches hold `limit`
                if ids and count + n > limit:
                    break
                ids.append(row_id)
                captured.append(ts)
                count += n
            rows.close()
            if ids:
                found = self._conn.execute(
                    "SELECT data FROM log WHERE id >= ? AND id <= ? ORDER BY id", (ids[0], ids[-1])
                )
                for (data,) in found:
                    events.extend(decode_batch(data))
        return Taken(ids, events, captured)

    def remove(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        with self._lock:
            self._conn.execute(
                "DELETE FROM log WHERE id IN (SELECT value FROM json_each(?))",
                (orjson.dumps(list(ids)).decode(),),
            )

    def backlog(self) -> Backlog:
        with self._lock:
            row = self._conn.execute("SELECT count(*), sum(n), min(ts) FROM log").fetchone()
        return Backlog(int(row[0]), int(row[1] or 0), row[2])

    def close(self) -> None:
        with self._lock:
            self._conn.close()


_SQLITE_TABLE = """
CREATE TABLE IF NOT EXISTS log (
    id   INTEGER PRIMARY KEY,
    n    INTEGER NOT NULL,
    ts   REAL NOT NULL,
    data BLOB NOT NULL
)"""


class PostgresCapture(CaptureLog):
    """The log as the `capture_log` table of the database itself."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    def append(self, events: Sequence[Event]) -> None:
        with self._pool.connection() as conn:
            conn.execute(
                "INSERT INTO capture_log (n, ts, data) VALUES (%s, %s, %s)",
                (len(events), time.time(), encode(events)),
                prepare=True,
            )

    @staticmethod
    def take(cur: Cursor, limit: int) -> Taken:
        """Delete the oldest batches inside the caller's transaction and return them: a
        rollback puts them back."""
        rows = cur.execute(_PG_TAKE, (limit, limit)).fetchall()
        rows.sort(key=lambda r: r[0])
        ids, events, captured = [], [], []
        for row_id, ts, data in rows:
            ids.append(int(row_id))
            captured.append(float(ts))
            events.extend(decode_batch(bytes(data)))
        return Taken(ids, events, captured)

    def backlog(self) -> Backlog:
        with self._pool.connection() as conn:
            row = conn.execute("SELECT count(*), sum(n), min(ts) FROM capture_log").fetchone()
        return Backlog(int(row[0]), int(row[1] or 0), row[2])


# The oldest batches that hold about `limit` events (at least one). The caller holds the
# events lock, so a second indexer (a node whose role was taken over) waits, then finds
# the rows gone.
_PG_TAKE = """
DELETE FROM capture_log WHERE id IN (
    SELECT id FROM (
        SELECT id, sum(n) OVER (ORDER BY id) - n AS before
        FROM (SELECT id, n FROM capture_log ORDER BY id LIMIT %s) oldest
    ) s WHERE before < %s
) RETURNING id, ts, data
"""
