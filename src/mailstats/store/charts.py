"""What the dashboard and the chart API read: events in time buckets, links, clients, bounces.

Time buckets come from the event_blocks counters where they can: a block whose earliest and
latest event fall in one bucket adds its counts to that bucket whole, and only the blocks
that span a bucket edge are read row by row, by their range of IDs (no time index is
needed, as IDs grow with time). Bucket edges are given as UTC seconds, so a day of 23 or
25 local hours is simply an edge list with 23 or 25 hour buckets in it.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from mailstats.kinds import Kind
from mailstats.store import events as ev
from mailstats.store.base import Account, Backend, Row, Scope

# Seconds of one slot_counts slot (migration 0012_facets).
SLOT = 900
# More runs of edge-spanning blocks than this, and one read of the whole range is cheaper.
MAX_RUNS = 64
# Rows of edge-spanning blocks are grouped into slots of UTC time before they are put in
# buckets: the longest of these that every bucket edge is a multiple of (an hour in zones of
# whole-hour offsets), so no slot straddles an edge and few groups need sorting.
_SLOTS = (3600, 1800, 900, 60, 1)


def _slot(bounds: Sequence[int]) -> int:
    return next(s for s in _SLOTS if all(b % s == 0 for b in bounds))


def edges(first: date, last: date, interval: str, tz: ZoneInfo) -> list[int]:
    """UTC seconds of each bucket start from `first`'s local midnight, and the end of `last`.

    >>> len(edges(date(2026, 3, 29), date(2026, 3, 29), "hour", ZoneInfo("Europe/Amsterdam")))
    24
    """
    if interval not in ("hour", "day"):
        raise ValueError(f"unknown interval {interval!r}")
    out: list[int] = []
    day = first
    while day <= last:
        start = _midnight(day, tz)
        stop = _midnight(day + timedelta(days=1), tz)
        out.extend(range(start, stop, 3600) if interval == "hour" else (start,))
        day += timedelta(days=1)
    out.append(_midnight(last + timedelta(days=1), tz))
    return out


def _first(people: bool) -> str:
    """The flag of each pair's earliest event: of every event, or (`people`) of the settled
    human ones (`bots=exclude`'s unique)."""
    return "e.hfirst" if people else "e.first"


def _midnight(day: date, tz: ZoneInfo) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=tz).timestamp())


@dataclass(frozen=True)
class LinkCount:
    id: int
    url: str
    total: int
    unique: int


@dataclass(frozen=True)
class Recent:
    id: int
    ts: int
    destination_id: int
    email: str
    detail: str | None


