"""SQL for the event lists, built from the kind descriptions; values always go to placeholders."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from mailstats.kinds import KINDS, Kind
from mailstats.store.base import Event, Scope

# Every column any kind adds, in a fixed order: the tail of an events row.
VALUE_COLUMNS: tuple[str, ...] = tuple(
    dict.fromkeys(c.name for kind in KINDS.values() for c in kind.columns)
)
_MAX_LENGTH = {c.name: c.max_length for kind in KINDS.values() for c in kind.columns}
INSERT_COLUMNS: tuple[str, ...] = (
    "kind",
    "key",
    "ts",
    "account_id",
    "emailing_id",
    "destination_id",
    "link_id",
    "first",
    "reasons",
    "settled",
    *VALUE_COLUMNS,
)

# The one condition for "a person's event, and settled": what `bots=exclude` shows (and what
# anything else that must never see a machine's event may select on), for events `e`.
# Kinds without verdicts are always both.
HUMAN_SETTLED = "e.settled = 1 AND e.verdict = 0"
# ... and for `bots=only`: settled machine events.
MACHINE_SETTLED = "e.settled = 1 AND e.verdict <> 0"
BOTS = ("include", "exclude", "only")


# Found by the indexer from the address (mailstats.geo): stored beside INSERT_COLUMNS.
GEO_COLUMNS: tuple[str, ...] = ("country", "network_id")


class Condition(Protocol):
    """One `fields[]` filter: an API field, an SQL operator and a typed value."""

    @property
    def field(self) -> str: ...
    @property
    def op(self) -> str: ...
    @property
    def value(self) -> int | str: ...


@dataclass(frozen=True)
class Filter:
    """What a list selects, beyond its scope."""

    begin: int | None = None
    end: int | None = None
    unique: bool = False
    conditions: Sequence[Condition] = field(default_factory=tuple)
    bots: str = "include"  # one of BOTS


_USES_D = re.compile(r"\bd\.")
_USES_L = re.compile(r"\bl\.")
_USES_NW = re.compile(r"\bnw\.")
_OPERATORS = {"=", "!=", "<", ">", "<=", ">=", "LIKE", "NOT LIKE"}


def _bounded(name: str, value: Any) -> Any:
    limit = _MAX_LENGTH.get(name, 0)
    if limit and isinstance(value, str) and len(value) > limit:
        return value[:limit]
    return value


def event_row(event: Event, first: int) -> tuple[Any, ...]:
    """The event as values for INSERT_COLUMNS, long strings cut to their column's bound.

    Values may stop short of the kind's columns: the rest (extended ones) are NULL.
    """
    values = dict.fromkeys(VALUE_COLUMNS)
    if len(event.values) > len(event.kind.columns):
        raise ValueError(f"{event.kind.name} events have {len(event.kind.columns)} values")
    for column, value in zip(event.kind.columns, event.values, strict=False):
        values[column.name] = _bounded(column.name, value)
    return (
        event.kind.code,
        event.key,
        event.ts,
        event.account_id,
        event.emailing_id,
        event.destination_id,
        event.link_id,
        first,
        event.reasons,
        0 if event.kind.verdicts else 1,
        *values.values(),
    )


def select_expressions(kind: Kind) -> dict[str, str]:
    """API field -> SQL expression, in the kind's field order."""
    known = {
        "ID": "e.id",
        "mailing": "e.emailing_id",
        "link": "l.url",
        "timestamp": "e.ts",
        "destination": "e.destination_id",
        "profile": "d.profile",
        "subprofile": "d.subprofile",
        "country": "coalesce(e.country, '')",
        "asn": "nullif(nw.asn, 0)",
        "asnorg": "nw.name",
    }
    known.update({x.name: f"e.{x.source}" for x in kind.shown_extras})
    return {name: known.get(name, f"e.{name}") for name in kind.fields}


@dataclass
class Query:
    """A WHERE clause under construction, with its arguments in order."""

    mark: str
    like: str
    clauses: list[str] = field(default_factory=list)
    args: list[Any] = field(default_factory=list)

    def add(self, clause: str, *args: Any) -> None:
        self.clauses.append(clause.replace("?", self.mark))
        self.args.extend(args)

    @property
    def where(self) -> str:
        return " AND ".join(self.clauses)


