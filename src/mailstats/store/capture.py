"""The capture log: what a visitor waits for, and nothing more.

A tracking hit is durable once its group commit appends it to a narrow log: one row per
event with no index but the primary key, which the indexer (derive.py) copies into
`events`, flags and counters a moment later with SQL alone. SQLite keeps the log in a file
of its own beside the database, so an append never waits for a long derive transaction;
PostgreSQL keeps it in the `capture_log` table, so the indexer takes rows off it and writes
what they become in one transaction.

The spool holds events as JSON lines (`encode`, `decode`).
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
from mailstats.store.base import Event
from mailstats.store.events import VALUE_COLUMNS

_KINDS_BY_CODE = {kind.code: kind for kind in KINDS.values()}


def encode(events: Iterable[Event]) -> bytes:
    """Events as JSON lines (what the spool and the capture log hold)."""
    return b"".join(_line(e) for e in events)


def _line(e: Event) -> bytes:
    record = [e.kind.code, e.key.hex(), e.ts, e.account_id, e.emailing_id, e.destination_id,
              e.link_id, e.values]  # fmt: skip
    try:
        return orjson.dumps(record) + b"\n"
    except TypeError:  # a lone surrogate (from a report's bytes): not UTF-8, so replaced
        record[7] = [_utf8(v) for v in e.values]
        return orjson.dumps(record) + b"\n"


def _utf8(value: object) -> object:
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    return value


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


@dataclass(frozen=True)
class Backlog:
    """Events captured but not derived yet, and when the oldest of them was captured."""

    events: int
    oldest: float | None  # epoch seconds
    messages: int | None = None  # capture on NATS: stream messages (each a group commit)

    def age(self, now: float | None = None) -> float:
        """Seconds since the oldest waiting batch was captured (0 when there is none)."""
        if self.oldest is None:
            return 0.0
        return max(0.0, (time.time() if now is None else now) - self.oldest)


class CaptureLog(abc.ABC):
    """Append-only batches of events on their way to `events`."""

    @abc.abstractmethod
    def append(self, events: Sequence[Event]) -> None:
        """Store one batch durably; when this returns, the events survive a crash."""

    @abc.abstractmethod
    def backlog(self) -> Backlog: ...

    def start(self) -> None:  # noqa: B027 - a hook, empty where nothing is to connect
        """Begin connecting in the background (a server starting serves meanwhile)."""

    def close(self) -> None:  # noqa: B027 - a hook, empty where nothing is held
        """Release connections."""


class SQLiteCapture(CaptureLog):
    """The log as a table in a SQLite file of its own (WAL, synchronous FULL): one row per
    event, nothing but the primary key, so the indexer copies it with SQL alone."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for pragma in ("journal_mode = WAL", "synchronous = FULL", "busy_timeout = 10000"):
            self._conn.execute(f"PRAGMA {pragma}")
        self._conn.execute(SQLITE_TABLE)
        # a log made by an older version lacks the columns kinds gained since
        have = {row[1] for row in self._conn.execute("PRAGMA table_info(log)")}
        for name in ("reasons", *VALUE_COLUMNS):
            if name not in have:
                self._conn.execute(f"ALTER TABLE log ADD COLUMN {name}")
        self._sql: dict[tuple[str, ...], str] = {}

    def append(self, events: Sequence[Event]) -> None:
        names, rows = _columns(events, time.time())
        sql = self._sql.get(names)
        if sql is None:
            marks = ", ".join("?" for _ in range(len(names) + 9))
            sql = self._sql[names] = (
                "INSERT INTO log (captured, kind, key, ts, account_id, emailing_id,"
                f" destination_id, link_id, reasons{''.join(', ' + n for n in names)})"
                f" VALUES ({marks})"
            )
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(sql, rows)
            except BaseException:
                self._conn.rollback()
                raise
            self._conn.execute("COMMIT")

    def backlog(self) -> Backlog:
        with self._lock:
            row = self._conn.execute("SELECT count(*), min(captured) FROM log").fetchone()
        return Backlog(int(row[0]), row[1])

    def waiting(self) -> bool:
        """Whether anything waits to be derived (cheaper than counting it)."""
        with self._lock:
            return self._conn.execute("SELECT 1 FROM log LIMIT 1").fetchone() is not None

    def close(self) -> None:
        with self._lock:
            self._conn.close()


# Every event column the kinds have; a batch fills only those its kinds use.
SQLITE_TABLE = f"""
CREATE TABLE IF NOT EXISTS log (
    id             INTEGER PRIMARY KEY,
    captured       REAL NOT NULL,
    kind           INTEGER NOT NULL,
    key            BLOB NOT NULL,
    ts             INTEGER NOT NULL,
    account_id     INTEGER NOT NULL,
    emailing_id    INTEGER NOT NULL,
    destination_id INTEGER NOT NULL,
    link_id        INTEGER NOT NULL,
    reasons        INTEGER NOT NULL DEFAULT 0{"".join(f", {name}" for name in VALUE_COLUMNS)}
)"""


def _columns(events: Sequence[Event], captured: float) -> tuple[tuple[str, ...], list[Any]]:
    """The value columns the batch's kinds use, and a row per event for them."""
    kinds = {e.kind for e in events}
    used = {c.name for kind in kinds for c in kind.columns}
    names = tuple(name for name in VALUE_COLUMNS if name in used)
    where = {kind: [names.index(c.name) for c in kind.columns] for kind in kinds}
    rows = []
    for e in events:
        values: list[Any] = [None] * len(names)
        for at, value in zip(where[e.kind], e.values, strict=False):  # extended: may be left out
            values[at] = value
        rows.append((captured, e.kind.code, e.key, e.ts, e.account_id, e.emailing_id,
                     e.destination_id, e.link_id, e.reasons, *values))  # fmt: skip
    return names, rows


class PostgresCapture(CaptureLog):
    """The log as the `capture_log` table of the database itself, one row per event; a
    group commit is one statement (its columns as arrays)."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self._sql: dict[tuple[str, ...], str] = {}

    def append(self, events: Sequence[Event]) -> None:
        sql, params = self.statement(events, time.time())
        with self._pool.connection() as conn:
            conn.execute(sql, params)

    def statement(self, events: Sequence[Event], captured: float) -> tuple[str, list[Any]]:
        """The one INSERT that appends `events` (captured at `captured`), and its arrays."""
        names, rows = _columns(events, captured)
        sql = self._sql.get(names)
        if sql is None:
            columns = ("kind", "key", "ts", "account_id", "emailing_id", "destination_id",
                       "link_id", "reasons", *names)  # fmt: skip
            marks = ", ".join(f"%b::{_PG_TYPES.get(c, 'text')}[]" for c in columns)
            sql = self._sql[names] = (
                f"INSERT INTO capture_log (captured, {', '.join(columns)})"
                f" SELECT %b, * FROM unnest({marks})"
            )
        arrays = [list(column) for column in zip(*rows, strict=True)]
        return sql, [rows[0][0], *arrays[1:]]

    def backlog(self) -> Backlog:
        with self._pool.connection() as conn:
            row = conn.execute("SELECT count(*), min(captured) FROM capture_log").fetchone()
        return Backlog(int(row[0]), row[1])


_PG_TYPES = {"kind": "smallint", "key": "bytea", "ts": "bigint", "account_id": "bigint",
             "emailing_id": "bigint", "destination_id": "bigint", "link_id": "bigint",
             "attempts": "bigint", "reasons": "integer"}  # fmt: skip