class Charts:
    """Read-only figures of an emailing, through one backend."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.q = backend.queries

    def _query(self) -> ev.Query:
        return ev.Query(self.backend.placeholder, self.backend.like)

    def span(self, scope: Scope) -> tuple[int, int] | None:
        """The earliest and latest event time of an emailing, from the counters."""
        q = self._query()
        q.add("emailing_id = ?", scope.emailing_id)
        q.add("account_id = ?", scope.account_id)
        sql = f"SELECT min(min_ts), max(max_ts) FROM event_blocks WHERE {q.where}"
        low, high = self.backend.fetch(sql, q.args)[0]
        return None if low is None else (int(low), int(high))

    def buckets(
        self, scope: Scope, kind: Kind, bounds: Sequence[int], people: bool = False
    ) -> list[tuple[int, int]]:
        """(events, firsts) of `kind` in each bucket [bounds[i], bounds[i+1]); with `people`,
        settled human events and the earliest of those (as `bots=exclude`), counted from
        the rows (the counters count every event)."""
        assert scope.emailing_id is not None and len(bounds) >= 2
        people = people and kind.verdicts
        size = _slot(bounds)
        if size % SLOT == 0 and not people:  # whole quarter hours: the slot counters add up
            return self._slot_buckets(scope, kind, bounds, size)
        out = [[0, 0] for _ in range(len(bounds) - 1)]
        begin, end = bounds[0], bounds[-1]
        q = self._query()
        q.add("emailing_id = ?", scope.emailing_id)
        q.add("account_id = ?", scope.account_id)
        q.add("kind = ?", kind.code)
        q.add("max_ts >= ?", begin)
        q.add("min_ts < ?", end)
        sql = f"SELECT block, n, firsts, min_ts, max_ts FROM event_blocks WHERE {q.where}"
        runs: list[list[int]] = []
        for block, n, firsts, low, high in sorted(self.backend.fetch(sql, q.args)):
            at = bisect.bisect_right(bounds, low) - 1
            if low >= begin and high < end and at == bisect.bisect_right(bounds, high) - 1:
                out[at][0] += int(n)
                out[at][1] += int(firsts)
            elif runs and runs[-1][1] == block - 1:
                runs[-1][1] = block
            else:
                runs.append([block, block])
        if len(runs) > MAX_RUNS or people:  # read every row once instead
            out = [[0, 0] for _ in range(len(bounds) - 1)]
            runs = [[0, 2**62 >> self.backend.block_bits()]]
        bits = self.backend.block_bits()
        size = _slot(bounds)
        for first, last in runs:
            low, high = first << bits, (last + 1) << bits
            rows = self._slots(scope, kind, begin, end, low, high, size, people)
            for slot, n, firsts in rows:
                at = bisect.bisect_right(bounds, slot * size) - 1
                out[at][0] += int(n)
                out[at][1] += int(firsts or 0)
        return [(n, f) for n, f in out]

    def _slot_buckets(
        self, scope: Scope, kind: Kind, bounds: Sequence[int], size: int
    ) -> list[tuple[int, int]]:
        """Buckets from slot_counts, grouped in the database into the longest slots of
        `size` seconds that every edge is a multiple of."""
        out = [[0, 0] for _ in range(len(bounds) - 1)]
        per = size // SLOT
        q = self._query()
        q.add("account_id = ?", scope.account_id)
        q.add("emailing_id = ?", scope.emailing_id)
        q.add("kind = ?", kind.code)
        q.add("slot >= ?", bounds[0] // SLOT)
        q.add("slot < ?", bounds[-1] // SLOT)
        sql = (
            f"SELECT slot / {per}, sum(n), sum(firsts) FROM slot_counts WHERE {q.where}"
            f" GROUP BY slot / {per}"
        )
        for slot, n, firsts in self.backend.fetch(sql, q.args):
            at = bisect.bisect_right(bounds, int(slot) * size) - 1
            out[at][0] += int(n)
            out[at][1] += int(firsts)
        return [(n, f) for n, f in out]

    def _slots(
        self, scope: Scope, kind: Kind, begin: int, end: int, low: int, high: int, size: int,
        people: bool = False,
    ) -> list[Row]:  # fmt: skip
        """(slot, events, firsts) of a range of IDs within [begin, end), slots of `size` s."""
        u = self.backend.unindexed
        q = self._query()
        q.add("e.emailing_id = ?", scope.emailing_id)
        q.add("e.kind = ?", kind.code)
        q.add("e.id >= ?", low)
        q.add("e.id < ?", high)
        q.add(f"{u}e.account_id = ?", scope.account_id)
        q.add(f"{u}e.ts >= ?", begin)
        q.add(f"{u}e.ts < ?", end)
        if people:
            q.add(ev.HUMAN_SETTLED)
        sql = (
            f"SELECT e.ts / {int(size)}, count(*), sum({_first(people)}) FROM events e"
            f" WHERE {q.where} GROUP BY e.ts / {int(size)}"
        )
        return self.backend.fetch(sql, q.args)

    def _emailing_events(
        self, scope: Scope, kind: Kind, begin: int | None, end: int | None, people: bool = False
    ) -> ev.Query:
        """The emailing's events of `kind` in [begin, end) (with `people`: settled human
        events only, as `bots=exclude`)."""
        q = self._query()
        q.add("e.emailing_id = ?", scope.emailing_id)
        q.add("e.kind = ?", kind.code)
        q.add(f"{self.backend.unindexed}e.account_id = ?", scope.account_id)
        if begin is not None:
            q.add(f"{self.backend.unindexed}e.ts >= ?", begin)
        if end is not None:
            q.add(f"{self.backend.unindexed}e.ts < ?", end)
        if people and kind.verdicts:
            q.add(ev.HUMAN_SETTLED)
        return q

    def recipients(
        self, scope: Scope, kind: Kind, begin: int | None, end: int | None, people: bool = False
    ) -> int:
        """How many recipients have an event of `kind` in [begin, end] (clicks' unique
        counts are per recipient *and link*; this is per recipient); with `people`, a
        settled human one."""
        people = people and kind.verdicts
        if begin is None and end is None and kind.per_link and not people:
            q = self._query()
            q.add("account_id = ?", scope.account_id)
            q.add("emailing_id = ?", scope.emailing_id)
            q.add("kind = ?", kind.code)
            rows = self.backend.fetch(f"SELECT n FROM reach_counts WHERE {q.where}", q.args)
            return int(rows[0][0]) if rows else 0
        q = self._emailing_events(scope, kind, begin, None if end is None else end + 1, people)
        q.add(f"{_first(people)} = 1")
        sql = f"SELECT count(DISTINCT e.destination_id) FROM events e WHERE {q.where}"
        return int(self.backend.fetch(sql, q.args)[0][0])

    def links(
        self, scope: Scope, clicks: Kind, begin: int | None = None, end: int | None = None,
        people: bool = False,
    ) -> list[LinkCount]:  # fmt: skip
        """Every link of the emailing with its clicks and unique clicks, most clicked first
        (over all time and every event: from link_counts; `people`: settled human ones)."""
        if begin is None and end is None and not people:
            q = self._query()
            q.add("account_id = ?", scope.account_id)
            q.add("emailing_id = ?", scope.emailing_id)
            sql = f"SELECT link_id, n, firsts FROM link_counts WHERE {q.where}"
        else:
            q = self._emailing_events(scope, clicks, begin, end, people)
            sql = (
                f"SELECT e.link_id, count(*), sum({_first(people)}) FROM events e"
                f" WHERE {q.where} GROUP BY e.link_id"
            )
        counts = {int(i): (int(n), int(f or 0)) for i, n, f in self.backend.fetch(sql, q.args)}
        rows = self.backend.fetch(self.q["emailing_links"], {"emailing_id": scope.emailing_id})
        found = [LinkCount(r[0], r[3], *counts.get(int(r[0]), (0, 0))) for r in rows]
        return sorted(found, key=lambda link: (-link.total, link.id))

    def clients(
        self, scope: Scope, opens: Kind, begin: int | None = None, end: int | None = None,
        people: bool = False,
    ) -> list[tuple[str, str, str | None, str | None, int, int]]:  # fmt: skip
        """(device, user agent, client, OS, opens, unique opens) of the emailing, most
        frequent first. Over all time they come from client_counts, which keeps the names
        parsed at capture and never the user agents themselves (so the agent is empty)."""
        if begin is None and end is None and not people:
            q = self._query()
            q.add("account_id = ?", scope.account_id)
            q.add("emailing_id = ?", scope.emailing_id)
            q.add("n > 0")
            sql = (
                f"SELECT device, client, os, n, firsts FROM client_counts WHERE {q.where}"
                " ORDER BY n DESC LIMIT 2000"
            )
            return [
                (d, "", c or None, o or None, int(n), int(f))
                for d, c, o, n, f in self.backend.fetch(sql, q.args)
            ]
        q = self._emailing_events(scope, opens, begin, end, people)
        sql = (
            "SELECT coalesce(e.device, ''), coalesce(e.useragent, ''), e.client, e.os,"
            f" count(*), sum({_first(people and opens.verdicts)}) FROM events e WHERE {q.where}"
            " GROUP BY e.device, e.useragent, e.client, e.os ORDER BY count(*) DESC LIMIT 2000"
        )
        rows = self.backend.fetch(sql, q.args)
        return [(d, u, c, o, int(n), int(f or 0)) for d, u, c, o, n, f in rows]

    def countries(
        self, scope: Scope, kinds: Sequence[Kind]
    ) -> list[tuple[str, dict[int, tuple[int, int]]]]:
        """(country, {kind code: (events, firsts)}) of the emailing over all time, from
        country_counts ("" for unknown)."""
        q = self._query()
        q.add("account_id = ?", scope.account_id)
        q.add("emailing_id = ?", scope.emailing_id)
        codes = ", ".join(str(int(kind.code)) for kind in kinds)
        sql = f"SELECT country, kind, n, firsts FROM country_counts WHERE {q.where} AND kind IN ({codes})"
        out: dict[str, dict[int, tuple[int, int]]] = {}
        for country, code, n, firsts in self.backend.fetch(sql, q.args):
            out.setdefault(str(country), {})[int(code)] = (int(n), int(firsts))
        return list(out.items())

    def bounces(
        self, scope: Scope, errors: Kind, begin: int | None = None, end: int | None = None
    ) -> list[tuple[str, str, int, int]]:
        """(error type, code, bounces, destinations) of the emailing, most frequent first
        (over all time: from bounce_counts)."""
        if begin is None and end is None:
            q = self._query()
            q.add("account_id = ?", scope.account_id)
            q.add("emailing_id = ?", scope.emailing_id)
            sql = (
                "SELECT errortype, errorcode, n, destinations FROM bounce_counts"
                f" WHERE {q.where} ORDER BY n DESC, 1, 2"
            )
            return [(t, c, int(n), int(d)) for t, c, n, d in self.backend.fetch(sql, q.args)]
        q = self._emailing_events(scope, errors, begin, end)
        sql = (
            "SELECT coalesce(e.errortype, ''), coalesce(e.errorcode, ''), count(*),"
            f" count(DISTINCT e.destination_id) FROM events e WHERE {q.where}"
            " GROUP BY e.errortype, e.errorcode ORDER BY count(*) DESC, 1, 2"
        )
        return [(t, c, int(n), int(d)) for t, c, n, d in self.backend.fetch(sql, q.args)]

    def recent(
        self,
        scope: Scope,
        kind: Kind,
        detail: str | None,
        begin: int | None = None,
        end: int | None = None,
        limit: int = 20,
    ) -> list[Recent]:
        """The latest events of a kind in [begin, end) with their recipients' addresses."""
        q = self._emailing_events(scope, kind, begin, end)
        column = f"e.{detail}" if detail in {c.name for c in kind.columns} else "NULL"
        sql = (
            f"SELECT e.id, e.ts, e.destination_id, d.email, {column} FROM events e"
            f" JOIN destinations d ON d.id = e.destination_id WHERE {q.where}"
            f" ORDER BY e.id DESC LIMIT {int(limit)}"
        )
        return [
            Recent(int(i), int(t), int(d), m, x)
            for i, t, d, m, x in self.backend.fetch(sql, q.args)
        ]

    def timeline(self, scope: Scope, limit: int = 1000) -> list[Row]:
        """(ID, kind code, time, link URL, ip, user agent, device, attempts, status, code,
        description, error type) of one destination's events, oldest first."""
        q = self._query()
        q.add("e.destination_id = ?", scope.destination_id)
        q.add(f"{self.backend.unindexed}e.account_id = ?", scope.account_id)
        sql = (
            "SELECT e.id, e.kind, e.ts, l.url, e.ip, e.useragent, e.device, e.attempts,"
            " e.status, e.errorcode, e.description, e.errortype FROM events e"
            " LEFT JOIN links l ON l.id = e.link_id AND e.link_id <> 0"
            f" WHERE {q.where} ORDER BY e.ts, e.id LIMIT {int(limit)}"
        )
        return self.backend.fetch(sql, q.args)

    def emailings(
        self, account_id: int, *, sort: str, descending: bool, start: int, limit: int
    ) -> tuple[list[Row], int]:
        """(id, created_at, subject, destinations) of a page of the account's emailings."""
        column = {"created": "created_at", "subject": "subject", "recipients": "destinations"}
        order = f"{column[sort]} {'DESC' if descending else 'ASC'}, id DESC"
        q = self._query()
        q.add("account_id = ?", account_id)
        mark = self.backend.placeholder
        sql = (
            f"SELECT id, created_at, subject, destinations FROM emailings WHERE {q.where}"
            f" ORDER BY {order} LIMIT {mark} OFFSET {mark}"
        )
        rows = self.backend.fetch(sql, [*q.args, limit, start])
        total = self.backend.fetch(f"SELECT count(*) FROM emailings WHERE {q.where}", q.args)
        return rows, int(total[0][0])

    def account_of_emailing(self, emailing_id: int) -> Account | None:
        rows = self.backend.fetch(self.q["account_of_emailing"], {"id": emailing_id})
        return Account(*rows[0]) if rows else None

    def destination_by_key(self, key: str) -> tuple[int, Account] | None:
        """A destination named by its message key, in whichever account holds it."""
        rows = self.backend.fetch(self.q["destination_by_key_any_account"], {"key": key})
        if not rows:
            return None
        dest, account_id, name, timezone = rows[0]
        return int(dest), Account(account_id, name, timezone)
