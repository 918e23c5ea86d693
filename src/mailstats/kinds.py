"""The six kinds of event, each described once.

List endpoints, queries, export, ingestion and demo data are all driven from these
descriptions, so the kinds differ only in the columns they add to the common ones.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

ValueType = Literal["str", "int", "json"]

# Where an event came from, found by the indexer from its address (mailstats.geo): shown
# after Copernica's fields with `extended=true`, on the kinds that are `located`.
GEO_FIELDS: tuple[str, ...] = ("country", "asn", "asnorg")


@dataclass(frozen=True)
class Column:
    """A column that one kind adds: its API field name, table column and type."""

    name: str
    type: ValueType = "str"
    max_length: int = 0  # 0: unbounded; longer values are cut on write
    # Stored always, shown only with `extended=true`: Copernica's items stay as they are.
    extended: bool = False


@dataclass(frozen=True)
class Extra:
    """A field of mailstats' own that `extended=true` adds after Copernica's: its name and
    the stored column it is read from (serialize.EXTRA_VALUES turns that into the value)."""

    name: str
    source: str


@dataclass(frozen=True)
class Kind:
    """One kind of event: its API name (also its table) and what sets it apart."""

    name: str
    code: int  # a small stable number, stored where kinds share a table
    columns: tuple[Column, ...]
    per_link: bool = False  # unique per destination *and* link (clicks), else per destination
    located: bool = False  # has GEO_FIELDS with `extended=true`
    trailing: tuple[str, ...] = ()  # derived fields shown after Copernica's (extended)
    verdicts: bool = False  # a person's or a machine's (mailstats.verdicts): clicks and opens
    extras: tuple[Extra, ...] = ()  # shown with `extended=true` only, after the other fields
    show_extras: bool = False

    @property
    def fields(self) -> tuple[str, ...]:
        """The item's fields in API order (compat.md section 4)."""
        head = (
            ("ID", "mailing", "link", "timestamp")
            if self.per_link
            else (
                "ID",
                "mailing",
                "timestamp",
            )
        )
        shown = (c.name for c in self.columns if not c.extended)
        extras = (x.name for x in self.shown_extras) if self.show_extras else ()
        return (*head, *shown, "destination", "profile", "subprofile", *extras, *self.trailing)

    @property
    def shown_extras(self) -> tuple[Extra, ...]:
        """The extras, but for those a stored column of the same name already gives."""
        columns = {c.name for c in self.columns}
        return tuple(x for x in self.extras if x.name not in columns)

    def extended(self) -> Kind:
        """The same kind with its extended columns, extras and geo fields shown
        (`extended=true`): stored columns, then the verdict's, then where it came from."""
        columns = tuple(replace(c, extended=False) for c in self.columns)
        return replace(
            self,
            columns=columns,
            show_extras=bool(self.extras),
            trailing=GEO_FIELDS if self.located else (),
        )


IP = Column("ip", max_length=64)
USERAGENT = Column("useragent", max_length=1024)
DEVICE = Column("device", max_length=16)
# What the user agent names, parsed when the hit is captured: it stays when an account keeps
# parsed user agents only (`useragent=parsed`, privacy.py) or retention drops the agent.
CLIENT_NAMES = (
    Column("os", max_length=64, extended=True),
    Column("client", max_length=64, extended=True),
)
HIT_COLUMNS = (IP, USERAGENT, replace(DEVICE, extended=True), *CLIENT_NAMES)

# Every field of mailstats' own that `extended=true` adds beyond the stored columns, per
# kind: the one list to extend (the value of each name is made in serialize.EXTRA_VALUES).
EXTRAS: dict[str, tuple[Extra, ...]] = {
    "clicks": (Extra("verdict", "verdict"), Extra("reasons", "reasons")),
    "impressions": (Extra("verdict", "verdict"), Extra("reasons", "reasons")),
}

CLICKS = Kind("clicks", 1, HIT_COLUMNS, per_link=True, located=True, verdicts=True,
              extras=EXTRAS["clicks"])  # fmt: skip
IMPRESSIONS = Kind("impressions", 2, (IP, USERAGENT, DEVICE, *CLIENT_NAMES), located=True,
                   verdicts=True, extras=EXTRAS["impressions"])  # fmt: skip
DELIVERIES = Kind("deliveries", 3, (Column("attempts", "int"),))
ERRORS = Kind(
    "errors",
    4,
    (
        Column("status", max_length=32),
        Column("errorcode", max_length=32),
        Column("description", max_length=2048),
        Column("errortype", max_length=32),
        Column("reason", max_length=32, extended=True),  # mailstats.reports.REASONS
    ),
)
ABUSES = Kind("abuses", 5, (Column("report", "json", max_length=65536),))
UNSUBSCRIBES = Kind("unsubscribes", 6, HIT_COLUMNS)

KINDS: dict[str, Kind] = {
    k.name: k for k in (CLICKS, IMPRESSIONS, DELIVERIES, ERRORS, ABUSES, UNSUBSCRIBES)
}


FieldType = Literal["id", "time", "text"]


def filterable(kind: Kind) -> dict[str, FieldType]:
    """The fields a `fields[]` expression may name on this kind, with their value types."""
    types: dict[str, FieldType] = {}
    extras = {x.name for x in kind.shown_extras}
    for name in kind.fields:
        if name in extras:
            continue
        if name in ("ID", "mailing", "destination", "attempts", "asn"):
            types[name] = "id"
        elif name == "timestamp":
            types[name] = "time"
        elif name != "report":
            types[name] = "text"
    return types
