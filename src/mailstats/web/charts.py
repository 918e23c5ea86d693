"""The figures behind the dashboard's charts, as JSON: the same objects the page embeds and
the chart API (`ms/emailing/$id/charts/...`, beyond Copernica) answers.

A range is whole local days of the account's time zone (`begin`, `end`, inclusive), or a
preset counted from the day of the emailing's first event; buckets are local hours or days.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from mailstats.errors import InvalidParameter
from mailstats.kinds import CLICKS, ERRORS, IMPRESSIONS, KINDS
from mailstats.store import Emailing, Scope, Store
from mailstats.store.charts import edges
from mailstats.tracking.devices import client

PRESETS = {"1d": 1, "3d": 3, "7d": 7, "30d": 30}
MAX_BUCKETS = 24 * 62  # two months of hours
TIMELINE_KINDS = ("impressions", "clicks")
DATE_PATTERN = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


@dataclass(frozen=True)
class Range:
    """Whole local days and the bucket size; `bounds` are the bucket edges in UTC."""

    preset: str  # "all", a PRESETS key, or "custom"
    first: date
    last: date
    interval: str
    bounds: list[int]

    @property
    def begin(self) -> int:
        return self.bounds[0]

    @property
    def end(self) -> int:  # exclusive
        return self.bounds[-1]

    def params(self) -> dict[str, str]:
        return {
            "range": self.preset,
            "interval": self.interval,
            "begin": self.first.isoformat(),
            "end": self.last.isoformat(),
        }


def _one(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _date(raw: str, name: str) -> date:
    try:
        if not re.fullmatch(DATE_PATTERN, raw, re.ASCII):
            raise ValueError(raw)
        day = date.fromisoformat(raw)
        if not 1970 <= day.year <= 9000:
            raise ValueError(raw)
        return day
    except ValueError:
        raise InvalidParameter(
            f"Invalid value for parameter '{name}': {raw!r}, use YYYY-MM-DD from 1970 on"
        ) from None


def resolve_range(
    store: Store, scope: Scope, emailing: Emailing, tz: ZoneInfo, query: Mapping[str, list[str]]
) -> Range:
    """The range a request asks for: `range` (all, 1d, 3d, 7d, 30d, custom), `begin`/`end`
    dates for custom, and `interval` (hour or day; by default hours up to three days)."""
    span = store.charts.span(scope)
    low, high = span if span else (emailing.created_at, emailing.created_at)
    start = datetime.fromtimestamp(low, tz).date()
    stop = datetime.fromtimestamp(high, tz).date()
    given = {name: _one(query, name) for name in ("begin", "end")}
    days = {name: _date(raw, name) for name, raw in given.items() if raw is not None}
    preset = _one(query, "range") or ("custom" if days else "all")
    if preset == "all":
        first, last = start, stop
    elif preset in PRESETS:
        first, last = start, start + timedelta(days=PRESETS[preset] - 1)
    elif preset == "custom":
        first = days.get("begin", start)
        last = days.get("end", first)
        if last < first:
            raise InvalidParameter("Invalid value for parameter 'end': before 'begin'")
    else:
        raise InvalidParameter(
            f"Invalid value for parameter 'range': {preset!r}, use all, 1d, 3d, 7d, 30d or custom"
        )
    interval = _one(query, "interval") or ("hour" if (last - first).days < 3 else "day")
    if interval not in ("hour", "day"):
        raise InvalidParameter(
            f"Invalid value for parameter 'interval': {interval!r}, use hour or day"
        )
    length = (last - first).days + 1
    if length * (24 if interval == "hour" else 1) > MAX_BUCKETS or length > 3700:
        raise InvalidParameter("Too many buckets: choose a shorter range or day buckets")
    return Range(preset, first, last, interval, edges(first, last, interval, tz))


def _pair(total: int, unique: int) -> dict[str, int]:
    return {"total": total, "unique": unique}


def timeline(
    store: Store, scope: Scope, rng: Range, tz: ZoneInfo, people: bool = False
) -> dict[str, Any]:
    """Opens and clicks per bucket, with totals over the range (`people`: settled human
    ones only, as `bots=exclude`)."""
    counts = {
        name: store.charts.buckets(scope, KINDS[name], rng.bounds, people)
        for name in TIMELINE_KINDS
    }
    buckets = []
    for i, start in enumerate(rng.bounds[:-1]):
        item: dict[str, Any] = {
            "start": datetime.fromtimestamp(start, tz).isoformat(),
            "time": start,
        }
        for name in TIMELINE_KINDS:
            item[name] = _pair(*counts[name][i])
        buckets.append(item)
    totals = {
        name: _pair(sum(n for n, _ in counts[name]), sum(f for _, f in counts[name]))
        for name in TIMELINE_KINDS
    }
    return {
        "emailing": scope.emailing_id,
        "timezone": tz.key,
        **rng.params(),
        "buckets": buckets,
        "totals": totals,
    }


def window(rng: Range | None) -> tuple[int | None, int | None]:
    """The times a range bounds; none for `all` (from the first event's day to the last
    one's, so every event), which the store answers from its counters."""
    if rng is None or rng.preset == "all":
        return None, None
    return rng.begin, rng.end


def links(store: Store, scope: Scope, rng: Range | None, people: bool = False) -> dict[str, Any]:
    """Every link with its clicks, unique clicks and share of all clicks."""
    begin, end = window(rng)
    found = store.charts.links(scope, CLICKS, begin, end, people)
    total = sum(link.total for link in found)
    return {
        "emailing": scope.emailing_id,
        "total": total,
        "unique": sum(link.unique for link in found),
        "data": [
            {
                "ID": str(link.id),
                "url": link.url,
                "total": link.total,
                "unique": link.unique,
                "share": round(link.total / total, 4) if total else 0.0,
            }
            for link in found
        ],
    }


def clients(store: Store, scope: Scope, rng: Range | None, people: bool = False) -> dict[str, Any]:
    """Opens by device and by mail client."""
    begin, end = window(rng)
    devices: dict[str, list[int]] = {}
    agents: dict[tuple[str, str], list[int]] = {}
    rows = store.charts.clients(scope, IMPRESSIONS, begin, end, people)
    for device, useragent, name, system, total, unique in rows:
        # an agent no longer kept (useragent=parsed, retention): the names parsed at capture
        named = (name, system or "Other") if name and not useragent else client(useragent)
        for counts in (
            devices.setdefault(device or "unknown", [0, 0]),
            agents.setdefault(named, [0, 0]),
        ):
            counts[0] += total
            counts[1] += unique
    return {
        "emailing": scope.emailing_id,
        "devices": [
            {"device": name, **_pair(*counts)}
            for name, counts in sorted(devices.items(), key=lambda i: (-i[1][0], i[0]))
        ],
        "clients": [
            {"client": name, "os": system, **_pair(*counts)}
            for (name, system), counts in sorted(agents.items(), key=lambda i: (-i[1][0], i[0]))
        ],
    }


def bounces(store: Store, scope: Scope, rng: Range | None) -> dict[str, Any]:
    """Bounces by error type and code, with how many recipients each reached."""
    begin, end = window(rng)
    rows = store.charts.bounces(scope, ERRORS, begin, end)
    return {
        "emailing": scope.emailing_id,
        "total": sum(n for _, _, n, _ in rows),
        "data": [
            {"errortype": t or "unknown", "errorcode": c, "total": n, "destinations": d}
            for t, c, n, d in rows
        ],
    }
