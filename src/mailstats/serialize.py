"""Turning stored rows into the API's items, shared by the web API and the CLI export."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from mailstats.kinds import EXTRAS, Kind
from mailstats.timefmt import format_time
from mailstats.verdicts import VERDICTS, reason_names

Item = dict[str, Any]


def _verdict(code: Any) -> str | None:
    return None if code is None else VERDICTS[int(code)]


def _reasons(bits: Any) -> list[str]:
    return reason_names(int(bits or 0))


# The value of each `extended=true` field (kinds.EXTRAS) from its stored column.
EXTRA_VALUES: dict[str, Callable[[Any], Any]] = {
    "verdict": _verdict,
    "reasons": _reasons,
}
assert {x.name for extras in EXTRAS.values() for x in extras} <= set(EXTRA_VALUES)


def _as_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _as_json(value: Any) -> Any:
    return None if value is None else orjson.Fragment(value)


def item_maker(
    kind: Kind, tz: ZoneInfo, *, raw_json: bool = False
) -> Callable[[tuple[Any, ...]], Item]:
    """A function from a store row (fields in API order) to the API item, keys in order.

    With `raw_json` a JSON field stays the stored JSON text (for CSV cells).
    """
    convert: list[Callable[[Any], Any]] = []
    types = {c.name: c.type for c in kind.columns}
    extras = {x.name for x in kind.shown_extras} if kind.show_extras else set()
    for name in kind.fields:
        if name in extras:
            convert.append(EXTRA_VALUES[name])
        elif name == "timestamp":
            convert.append(lambda ts: format_time(ts, tz))
        elif types.get(name) == "int" or name == "asn":
            convert.append(lambda v: v)
        elif types.get(name) == "json":
            convert.append(_as_str if raw_json else _as_json)
        else:
            convert.append(_as_str)
    pairs = tuple(zip(kind.fields, convert, strict=True))

    def make(row: tuple[Any, ...]) -> Item:
        return {name: conv(value) for (name, conv), value in zip(pairs, row, strict=True)}

    return make


def csv_value(value: Any) -> str:
    """A cell for CSV output: null as empty, a list (reasons) as its items with commas."""
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return "" if value is None else str(value)


def ndjson_chunks(
    kind: Kind, rows: Iterator[tuple[Any, ...]], tz: ZoneInfo, size: int = 1 << 16
) -> Iterator[bytes]:
    make = item_maker(kind, tz)
    buf = bytearray()
    for row in rows:
        buf += orjson.dumps(make(row), option=orjson.OPT_APPEND_NEWLINE)
        if len(buf) >= size:
            yield bytes(buf)
            buf.clear()
    if buf:
        yield bytes(buf)


def csv_chunks(
    kind: Kind, rows: Iterator[tuple[Any, ...]], tz: ZoneInfo, size: int = 1 << 16
) -> Iterator[bytes]:
    make = item_maker(kind, tz, raw_json=True)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(kind.fields)
    for row in rows:
        writer.writerow([csv_value(v) for v in make(row).values()])
        if out.tell() >= size:
            yield out.getvalue().encode()
            out.seek(0)
            out.truncate()
    yield out.getvalue().encode()
