"""Month partitions of the PostgreSQL `events` table, made before any row needs them.

A partition covers one calendar month in UTC: `events_2024_05` holds ts in
[2024-05-01 00:00 UTC, 2024-06-01 00:00 UTC). Rows whose partition could not be made land in
`events_default`, and making the partition later moves them into it.
"""

from __future__ import annotations

import calendar
import logging
import re
import threading
import time
from collections.abc import Iterable

import psycopg
from psycopg_pool import ConnectionPool

log = logging.getLogger("mailstats.store")

AHEAD = 3  # months made ahead of the current one by maintain()
BEHIND = 3  # and behind it
# insert_events makes partitions for months in this window around now; a timestamp outside
# it (a forged report date, say) goes to the default partition instead of adding a table.
_WINDOW_PAST = 12 * 30
_WINDOW_FUTURE = 12 * 2
_RETRY_AFTER = 60.0  # seconds before trying again to make a partition that failed
_NAME = re.compile(r"^events_(\d{4})_(\d{2})$")


def month_of(ts: float) -> int:
    """A month as a number: year * 12 + (month - 1), of a UTC epoch timestamp."""
    t = time.gmtime(ts)
    return t.tm_year * 12 + t.tm_mon - 1


def month_start(month: int) -> int:
    """Epoch seconds of the first instant of `month` in UTC."""
    return calendar.timegm((month // 12, month % 12 + 1, 1, 0, 0, 0, 0, 0, 0))


def partition_name(month: int) -> str:
    return f"events_{month // 12:04d}_{month % 12 + 1:02d}"


class Partitions:
    """Which month partitions exist (cached), and making the missing ones."""

    def __init__(self, pool: ConnectionPool, lock_key: int) -> None:
        self._pool = pool
        self._lock_key = lock_key  # the events write lock: no row moves while we attach
        self._known: set[int] = set()
        self._loaded = False
        self._retry_at: dict[int, float] = {}
        self._mutex = threading.Lock()

    def maintain(self) -> None:
        now = month_of(time.time())
        self._make(range(now - BEHIND, now + AHEAD + 1), window=False)

    def ensure(self, timestamps: Iterable[int]) -> None:
        """Make the partitions these timestamps need; cheap when they all exist."""
        stamps = list(timestamps)
        lo, hi = min(stamps), max(stamps)
        try:
            first, last = month_of(lo), month_of(hi)
            if first == last and first in self._known:
                return
            months = {month_of(ts) for ts in stamps}
        except (OverflowError, OSError, ValueError):
            months = set()
            for ts in stamps:
                try:
                    months.add(month_of(ts))
                except (OverflowError, OSError, ValueError):
                    continue  # beyond any calendar: the default partition takes it
        if not months <= self._known:
            self._make(sorted(months), window=True)

    def cover(self, timestamps: Iterable[int]) -> bool:
        """Whether every month these timestamps fall in has its partition (cached: no query
        once loaded). A month outside the window counts as covered: its rows go to the
        default partition."""
        now = month_of(time.time())
        with self._mutex:
            self._load()
            for ts in timestamps:
                try:
                    month = month_of(ts)
                except (OverflowError, OSError, ValueError):
                    continue
                if month in self._known or not now - _WINDOW_PAST <= month <= now + _WINDOW_FUTURE:
                    continue
                if time.monotonic() < self._retry_at.get(month, 0.0):
                    continue  # could not be made a moment ago: the default partition takes it
                return False
        return True

    def known(self) -> set[int]:
        with self._mutex:
            self._load()
            return set(self._known)

    def _make(self, months: Iterable[int], *, window: bool) -> None:
        now = month_of(time.time())
        with self._mutex:
            self._load()
            for month in months:
                if month in self._known:
                    continue
                if window and not now - _WINDOW_PAST <= month <= now + _WINDOW_FUTURE:
                    continue
                if time.monotonic() < self._retry_at.get(month, 0.0):
                    continue
                try:
                    self.create(month)
                except psycopg.Error as exc:
                    if exc.sqlstate is None:
                        raise  # the server is unreachable: the insert would fail too
                    # e.g. a lock not granted in time: rows go to the default partition
                    log.warning("could not create %s: %s", partition_name(month), exc)
                    self._retry_at[month] = time.monotonic() + _RETRY_AFTER

    def _load(self) -> None:
        if self._loaded:
            return
        with self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = to_regclass('events')"
            ).fetchall()
        for (name,) in rows:
            match = _NAME.match(name)
            if match:
                self._known.add(int(match[1]) * 12 + int(match[2]) - 1)
        self._loaded = True

    def create(self, month: int) -> None:
        """Make one month's partition (if no one has), moving its rows out of the default."""
        # CREATE + ATTACH rather than CREATE ... PARTITION OF: attaching locks the parent
        # only against other DDL (SHARE UPDATE EXCLUSIVE), so reads and writes go on.
        name = partition_name(month)  # digits and underscores only: safe as an identifier
        lo, hi = month_start(month), month_start(month + 1)
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SET LOCAL lock_timeout = '2s'")
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))
            exists = conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()
            if exists is not None and exists[0] is None:
                conn.execute(f"CREATE TABLE {name} (LIKE events)")
                conn.execute(
                    f"WITH moved AS (DELETE FROM events_default WHERE ts >= %s AND ts < %s"
                    f" RETURNING *) INSERT INTO {name} SELECT * FROM moved",
                    (lo, hi),
                )
                conn.execute(
                    f"ALTER TABLE events ATTACH PARTITION {name} FOR VALUES FROM ({lo}) TO ({hi})"
                )
                log.info("created partition %s", name)
        self._known.add(month)
