"""Query-string parsing for the v2 API: PHP-style arrays, booleans, paging, time bounds and
``fields[]`` filter expressions (compat.md sections 1, 2 and 4).

Pure functions over the raw ASGI query string; every bad value raises ``InvalidParameter``
with a message that names the parameter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote_to_bytes
from zoneinfo import ZoneInfo

from mailstats.errors import InvalidParameter
from mailstats.timefmt import format_time, parse_time

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "Condition",
    "FieldType",
    "ListParams",
    "Paging",
    "Query",
    "format_time",
    "parse_bool",
    "parse_condition",
    "parse_int",
    "parse_list_params",
    "parse_paging",
    "parse_query",
    "parse_time",
    "scalar",
]

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

FieldType = Literal["id", "time", "text"]

_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_INTEGER = re.compile(r"([+-]?)0*([0-9]+)")
# A decimal number as PHP's is_numeric() reads it: integer part, fraction, exponent.
_NUMBER = re.compile(r"[+-]?(?=\.?[0-9])([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?)([0-9]+))?")
_EXPONENT_CAP = 10**18  # beyond any digit count a query string can carry
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# API operator -> SQL operator; two-character ones are tried first.
_OPERATORS = {
    "==": "=",
    "!=": "!=",
    "<>": "!=",
    "<=": "<=",
    ">=": ">=",
    "=~": "LIKE",
    "!~": "NOT LIKE",
    "=": "=",
    "<": "<",
    ">": ">",
}
_OPERATOR_CHAR = re.compile(r"[=!<>~]")


class Query(dict[str, list[str]]):
    """Parameter name -> its values in order; ``arrays`` holds the names sent as ``name[...]``."""

    def __init__(
        self, values: Mapping[str, list[str]] | None = None, arrays: Iterable[str] = ()
    ) -> None:
        super().__init__(values or {})
        self.arrays: set[str] = set(arrays)


@dataclass(frozen=True)
class Paging:
    """``start``, ``limit`` (clamped to 1000, negatives kept) and whether to count ``total``."""

    start: int
    limit: int
    total: bool

    @property
    def empty(self) -> bool:
        """True when the page can hold nothing: the API answers ``count: 0`` without a query."""
        return self.start < 0 or self.limit <= 0


@dataclass(frozen=True)
class Condition:
    """One ``fields[]`` filter, ``ID > 5``, with an SQL operator and a placeholder value."""

    field: str
    op: str  # one of = != < > <= >= LIKE, NOT LIKE
    value: int | str


@dataclass(frozen=True)
class ListParams:
    """Everything a statistics list takes; ``begin``/``end`` are inclusive UTC epochs."""

    paging: Paging
    begin: int | None
    end: int | None
    unique: bool
    conditions: tuple[Condition, ...]


def parse_query(raw: bytes) -> Query:
    """Parse a raw query string; ``name[...]`` keys (PHP arrays) collect under ``name``.

    >>> parse_query(b"fields%5B0%5D=ID%3E5&fields[]=ID<9&limit=5")
    {'fields': ['ID>5', 'ID<9'], 'limit': ['5']}
    """
    query = Query()
    for pair in raw.split(b"&"):
        key, _, value = pair.partition(b"=")
        if not key:
            continue
        name, is_array = _split_key(_decode(key))
        query.setdefault(name, []).append(_decode(value))
        if is_array:
            query.arrays.add(name)
    return query


def scalar(query: Mapping[str, list[str]], name: str) -> str | None:
    """The one value of ``name``, or None when absent; an array or a repeat is an error."""
    values = query.get(name)
    if not values:
        return None
    arrays = query.arrays if isinstance(query, Query) else ()
    if len(values) > 1 or name in arrays:
        raise InvalidParameter(f"Invalid value for parameter '{name}': expected a single value")
    return values[0]


def parse_bool(value: str) -> bool:
    """Copernica's booleans: ``true``, ``yes`` and numbers of magnitude 1 or more are true.

    >>> [parse_bool(v) for v in ("Yes", "1", "-2", "0.5", "false", "")]
    [True, True, True, False, False, False]
    """
    text = value.strip()
    if text.lower() in ("true", "yes"):
        return True
    number = _NUMBER.fullmatch(text)
    if number is None:
        return False
    integer, fraction, sign, exponent = number.group(1, 2, 3, 4)
    digits = integer + (fraction or "")
    significant = digits.lstrip("0")
    if not significant:
        return False
    # The power of ten of the leading non-zero digit decides whether |x| >= 1.
    power = len(integer) - 1 - (len(digits) - len(significant))
    return power + _exponent(sign, exponent) >= 0


def parse_int(value: str, name: str) -> int:
    """A signed 64-bit integer written in ASCII digits, or InvalidParameter naming ``name``."""
    match = _INTEGER.fullmatch(value)
    # Checking the length first keeps int() away from huge strings.
    if match is None or len(match[2]) > 19:
        raise _invalid(name, value, "expected an integer")
    number = int(match[1] + match[2])
    if not _INT64_MIN <= number <= _INT64_MAX:
        raise _invalid(name, value, "expected an integer")
    return number


def parse_paging(query: Mapping[str, list[str]]) -> Paging:
    """``start`` (0), ``limit`` (100, at most 1000) and ``total`` (true) from a query.

    >>> parse_paging(parse_query(b"start=-5&limit=5000&total=0"))
    Paging(start=-5, limit=1000, total=False)
    """
    start = _optional_int(query, "start", 0)
    limit = min(_optional_int(query, "limit", DEFAULT_LIMIT), MAX_LIMIT)
    return Paging(start, limit, _optional_bool(query, "total", True))


def parse_condition(expr: str, allowed: Mapping[str, FieldType], tz: ZoneInfo) -> Condition:
    """Parse ``NAME OP VALUE`` for a field in ``allowed``; time values become UTC epochs.

    >>> parse_condition("ID>=12345", {"ID": "id"}, ZoneInfo("UTC"))
    Condition(field='ID', op='>=', value=12345)
    """
    field, operator, raw = _split_expression(expr)
    kind = allowed.get(field)
    if kind is None:
        raise _invalid_fields(f"unknown field {field!r}")
    op = _OPERATORS[operator]
    if "LIKE" in op and kind != "text":
        raise _invalid_fields(f"operator {operator!r} does not apply to field {field!r}")
    if kind == "time":
        return Condition(field, op, _time_value(raw.strip(), op, tz))
    return Condition(field, op, _condition_value(raw.strip(), kind, tz))


def parse_list_params(
    query: Mapping[str, list[str]], tz: ZoneInfo, allowed: Mapping[str, FieldType]
) -> ListParams:
    """Paging, ``begintime``/``endtime``, ``unique`` and ``fields[]`` for a statistics list."""
    expressions = query.get("fields", [])
    return ListParams(
        paging=parse_paging(query),
        begin=_optional_time(query, "begintime", tz),
        end=_optional_time(query, "endtime", tz, upper=True),
        unique=_optional_bool(query, "unique", False),
        conditions=tuple(parse_condition(e, allowed, tz) for e in expressions),
    )


def _decode(raw: bytes) -> str:
    if _BAD_ESCAPE.search(raw):
        raise InvalidParameter("Invalid query string: malformed percent-encoding")
    try:
        text = unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidParameter("Invalid query string: not UTF-8") from None
    # Neither database stores NUL in text, and no client means one.
    if "\x00" in text:
        raise InvalidParameter("Invalid query string: NUL character")
    return text


def _exponent(sign: str | None, digits: str | None) -> int:
    # Capped so that int() never sees thousands of digits.
    significant = (digits or "0").lstrip("0")
    value = _EXPONENT_CAP if len(significant) > 18 else int(significant or "0")
    return -value if sign == "-" else value


def _split_key(key: str) -> tuple[str, bool]:
    bracket = key.find("[")
    if bracket > 0 and key.endswith("]"):
        return key[:bracket], True
    return key, False


def _split_expression(expr: str) -> tuple[str, str, str]:
    found = _OPERATOR_CHAR.search(expr)
    if found is None:
        raise _invalid_fields(f"{expr!r} has no operator")
    at = found.start()
    for operator in (expr[at : at + 2], expr[at]):
        if operator in _OPERATORS:
            return expr[:at].strip(), operator, expr[at + len(operator) :]
    raise _invalid_fields(f"{expr!r} has an unknown operator")


def _time_value(raw: str, op: str, tz: ZoneInfo) -> int:
    """A time compared with `op`, so that rows are selected by the time they show.

    `<=` and `>` take a time as an upper bound (a date alone is its whole day); in the hour
    skipped when clocks jump forward, `=` matches nothing and `!=` everything.
    """
    lower = parse_time(raw, tz, "fields")
    upper = parse_time(raw, tz, "fields", upper=True)
    if op in ("<=", ">"):
        return upper
    if op in ("=", "!=") and upper < lower:
        return -1  # a time no row shows
    return lower


def _condition_value(raw: str, kind: FieldType, tz: ZoneInfo) -> int | str:
    if kind == "id":
        return parse_int(raw, "fields")
    if kind == "time":
        return parse_time(raw, tz, "fields")
    return raw


def _optional_int(query: Mapping[str, list[str]], name: str, default: int) -> int:
    value = scalar(query, name)
    return default if value is None else parse_int(value, name)


def extended(query: Mapping[str, list[str]]) -> bool:
    """`extended=true`: mailstats' own fields beyond Copernica's (an error's `reason`, the
    verdict, reasons, device, os and client of clicks and opens). Unlike Copernica's own
    booleans, a value that is neither true nor false is an error.

    >>> extended(parse_query(b"extended=yes")), extended(parse_query(b""))
    (True, False)
    """
    value = scalar(query, "extended")
    if value is None:
        return False
    if value not in EXTENDED_VALUES:
        raise _invalid("extended", value, "expected true or false")
    return value in ("true", "yes", "1")


# What `extended` takes, exactly (the OpenAPI document lists the same); empty is false.
EXTENDED_VALUES = ("true", "false", "yes", "no", "1", "0", "")


BOTS = ("include", "exclude", "only")


def bots(query: Mapping[str, list[str]]) -> str:
    """`bots=include` (the default: every event, as Copernica lists them), `exclude` (only
    settled human events) or `only` (only settled machine events).

    >>> bots(parse_query(b"bots=exclude")), bots(parse_query(b""))
    ('exclude', 'include')
    """
    value = scalar(query, "bots")
    if value is None:
        return "include"
    if value not in BOTS:
        raise _invalid("bots", value, "expected include, exclude or only")
    return value


def _optional_bool(query: Mapping[str, list[str]], name: str, default: bool) -> bool:
    value = scalar(query, name)
    return default if value is None else parse_bool(value)


def _optional_time(
    query: Mapping[str, list[str]], name: str, tz: ZoneInfo, *, upper: bool = False
) -> int | None:
    value = scalar(query, name)
    return None if value is None else parse_time(value, tz, name, upper=upper)


def _invalid(name: str, value: str, why: str) -> InvalidParameter:
    return InvalidParameter(f"Invalid value for parameter '{name}': {value!r}, {why}")


def _invalid_fields(why: str) -> InvalidParameter:
    return InvalidParameter(f"Invalid value for parameter 'fields': {why}")
