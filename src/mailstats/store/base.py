"""What the store hands out, and the interface every database backend implements.

The store knows SQL and events only: it imports nothing from the web, CLI or tracking layers.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from mailstats.geo import OFF, Geo
from mailstats.kinds import DELIVERIES, Kind
from mailstats.verdicts import Rules

_VERDICT_KINDS = "1, 2"  # kinds.CLICKS, kinds.IMPRESSIONS: the kinds with verdicts

if TYPE_CHECKING:
    from mailstats.store.capture import CaptureLog
    from mailstats.store.derive import Derived

Row = tuple[Any, ...]


def unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot be reached (or, being a standby, cannot take
    a write) right now: worth a 503 and a retry, not a 500."""
    import psycopg

    return isinstance(exc, psycopg.OperationalError | psycopg.errors.ReadOnlySqlTransaction)


T = TypeVar("T")

# Events are counted in blocks of 2**BLOCK_BITS IDs (see the event_blocks migration). The
# figure is kept in meta when a database gets its layout and never changes afterwards.
BLOCK_BITS = 13
Params = Sequence[Any] | dict[str, Any]


class Cursor(Protocol):
    """The part of a DB-API cursor the store uses, inside a transaction."""

    @property
    def rowcount(self) -> int: ...

    def execute(self, sql: str, params: Params = ..., /) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


@dataclass(frozen=True)
class Account:
    id: int
    name: str
    timezone: str


@dataclass(frozen=True)
class TokenInfo:
    id: int
    account: str
    hint: str
    created_at: int
    revoked_at: int | None


@dataclass(frozen=True)
class Emailing:
    id: int
    created_at: int
    type: str
    subject: str
    from_name: str
    from_email: str
    destinations: int
    tags: list[str]
    html: str
    text: str | None


@dataclass(frozen=True)
class Link:
    id: int
    start: int
    stop: int
    url: str


@dataclass(frozen=True)
class Destination:
    id: int
    emailing_id: int
    created_at: int
    email: str
    profile: str | None
    subprofile: str | None
    fields: dict[str, Any]
    message_key: str


@dataclass(frozen=True)
class Scope:
    """Which events a list or statistic covers, inside one account."""

    account_id: int
    emailing_id: int | None = None
    destination_id: int | None = None


@dataclass(slots=True)
class Event:
    """One event to write. `key` is unique per event, so writing it twice stores it once."""

    kind: Kind
    key: bytes
    ts: int
    account_id: int
    emailing_id: int
    destination_id: int
    link_id: int
    values: tuple[Any, ...]  # the kind's columns, in order
    reasons: int = 0  # machine reasons known when it was captured (mailstats.verdicts.HEAD)


@dataclass(frozen=True)
class Page(Generic[T]):
    rows: list[T]
    total: int | None