def where(kind: Kind, scope: Scope, flt: Filter, mark: str, like: str, ts: str = "e.ts") -> Query:
    """The conditions for `kind` events in `scope` that pass `flt`.

    `ts` is how the time bounds name the column: SQLite's "+e.ts" keeps its planner from
    choosing the time index where a range of IDs is the better way in.
    """
    q = Query(mark, like)
    q.add("e.account_id = ?", scope.account_id)
    if scope.emailing_id is not None:
        q.add("e.emailing_id = ?", scope.emailing_id)
    if scope.destination_id is not None:
        q.add("e.destination_id = ?", scope.destination_id)
    q.add("e.kind = ?", kind.code)
    if flt.begin is not None:
        q.add(f"{ts} >= ?", flt.begin)
    if flt.end is not None:
        q.add(f"{ts} <= ?", flt.end)
    _bots(q, kind, flt)
    expressions = select_expressions(kind)
    for cond in flt.conditions:
        if cond.op not in _OPERATORS or cond.field not in expressions:
            raise ValueError(f"bad condition {cond.field} {cond.op}")
        op = cond.op.replace("LIKE", like)
        # a backslash is an ordinary character, as in SQLite's LIKE without ESCAPE
        escape = " ESCAPE ''" if like == "ILIKE" and "LIKE" in op else ""
        q.add(f"{expressions[cond.field]} {op} ?{escape}", cond.value)
    return q


def _bots(q: Query, kind: Kind, flt: Filter) -> None:
    """`bots=` and `unique=`: with `exclude`, unique is the earliest settled human event of
    each pair (`hfirst`); with `only`, the earliest settled machine event (no flag keeps
    that one: a subquery finds it)."""
    if flt.bots not in BOTS:
        raise ValueError(f"bad bots value {flt.bots!r}")
    if flt.bots == "include" or not kind.verdicts:
        if flt.bots == "only":
            q.add("1 = 0")  # no machine events of this kind
        elif flt.unique:
            q.add("e.first = 1")
        return
    if flt.bots == "exclude":
        q.add(HUMAN_SETTLED)
        if flt.unique:
            q.add("e.hfirst = 1")
        return
    q.add(MACHINE_SETTLED)
    if flt.unique:
        q.add(
            "NOT EXISTS (SELECT 1 FROM events x WHERE x.destination_id = e.destination_id"
            " AND x.kind = e.kind AND x.link_id = e.link_id AND x.settled = 1 AND x.verdict <> 0"
            " AND (x.ts < e.ts OR (x.ts = e.ts AND x.id < e.id)))"
        )


def joins(kind: Kind, text: str) -> str:
    """Only the joins that `text` (select list or where clause) needs."""
    out = ""
    if _USES_D.search(text):
        out += " JOIN destinations d ON d.id = e.destination_id"
    if _USES_L.search(text):
        out += " JOIN links l ON l.id = e.link_id"
    if _USES_NW.search(text):
        out += " LEFT JOIN networks nw ON nw.id = e.network_id"
    return out


def list_sql(kind: Kind, q: Query) -> str:
    select = ", ".join(select_expressions(kind).values())
    return (
        f"SELECT {select} FROM events e{joins(kind, select)}"
        f" WHERE {q.where} ORDER BY e.id LIMIT {q.mark} OFFSET {q.mark}"
    )


def skip_sql(kind: Kind, q: Query) -> str:
    """As list_sql, for a page past the first: the offset walks events alone (mostly an
    index), and only the page's rows are joined and read in full."""
    select = ", ".join(select_expressions(kind).values())
    return (
        f"SELECT {select} FROM (SELECT e.id, e.ts FROM events e{joins(kind, q.where)}"
        f" WHERE {q.where} ORDER BY e.id LIMIT {q.mark} OFFSET {q.mark}) p"
        f" JOIN events e ON e.id = p.id AND e.ts = p.ts{joins(kind, select)} ORDER BY e.id"
    )


def stream_sql(kind: Kind, q: Query) -> str:
    select = ", ".join(select_expressions(kind).values())
    return (
        f"SELECT {select} FROM events e{joins(kind, select)}"
        f" WHERE {q.where} AND e.id > {q.mark} ORDER BY e.id LIMIT {q.mark}"
    )


def count_sql(kind: Kind, q: Query) -> str:
    return f"SELECT count(*) FROM events e{joins(kind, q.where)} WHERE {q.where}"
