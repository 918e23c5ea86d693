"""Naive ``YYYY-MM-DD HH:MM:SS`` times in an account's zone to and from UTC epoch seconds.

The API speaks local wall-clock time (compat.md section 4) while the store keeps UTC;
``format_time`` runs once per row of large exports, so it caches what it can.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

from mailstats.errors import InvalidParameter

__all__ = ["format_time", "parse_time"]

_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2}):(\d{2}))?",
    re.ASCII,
)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MINUTES_SECONDS = tuple(f"{m:02d}:{s:02d}" for m in range(60) for s in range(60))
_CACHE_LIMIT = 200_000  # entries per cache; about ten years of hours each


def parse_time(value: str, tz: ZoneInfo, name: str, *, upper: bool = False) -> int:
    """Read a local time in ``tz`` as UTC epoch seconds; ambiguous times take the first.

    A date without a time is midnight, or 23:59:59 as an upper bound (the whole day).
    A time that does not exist (skipped when clocks jump forward) is the moment of the
    jump, or the second before it for an upper bound (`upper`), so that a bound selects
    exactly the rows whose shown time lies on its side.

    >>> parse_time("2024-07-01 12:00:00", ZoneInfo("Europe/Amsterdam"), "begintime")
    1719828000
    """
    match = _TIME.fullmatch(value.strip())
    if match is None:
        raise _invalid(name, value, "expected YYYY-MM-DD HH:MM:SS")
    year, month, day, hour, minute, second = (int(p) for p in match.groups("0"))
    if not 1970 <= year <= 9999:
        raise _invalid(name, value, "the year must be between 1970 and 9999")
    if upper and match.group(4) is None:
        hour, minute, second = 23, 59, 59  # a date alone, as an upper bound, is its whole day
    try:
        local = datetime(year, month, day, hour, minute, second, tzinfo=tz)
    except ValueError:
        raise _invalid(name, value, "no such date or time") from None
    epoch = int(local.timestamp())
    wall = (year, month, day, hour, minute, second)
    if datetime.fromtimestamp(epoch, tz).timetuple()[:6] == wall:
        return epoch
    jump = _jump(int(local.replace(fold=1).timestamp()), epoch, wall, tz)
    return jump - 1 if upper else jump


def _jump(low: int, high: int, wall: tuple[int, ...], tz: ZoneInfo) -> int:
    """The first epoch in (low, high] whose local time is later than `wall`."""
    while low + 1 < high:
        mid = (low + high) // 2
        if datetime.fromtimestamp(mid, tz).timetuple()[:6] > wall:
            high = mid
        else:
            low = mid
    return high


def format_time(epoch: int, tz: ZoneInfo) -> str:
    """Write UTC epoch seconds as local ``YYYY-MM-DD HH:MM:SS`` in ``tz``.

    >>> format_time(1719828000, ZoneInfo("Europe/Amsterdam"))
    '2024-07-01 12:00:00'
    """
    formatter = _FORMATTERS.get(tz)
    if formatter is None:
        formatter = _FORMATTERS[tz] = _Formatter(tz)
    return formatter.format(epoch)


def _invalid(name: str, value: str, why: str) -> InvalidParameter:
    return InvalidParameter(f"Invalid value for parameter '{name}': {value!r}, {why}")


class _Formatter:
    """Per-zone caches: each UTC hour's offset and each local hour's ``YYYY-MM-DD HH:``."""

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        # None marks an hour with a transition inside it: those take the slow path.
        self.offsets: dict[int, int | None] = {}
        self.hours: dict[int, str] = {}

    def format(self, epoch: int) -> str:
        try:
            offset = self.offsets[epoch // 3600]
        except KeyError:
            offset = self._hour_offset(epoch // 3600)
        if offset is None:
            offset = self._offset_at(epoch)
        local = epoch + offset
        try:
            prefix = self.hours[local // 3600]
        except KeyError:
            prefix = self._hour_prefix(local // 3600)
        return prefix + _MINUTES_SECONDS[local % 3600]

    def _offset_at(self, epoch: int) -> int:
        offset = datetime.fromtimestamp(epoch, self.tz).utcoffset()
        assert offset is not None  # a ZoneInfo always has one
        return int(offset.total_seconds())

    def _hour_offset(self, hour: int) -> int | None:
        # Offsets change at most once within an hour, so equal ends mean a constant hour.
        first = self._offset_at(hour * 3600)
        last = self._offset_at(hour * 3600 + 3599)
        offset = first if first == last else None
        if len(self.offsets) >= _CACHE_LIMIT:
            self.offsets.clear()
        self.offsets[hour] = offset
        return offset

    def _hour_prefix(self, local_hour: int) -> str:
        day, hour = divmod(local_hour, 24)
        prefix = f"{date.fromordinal(day + _EPOCH_ORDINAL).isoformat()} {hour:02d}:"
        if len(self.hours) >= _CACHE_LIMIT:
            self.hours.clear()
        self.hours[local_hour] = prefix
        return prefix


_FORMATTERS: dict[ZoneInfo, _Formatter] = {}
