"""Turning stored rows into the API's items, shared by the web API and the CLI export."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from mailstats.kinds import Kind
from mailstats.timefmt import format_time

Item = dict[str, Any]


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
    for name in kind.fields:
        if name == "timestamp":
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
    """A cell for CSV output: null as empty."""
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