class Backend(abc.ABC):
    """A database: connections, transactions and what differs between dialects."""

    dialect: str
    placeholder: str
    like: str
    unindexed: str  # a prefix that keeps the planner from using an index on a column
    queries: dict[str, str]
    geo: Geo = OFF  # what derive looks up per address (set by open_store)

    @abc.abstractmethod
    def fetch(self, sql: str, params: Params = ()) -> list[Row]: ...

    @abc.abstractmethod
    def transaction(self) -> AbstractContextManager[Cursor]: ...

    @abc.abstractmethod
    def insert_events(self, events: Sequence[Event], now: float | None = None) -> int:
        """Write events in one transaction; return how many were new. `now`: the clock the
        verdicts' window is measured by (the present unless replaying)."""

    @property
    @abc.abstractmethod
    def capture(self) -> CaptureLog:
        """The log that tracking hits are appended to before their answer."""

    @abc.abstractmethod
    def derive(self, limit: int) -> Derived:
        """Move about `limit` events from the capture log into `events`, in one step."""

    @abc.abstractmethod
    def indexer_role(self) -> bool:
        """Whether this process is (or has just become) the database's one indexer."""

    @abc.abstractmethod
    def migrate(self, block_bits: int = BLOCK_BITS) -> list[str]:
        """Apply pending migrations; return the names of those applied.

        A database without an event layout gets one with blocks of 2**block_bits IDs.
        """

    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    def settle(self, now: float | None = None) -> None:
        """Examine and settle the verdicts of the events whose window has passed by `now`."""

    @abc.abstractmethod
    def rescore(self, destinations: Sequence[int], now: float | None = None) -> None:
        """Apply the rules afresh to every click and open of these destinations."""

    _block_bits: int | None = None
    _rules: Rules | None = None

    @property
    def rules(self) -> Rules:
        """The verdict rules of the derive step (mailstats.verdicts); defaults until set."""
        if self._rules is None:
            self._rules = Rules()
        return self._rules

    @rules.setter
    def rules(self, rules: Rules) -> None:
        self._rules = rules

    def block_bits(self) -> int:
        """How many low bits of an event ID its block leaves out (fixed per database)."""
        if self._block_bits is None:
            rows = self.fetch(_BLOCK_BITS_GET)
            if not rows:
                raise RuntimeError("The database has no event layout: run `mailstats migrate`")
            self._block_bits = int(rows[0][0])
        return self._block_bits

    def _make_layout(self, cur: Cursor, block_bits: int) -> None:
        """Fix the block size and count the events already stored, once per database.

        Call inside a migration's transaction, with event writers locked out.
        """
        row = cur.execute(_BLOCK_BITS_GET).fetchone()
        if row is not None:
            self._block_bits = int(row[0])
            return
        bits = int(block_bits)
        if not 0 <= bits <= 40:
            raise ValueError("block_bits must be 0 to 40")
        cur.execute("DELETE FROM event_blocks")
        cur.execute("DELETE FROM retried")
        cur.execute(f"INSERT INTO retried (destination_id) SELECT DISTINCT destination_id {_RETRY}")
        cur.execute(
            "INSERT INTO event_blocks (account_id, kind, block, emailing_id,"
            " n, firsts, min_ts, max_ts, retries, retried, settled, humans, hfirsts)"
            f" SELECT account_id, kind, id >> {bits}, emailing_id,"
            " count(*), sum(first), min(ts), max(ts),"
            f" sum(CASE WHEN kind = {DELIVERIES.code} AND attempts > 1 THEN 1 ELSE 0 END),"
            f" sum(CASE WHEN id IN (SELECT min(id) {_RETRY} GROUP BY destination_id)"
            " THEN 1 ELSE 0 END),"
            f" sum(CASE WHEN kind IN ({_VERDICT_KINDS}) THEN settled ELSE 0 END),"
            f" sum(CASE WHEN kind IN ({_VERDICT_KINDS}) AND settled = 1 AND verdict = 0"
            " THEN 1 ELSE 0 END), sum(hfirst)"
            f" FROM events GROUP BY account_id, kind, id >> {bits}, emailing_id"
        )
        cur.execute(f"INSERT INTO meta (key, value) VALUES ('block_bits', '{bits}')")
        self._block_bits = bits

    def stream(self, sql: str, params: Sequence[Any], id_index: int, size: int) -> Iterator[Row]:
        """Rows of `sql` (which ends in `e.id > ? ORDER BY e.id LIMIT ?`) by keyset paging."""
        last = 0
        while True:
            rows = self.fetch(sql, [*params, last, size])
            yield from rows
            if len(rows) < size:
                return
            last = rows[-1][id_index]

    def maintain(self) -> None:  # noqa: B027 - a hook, empty where nothing is needed
        """Periodic upkeep (PostgreSQL creates partitions ahead of time)."""


_BLOCK_BITS_GET = "SELECT value FROM meta WHERE key = 'block_bits'"
# deliveries after more than one attempt
_RETRY = f"FROM events WHERE kind = {DELIVERIES.code} AND attempts > 1"
