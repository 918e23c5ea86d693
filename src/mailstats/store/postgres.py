"""PostgreSQL: a connection pool, events partitioned by month, and one writer at a time.

Several processes and nodes may write to one database. Event inserts take one advisory lock
for the length of their transaction, which makes event IDs grow in commit order (see
`insert_events`); batches are large (group commit), so the lock costs little.
"""

from __future__ import annotations

import functools
import logging
import time
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from typing import Any

import psycopg
from psycopg.abc import Buffer
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.string import StrBinaryDumper, StrDumperUnknown
from psycopg_pool import ConnectionPool

from mailstats.kinds import CLICKS, DELIVERIES, ERRORS, IMPRESSIONS, KINDS
from mailstats.store import queries, verdicts
from mailstats.store.base import BLOCK_BITS, Backend, Cursor, Event, Params, Row
from mailstats.store.capture import CaptureLog, PostgresCapture
from mailstats.store.derive import Derived
from mailstats.store.events import INSERT_COLUMNS, VALUE_COLUMNS, event_row
from mailstats.store.partitions import Partitions

log = logging.getLogger("mailstats.store")

# Advisory lock keys: any constants, as long as nothing else in the database uses them.
EVENTS_LOCK = 0x6D730001  # held by every transaction that writes `events`
MIGRATE_LOCK = 0x6D730002  # held while a migration is applied
INDEXER_LOCK = 0x6D730003  # held (per session) by the one process that derives

# Connection settings unless the URL says otherwise: an unreachable server fails a connect
# or a query within seconds instead of hanging (the writer spools after 250 ms anyway).
_CONNECT_DEFAULTS = {
    "connect_timeout": "3",
    "tcp_user_timeout": "5000",
    "keepalives": "1",
    "keepalives_idle": "5",
    "keepalives_interval": "2",
    "keepalives_count": "2",
    "application_name": "mailstats",
}
# Seconds within which a connection that was returned in working order is handed out again
# without a check query.
RECENTLY_USED = 2.0
# Also per session: waiting for a lock (DDL, the events lock) gives up rather than queueing.
_SESSION_OPTIONS = "-c lock_timeout=5s -c idle_in_transaction_session_timeout=60s"


def _unseat(conn: psycopg.Connection[Any], ids: list[int], stamps: list[int], bits: int) -> None:
    """Clear the flags of events that earlier ones took `first` from, and their blocks'."""
    if ids:  # earlier events arrived late; rare, so one statement each
        with conn.cursor() as cur:
            cur.executemany(_UNSEAT.format(bits=bits), list(zip(ids, stamps, strict=True)))


class _NeedsPartitions(Exception):
    def __init__(self, stamps: set[int]) -> None:
        self.stamps = stamps


class PostgresBackend(Backend):
    dialect = "postgres"
    placeholder = "%s"
    like = "ILIKE"  # SQLite's LIKE ignores ASCII case; PostgreSQL's does not
    unindexed = ""  # the planner weighs every index well enough (and prunes by ts)

    def __init__(self, url: str, *, pool_size: int = 10, timeout: float = 5.0,
                 capture: CaptureLog | None = None) -> None:  # fmt: skip
        self.queries = queries.load("postgres")
        settings = {**_CONNECT_DEFAULTS, **conninfo_to_dict(url)}
        settings.setdefault("options", _SESSION_OPTIONS)
        self._last_used: weakref.WeakKeyDictionary[psycopg.Connection[Any], float] = (
            weakref.WeakKeyDictionary()
        )
        self.pool = ConnectionPool(
            url,
            kwargs={**settings, "autocommit": True},
            min_size=1,
            max_size=max(1, pool_size),
            timeout=timeout,
            check=self._check,
            reset=self._returned,
            configure=_configure,
            name="mailstats",
            open=False,
        )
        # Open without waiting: a server that is down makes each call fail after `timeout`
        # seconds, and the pool reconnects in the background once it is back.
        self.pool.open(wait=False)
        self.partitions = Partitions(self.pool, EVENTS_LOCK)
        self._table = PostgresCapture(self.pool)
        # the log tracking hits go to: this table, or a NATS stream (StreamCapture)
        self._capture: CaptureLog = capture or self._table
        self._url = url
        self._role_settings: dict[str, Any] = {**settings, "autocommit": True}
        self._role_conn: psycopg.Connection[Any] | None = None
        self._role_checked = 0.0
        self._network_ids: dict[tuple[int, str], int] = {}  # networks.id by (asn, name)

    def _returned(self, conn: psycopg.Connection[Any]) -> None:
        """Called by the pool as a connection comes back in working order."""
        self._last_used[conn] = time.monotonic()

    def _check(self, conn: psycopg.Connection[Any]) -> None:
        """Check a connection before handing it out, unless it worked a moment ago.

        A check is a round trip: on every checkout it doubled the cost of a short query
        (such as a click's destination lookup). A connection that worked within the last
        RECENTLY_USED seconds is very likely still alive, and one that has failed since is
        not back in the pool (the pool discards broken connections as they return).
        """
        if time.monotonic() - self._last_used.get(conn, -RECENTLY_USED) >= RECENTLY_USED:
            ConnectionPool.check_connection(conn)

    def fetch(self, sql: str, params: Params = ()) -> list[Row]:
        with self.pool.connection() as conn:
            return conn.execute(sql, params).fetchall()

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            yield cur

    def insert_events(self, events: Sequence[Event], now: float | None = None) -> int:
        """Write a batch in one transaction; return how many events were new.

        The transaction first takes EVENTS_LOCK, so writers (threads, processes, nodes) commit
        one at a time and every ID drawn from `events_id_seq` (CACHE 1) is higher than any ID
        already committed. Without it, writer A could draw ID 10, writer B draw 11 and commit,
        a client syncing with `fields[]=ID>last` read 11, and A's 10 become visible later,
        below the client's mark: never seen. A lock holder's rows are visible before the lock
        is released, so the next writer's IDs are drawn after they are visible.
        The lock is its own statement: the insert's snapshot must be taken after it is held.
        """
        if not events:
            return 0
        self.partitions.ensure({event.ts for event in events})
        added: dict[tuple[int, str], int] = {}
        with self.pool.connection() as conn, conn.pipeline(), conn.transaction():
            # BEGIN, lock and insert go out together, then COMMIT: two round trips
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (EVENTS_LOCK,))
            new = self._insert(conn, events, added, now)
        self._network_ids.update(added)  # committed
        return new

    def _insert(
        self,
        conn: psycopg.Connection[Any],
        events: Sequence[Event],
        added: dict[tuple[int, str], int],
        now: float | None = None,
    ) -> int:
        """The insert itself, inside the caller's transaction, which holds EVENTS_LOCK."""
        if not events:
            return 0
        bits = self.block_bits()
        names, params = _batch(events)
        places = self._places(conn, _addresses(events), added) if "ip" in names else None
        sql = _insert_sql(names, bits, geo=places is not None)
        stored = _last_id(conn)
        captured = [(e.key, e.kind.code, e.values[0], e.values[1]) for e in events
                    if e.kind.verdicts and len(e.values) >= 2]  # fmt: skip
        # never prepared: a generic plan, blind to the batch, runs about twice as slow
        row = conn.execute(sql, [*(places or ()), *params], prepare=False).fetchone()
        assert row is not None
        new, unseated_ids, unseated_ts = row
        _unseat(conn, unseated_ids, unseated_ts, bits)
        self._verdicts(conn, stored, now, captured=captured)
        return int(new)

    def _verdicts(self, conn: psycopg.Connection[Any], stored: int | None,
                  now: float | None = None, fresh: str = "{a}.id > %s",
                  args: Sequence[int] = (),
                  captured: Sequence[verdicts.Captured] = ()) -> None:  # fmt: skip
        """The verdict steps (store/verdicts.py) for the events above ID `stored` (None:
        only those due to settle), inside the caller's transaction."""
        now = time.time() if now is None else now
        if stored is None and not args:
            fresh, args = verdicts.NOTHING, ()
        elif stored is not None:
            args = (stored,)
        verdicts.step(conn, verdicts.POSTGRES, fresh, args, now, self.rules, self.block_bits(),
                      captured)  # fmt: skip

    def settle(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self.pool.connection() as conn:
            if not verdicts.due(conn, verdicts.POSTGRES, now, self.rules):
                return
        with self.pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (EVENTS_LOCK,))
            self._verdicts(conn, None, now)

    def rescore(self, destinations: Sequence[int], now: float | None = None) -> None:
        with self.pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (EVENTS_LOCK,))
            verdicts.reset(conn, verdicts.POSTGRES, destinations, self.block_bits())
            fresh = f"{{a}}.destination_id IN ({', '.join('%s' for _ in destinations)})"
            stored = conn.execute(verdicts.stored_sql(verdicts.POSTGRES, fresh), destinations)
            self._verdicts(conn, None, now, fresh, destinations, stored.fetchall())

    @property
    def capture(self) -> CaptureLog:
        return self._capture

    def derive(self, limit: int) -> Derived:
        """Take the oldest events off the log and store them, in one statement and one
        transaction: a failure anywhere puts them back."""
        if not self.fetch("SELECT 1 FROM capture_log LIMIT 1"):
            if self._capture is not self._table:
                done = self._derive_stream(limit)
                if not done.taken:
                    self.settle()  # only verdicts whose window has passed, if any
                return done
            self.settle()  # only verdicts whose window has passed, if any
            return Derived()  # nothing waits: no lock, no transaction
        bits = self.block_bits()
        for _ in range(2):
            added: dict[tuple[int, str], int] = {}
            try:
                done = self._derive(limit, bits, added)
                self._network_ids.update(added)  # committed
                return done
            except _NeedsPartitions as needs:
                self.partitions.ensure(needs.stamps)
        return Derived()

    def _derive_stream(self, limit: int) -> Derived:
        """Events pulled from the stream, stored in one transaction through the log table
        (the same statement as `derive`), then acknowledged: a crash before the
        acknowledgement redelivers them, and their keys make the second time a no-op."""
        from mailstats.store.stream import StreamCapture

        assert isinstance(self._capture, StreamCapture)
        pulled = self._capture.pull(limit)
        if not pulled.events:
            self._capture.ack(pulled)  # messages without a readable line
            return Derived()
        events = pulled.events
        self.partitions.ensure({event.ts for event in events})
        bits = self.block_bits()
        captured = pulled.captured or time.time()
        added: dict[tuple[int, str], int] = {}
        try:
            with self.pool.connection() as conn, conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (EVENTS_LOCK,))
                conn.execute(*self._table.statement(events, captured))
                done = self._derive_in(conn, len(events), bits, added)
        except Exception:
            self._capture.nak(pulled)  # delivered again at once, not after the ack wait
            raise
        self._network_ids.update(added)  # committed
        self._capture.ack(pulled)
        return done

    def _derive(self, limit: int, bits: int, added: dict[tuple[int, str], int]) -> Derived:
        """One derive transaction; networks it adds are put in `added`."""
        with self.pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (EVENTS_LOCK,))
            return self._derive_in(conn, limit, bits, added)

    def _derive_in(
        self, conn: psycopg.Connection[Any], limit: int, bits: int,
        added: dict[tuple[int, str], int],
    ) -> Derived:  # fmt: skip
        """The oldest `limit` rows of the log stored, in the caller's transaction (which
        holds EVENTS_LOCK)."""
        # the months the events need must have their partitions (made under the same
        # lock, so outside this transaction)
        span = conn.execute(_LOG_SPAN, (limit,)).fetchone()
        if span is None or span[0] is None:
            return Derived()
        low, high = span
        if not self.partitions.cover({int(low), int(high)}):
            raise _NeedsPartitions({int(low), int(high)})
        source, places = _LOG_SOURCE, None
        taking: int | list[int] = limit
        # the hits' address and agent as captured, before privacy trims what is stored
        if self.geo.on:  # one read for both; the rows are named, so those looked up are taken
            oldest = conn.execute(_LOG_OLDEST, (limit,)).fetchall()
            if not oldest:
                return Derived()
            source, taking = _LOG_SOURCE_LISTED, [row[0] for row in oldest]
            hits = [row[1:] for row in oldest if row[2] in verdicts.KIND_CODES]
            cut = _BOUNDS["ip"]
            places = self._places(conn, {row[3][:cut] for row in oldest if row[3]}, added)
        else:
            hits = conn.execute(verdicts.POSTGRES_CAPTURED, (limit,)).fetchall()
        sql = _insert_sql(_LOG_COLUMNS, bits, source, places is not None)
        params = [*(places or ()), taking]
        stored = _last_id(conn)
        row = conn.execute(sql, params, prepare=False).fetchone()
        assert row is not None
        new, unseated_ids, unseated_ts, taken, batched, captured = row
        _unseat(conn, unseated_ids, unseated_ts, bits)
        self._verdicts(conn, stored, captured=hits)
        return Derived(int(taken), int(new), int(taken) - int(batched),
                       [float(captured)])  # fmt: skip

    def _places(
        self, conn: psycopg.Connection[Any], addresses: Iterable[str],
        added: dict[tuple[int, str], int],
    ) -> list[Any] | None:  # fmt: skip
        """Where the batch's events came from (mailstats.geo), its own step: the distinct
        full addresses looked up (cached), organisations new to this process added to
        `networks` (and to `added`), and the arrays of the insert's `places` (none: geo is
        off or no event has an address)."""
        if not self.geo.on:
            return None
        places = self.geo.places(addresses)
        if not places:
            return None
        known = self._network_ids
        new = {(p.asn or 0, p.asnorg) for p in places.values() if p.asnorg} - known.keys()
        if new:
            asns, names = (list(c) for c in zip(*new, strict=True))
            for i, asn, name in conn.execute(_NETWORKS_ADD, (asns, names)).fetchall():
                added[int(asn), str(name)] = int(i)
        networks: list[int | None] = []
        for p in places.values():
            key = (p.asn or 0, p.asnorg or "")
            networks.append((known.get(key) or added.get(key)) if p.asnorg else None)
        return [list(places), [p.country for p in places.values()], networks]

    def indexer_role(self) -> bool:
        """A session advisory lock on a connection of its own, held while it lives (checked
        at most once a second)."""
        conn = self._role_conn
        now = time.monotonic()
        if conn is not None and not conn.closed:
            if now - self._role_checked < 1.0:
                return True
            try:
                conn.execute("SELECT 1")
                self._role_checked = now
                return True
            except psycopg.Error:
                conn.close()
        self._role_conn = None
        conn = psycopg.connect(self._url, **self._role_settings)  # fresh, outside the pool
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (INDEXER_LOCK,)).fetchone()
        if row is None or not row[0]:
            conn.close()
            return False
        self._role_conn, self._role_checked = conn, now
        return True

    def migrate(self, block_bits: int = BLOCK_BITS) -> list[str]:
        """Apply pending migrations, each in a transaction under MIGRATE_LOCK, then maintain."""
        applied = []
        done = self._applied()
        folder = resources.files("mailstats.store") / "migrations" / "postgres"
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if not entry.name.endswith(".sql") or entry.name in done:
                continue
            with self.transaction() as cur:
                cur.execute("SET LOCAL lock_timeout = '10min'")  # another node migrating
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
                cur.execute(_CREATE_MIGRATIONS)
                # another node may have applied it while this one waited for the lock
                if cur.execute(
                    "SELECT 1 FROM schema_migrations WHERE name = %s", (entry.name,)
                ).fetchone():
                    continue
                # no parameters, so the script may hold several statements
                cur.execute(entry.read_text(encoding="utf-8"))
                cur.execute(
                    "INSERT INTO schema_migrations (name, applied_at) VALUES (%s, %s)",
                    (entry.name, int(time.time())),
                )
            applied.append(entry.name)
        if not self.fetch("SELECT 1 FROM meta WHERE key = 'block_bits'"):
            with self.transaction() as cur:
                cur.execute("SET LOCAL lock_timeout = '10min'")
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (EVENTS_LOCK,))
                self._make_layout(cur, block_bits)
        self.maintain()
        return applied

    def _applied(self) -> set[str]:
        if self.fetch("SELECT to_regclass('schema_migrations')")[0][0] is None:
            return set()
        return {row[0] for row in self.fetch("SELECT name FROM schema_migrations")}

    def maintain(self) -> None:
        """Create the event partitions from a few months back through three months ahead."""
        self.partitions.maintain()

    def close(self) -> None:
        if self._capture is not self._table:
            self._capture.close()
        if self._role_conn is not None:
            self._role_conn.close()  # releases the indexer role
            self._role_conn = None
        self.pool.close()


def _last_id(conn: psycopg.Connection[Any]) -> int:
    """The highest event ID drawn so far (under EVENTS_LOCK: no one else draws one)."""
    row = conn.execute("SELECT last_value, is_called FROM events_id_seq").fetchone()
    assert row is not None
    return int(row[0]) if row[1] else int(row[0]) - 1


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.adapters.register_dumper(str, _TextBinary)
    conn.adapters.register_dumper(str, _Text)  # the last registered is the default


# SQLite keeps a NUL inside TEXT; PostgreSQL refuses it, which would fail a request or a
# whole batch of events (and its replays, for ever). U+FFFD takes its place, in what is
# stored and in what is searched for alike.
class _Text(StrDumperUnknown):
    def dump(self, obj: str) -> Buffer | None:
        return super().dump(obj.replace("\x00", "\ufffd") if "\x00" in obj else obj)


class _TextBinary(StrBinaryDumper):
    def dump(self, obj: str) -> Buffer | None:
        return super().dump(obj.replace("\x00", "\ufffd") if "\x00" in obj else obj)


_CREATE_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)
"""

_INSERT_TYPES = {
    "kind": "smallint",
    "key": "bytea",
    "ts": "bigint",
    "account_id": "bigint",
    "emailing_id": "bigint",
    "destination_id": "bigint",
    "link_id": "bigint",
    "reasons": "integer",
    "settled": "smallint",
    **{c.name: "bigint" if c.type == "int" else "text" for k in KINDS.values() for c in k.columns},
}
_FIRST = INSERT_COLUMNS.index("first")


def _batch(events: Sequence[Event]) -> tuple[tuple[str, ...], list[list[Any]]]:
    """The columns of this batch and its parameters: one array per column.

    Columns that are NULL throughout the batch (those of other kinds) are left out.
    """
    columns = list(zip(*(event_row(event, 0) for event in events), strict=True))
    names: list[str] = []
    arrays: list[list[Any]] = []
    for i, name in enumerate(INSERT_COLUMNS):
        if i == _FIRST or (i > _FIRST and all(v is None for v in columns[i])):
            continue
        names.append(name)
        arrays.append(list(columns[i]))
    return tuple(names), arrays


def _addresses(events: Sequence[Event]) -> set[str]:
    """The distinct addresses of a batch, cut to the column's bound as they are stored."""
    found = set()
    for event in events:
        for column, value in zip(event.kind.columns, event.values, strict=False):
            if column.name == "ip" and value:
                found.add(str(value)[: column.max_length])
    return found


_LOG_COLUMNS = ("kind", "key", "ts", "account_id", "emailing_id", "destination_id", "link_id",
                "reasons", "settled", *VALUE_COLUMNS)  # fmt: skip
_BOUNDS = {c.name: c.max_length for k in KINDS.values() for c in k.columns if c.type != "int"}
_VERDICT_KINDS = ", ".join(str(k.code) for k in KINDS.values() if k.verdicts)
# The oldest `limit` rows of the log: their time span.
_LOG_SPAN = """
SELECT min(ts), max(ts) FROM (SELECT ts FROM capture_log ORDER BY id LIMIT %s) oldest
"""
# With geo on: the rows themselves, read once for the address lookup before the insert (which
# then takes exactly these rows: others may arrive meanwhile) and for the verdicts' hints.
_LOG_OLDEST = "SELECT id, key, kind, ip, useragent FROM capture_log ORDER BY id LIMIT %s"
# Organisations are kept once each; the insert finds their IDs by (asn, name).
# (The process keeps the IDs of committed rows; one another process added is updated
# in place, so that its ID is returned too.)
_NETWORKS_ADD = """
INSERT INTO networks (asn, name) SELECT * FROM unnest(%b::bigint[], %b::text[])
ON CONFLICT (asn, name) DO UPDATE SET name = excluded.name RETURNING id, asn, name
"""
# The places of the batch's addresses, passed as arrays (ip, country, networks.id).
_PLACES = """places AS (
    SELECT * FROM unnest(%b::text[], %b::text[], %b::bigint[]) AS p(ip, country, network_id)
)"""
# The same rows taken off the log as the batch of the insert: hits (account 0) get their
# account and emailing from their destination; those naming no destination, or a link of
# another emailing (only a token signed for another database can), are dropped.
_LOG_SOURCE = f"""
taken AS (
    DELETE FROM capture_log WHERE id IN (SELECT id FROM capture_log ORDER BY id LIMIT %s)
    RETURNING *
), batch AS (
    SELECT t.kind, t.key, t.ts,
        CASE WHEN t.account_id = 0 THEN d.account_id ELSE t.account_id END AS account_id,
        CASE WHEN t.account_id = 0 THEN d.emailing_id ELSE t.emailing_id END AS emailing_id,
        t.destination_id, t.link_id, t.reasons,
        CASE WHEN t.kind IN ({_VERDICT_KINDS}) THEN 0 ELSE 1 END AS settled,
        {", ".join(f"left(t.{n}, {_BOUNDS[n]}) AS {n}" if n in _BOUNDS else f"t.{n}" for n in VALUE_COLUMNS)},
        t.id AS n
    FROM taken t
    LEFT JOIN destinations d ON t.account_id = 0 AND d.id = t.destination_id
    LEFT JOIN links l ON t.account_id = 0 AND t.kind = {CLICKS.code} AND l.id = t.link_id
    WHERE t.account_id <> 0
        OR (d.id IS NOT NULL AND (t.kind <> {CLICKS.code} OR l.emailing_id = d.emailing_id))
)"""
_LOG_SOURCE_LISTED = _LOG_SOURCE.replace(
    "WHERE id IN (SELECT id FROM capture_log ORDER BY id LIMIT %s)", "WHERE id = ANY(%b::bigint[])"
)
assert _LOG_SOURCE_LISTED != _LOG_SOURCE

# An event that lost its `first` flag to an earlier one, and its block's count of flags.
_UNSEAT = f"""
WITH unseated AS (
    UPDATE events SET first = 0 WHERE id = %s AND ts = %s AND first = 1
    RETURNING account_id, kind, id >> {{bits}} AS block, emailing_id, ts, link_id, device,
        client, os, country
), blocks AS (
    UPDATE event_blocks b SET firsts = b.firsts - 1 FROM unseated u
    WHERE (b.account_id, b.kind, b.block, b.emailing_id)
        = (u.account_id, u.kind, u.block, u.emailing_id)
), slots AS (
    UPDATE slot_counts s SET firsts = s.firsts - 1 FROM unseated u
    WHERE (s.account_id, s.emailing_id, s.kind, s.slot)
        = (u.account_id, u.emailing_id, u.kind, u.ts / 900)
), countries AS (
    UPDATE country_counts c SET firsts = c.firsts - 1 FROM unseated u
    WHERE (c.account_id, c.emailing_id, c.kind, c.country)
        = (u.account_id, u.emailing_id, u.kind, coalesce(u.country, ''))
), links AS (
    UPDATE link_counts l SET firsts = l.firsts - 1 FROM unseated u
    WHERE u.kind = {CLICKS.code} AND (l.account_id, l.link_id) = (u.account_id, u.link_id)
)
UPDATE client_counts c SET firsts = c.firsts - 1 FROM unseated u
WHERE u.kind = {IMPRESSIONS.code} AND (c.account_id, c.emailing_id, c.device, c.client, c.os)
    = (u.account_id, u.emailing_id, coalesce(u.device, ''), coalesce(u.client, ''),
       coalesce(u.os, ''))
"""


def _private(names: tuple[str, ...]) -> tuple[str, str]:
    """Privacy (store/privacy.py): the inserted values of `fresh f`, and the joins they need.

    The last change to a batch before its rows go into events: every CTE before the insert
    (flags, and whatever else is derived from the full address or user agent) reads the
    full values. An account's `ip` and `useragent` modes, then nothing at all for a
    destination whose personal data was cleared (erased, or past its retention) and that
    is still being clicked.
    """
    if "ip" not in names and "useragent" not in names:
        return ", ".join(f"f.{name}" for name in names), ""
    cleared = "c.id IS NOT NULL"
    shown = {
        "ip": f"CASE WHEN {cleared} OR s.ip = 'none' THEN NULL"
        " WHEN s.ip = 'truncated' THEN mailstats_ip_prefix(f.ip) ELSE f.ip END",
        "useragent": f"CASE WHEN {cleared} OR s.useragent = 'parsed' THEN NULL"
        " ELSE f.useragent END",
    }
    values = ", ".join(shown.get(name, f"f.{name}") for name in names)
    joins = (
        " LEFT JOIN account_settings s ON s.account_id = f.account_id"
        " LEFT JOIN destinations c ON c.id = f.destination_id AND c.cleared_at IS NOT NULL"
    )
    return values, joins


@functools.lru_cache(maxsize=64)
def _insert_sql(names: tuple[str, ...], bits: int, source: str = "", geo: bool = False) -> str:
    """One statement for a whole batch, its columns passed as binary arrays.

    It does what SQLite's insert_events does event by event: a replay (a key already
    stored, or named twice) inserts nothing; in each (kind, destination, link) group the
    earliest event is `first`, ties going to the one stored first, so an earlier event
    arriving late takes the flag from the one that held it. IDs are drawn in batch order.
    Replays are found in `event_keys` before inserting (the flags depend on which events
    are new); under EVENTS_LOCK no one else can add a key meanwhile.
    The batch's counts are added to event_blocks (blocks of 2**bits IDs), and its events
    to the webhook outbox of every endpoint that takes them (mailstats.webhooks).
    It returns the count of new events and the (id, ts) of events that lost the flag:
    clearing those here would plan as a join over every partition, so the caller does it.
    With `geo`, the events get their country and network from `places` (arrays first).
    """
    arrays = ", ".join(f"%b::{_INSERT_TYPES[name]}[]" for name in names)
    listed = ", ".join(names)
    batch = source or f"batch AS (SELECT * FROM unnest({arrays}) WITH ORDINALITY AS b({listed}, n))"
    extra = (
        ", (SELECT count(*) FROM taken), (SELECT count(*) FROM batch),"
        " (SELECT min(captured) FROM taken)"
        if source
        else ""
    )
    values, private = _private(names)  # the values as privacy leaves them, last
    located, place, places = "", "", ""
    if geo:
        located, place = ", country, network_id", ", g.country, g.network_id"
        places = f"{_PLACES}, "
    group = "kind, destination_id, link_id"
    retry = f"a.kind = {DELIVERIES.code} AND a.attempts > 1"
    retries, flagged, join = "0, 0", "", ""
    if "attempts" in names:  # deliveries after a retry; the first for each destination
        retries = f"count(*) FILTER (WHERE {retry}), count(fl.id)"
        # the statement's snapshot shows `retried` as it was before it: no join on RETURNING
        # rows (whose row counts the planner cannot know)
        flagged = f"""
), flagged AS (
    SELECT min(a.id) AS id, a.destination_id FROM added a
    WHERE {retry} AND NOT EXISTS (SELECT FROM retried r WHERE r.destination_id = a.destination_id)
    GROUP BY a.destination_id
), retry AS (
    INSERT INTO retried (destination_id) SELECT destination_id FROM flagged"""
        join = " LEFT JOIN flagged fl USING (id)"
    return f"""
WITH {places}{batch}, fresh AS (
    SELECT DISTINCT ON (b.key) b.* FROM batch b
    WHERE NOT EXISTS (SELECT FROM event_keys k WHERE k.key = b.key)
    ORDER BY b.key, b.n
), best AS (
    SELECT DISTINCT ON ({group}) {group}, ts, n FROM fresh ORDER BY {group}, ts, n
), won AS (
    SELECT best.n, h.event_id AS held_id, h.ts AS held_ts
    FROM best LEFT JOIN firsts h USING ({group})
    WHERE h.ts IS NULL OR best.ts < h.ts
), added AS (
    INSERT INTO events ({listed}, first{located})
    SELECT {values}, CASE WHEN w.n IS NULL THEN 0 ELSE 1 END{place}
    FROM fresh f LEFT JOIN won w ON w.n = f.n{private}{" LEFT JOIN places g ON g.ip = f.ip" if geo else ""}
    ORDER BY f.n
    RETURNING id, key, {group}, ts, first, account_id, emailing_id, attempts, device,
        client, os, errortype, errorcode, country{flagged}
), counted AS (
    INSERT INTO event_blocks AS t (account_id, kind, block, emailing_id,
        n, firsts, min_ts, max_ts, retries, retried)
    SELECT a.account_id, a.kind, a.id >> {bits}, a.emailing_id,
        count(*), sum(a.first), min(a.ts), max(a.ts), {retries}
    FROM added a{join} GROUP BY a.account_id, a.kind, a.id >> {bits}, a.emailing_id
    ON CONFLICT (account_id, kind, block, emailing_id) DO UPDATE SET
        n = t.n + excluded.n, firsts = t.firsts + excluded.firsts,
        min_ts = least(t.min_ts, excluded.min_ts), max_ts = greatest(t.max_ts, excluded.max_ts),
        retries = t.retries + excluded.retries, retried = t.retried + excluded.retried
), slots AS (
    INSERT INTO slot_counts AS t (account_id, emailing_id, kind, slot, n, firsts)
    SELECT account_id, emailing_id, kind, ts / 900, count(*), sum(first) FROM added
    GROUP BY account_id, emailing_id, kind, ts / 900
    ON CONFLICT (account_id, emailing_id, kind, slot) DO UPDATE SET
        n = t.n + excluded.n, firsts = t.firsts + excluded.firsts
), per_country AS (
    INSERT INTO country_counts AS t (account_id, emailing_id, kind, country, n, firsts)
    SELECT account_id, emailing_id, kind, coalesce(country, ''), count(*), sum(first) FROM added
    GROUP BY account_id, emailing_id, kind, coalesce(country, '')
    ON CONFLICT (account_id, emailing_id, kind, country) DO UPDATE SET
        n = t.n + excluded.n, firsts = t.firsts + excluded.firsts
), per_link AS (
    INSERT INTO link_counts AS t (account_id, link_id, emailing_id, n, firsts)
    SELECT account_id, link_id, emailing_id, count(*), sum(first) FROM added
    WHERE kind = {CLICKS.code} GROUP BY account_id, link_id, emailing_id
    ON CONFLICT (account_id, link_id) DO UPDATE SET
        n = t.n + excluded.n, firsts = t.firsts + excluded.firsts
), per_client AS (
    INSERT INTO client_counts AS t (account_id, emailing_id, device, client, os, n, firsts)
    SELECT account_id, emailing_id, coalesce(device, ''), coalesce(client, ''), coalesce(os, ''),
        count(*), sum(first)
    FROM added WHERE kind = {IMPRESSIONS.code}
    GROUP BY account_id, emailing_id, coalesce(device, ''), coalesce(client, ''), coalesce(os, '')
    ON CONFLICT (account_id, emailing_id, device, client, os) DO UPDATE SET
        n = t.n + excluded.n, firsts = t.firsts + excluded.firsts
), reach AS (
    -- recipients clicking for the first time: `clickers` as it was before this statement
    INSERT INTO reach_counts AS t (account_id, emailing_id, kind, n)
    SELECT account_id, emailing_id, {CLICKS.code}, count(DISTINCT destination_id) FROM added a
    WHERE kind = {CLICKS.code} AND NOT EXISTS (SELECT FROM clickers c
        WHERE (c.account_id, c.destination_id) = (a.account_id, a.destination_id))
    GROUP BY account_id, emailing_id
    ON CONFLICT (account_id, emailing_id, kind) DO UPDATE SET n = t.n + excluded.n
), clicked AS (
    INSERT INTO clickers (account_id, destination_id)
    SELECT DISTINCT account_id, destination_id FROM added WHERE kind = {CLICKS.code}
    ON CONFLICT DO NOTHING
), bounced AS (
    -- bounces per type and code, and the recipients each reached for the first time
    INSERT INTO bounce_counts AS t (account_id, emailing_id, errortype, errorcode, n,
        destinations)
    SELECT account_id, emailing_id, coalesce(errortype, ''), coalesce(errorcode, ''), count(*),
        count(DISTINCT destination_id) FILTER (WHERE NOT EXISTS (SELECT FROM bouncers x
            WHERE (x.account_id, x.destination_id, x.errortype, x.errorcode) = (a.account_id,
                a.destination_id, coalesce(a.errortype, ''), coalesce(a.errorcode, ''))))
    FROM added a WHERE kind = {ERRORS.code}
    GROUP BY account_id, emailing_id, coalesce(errortype, ''), coalesce(errorcode, '')
    ON CONFLICT (account_id, emailing_id, errortype, errorcode) DO UPDATE SET
        n = t.n + excluded.n, destinations = t.destinations + excluded.destinations
), bouncing AS (
    INSERT INTO bouncers (account_id, destination_id, errortype, errorcode)
    SELECT DISTINCT account_id, destination_id, coalesce(errortype, ''), coalesce(errorcode, '')
    FROM added WHERE kind = {ERRORS.code}
    ON CONFLICT DO NOTHING
), keys AS (
    INSERT INTO event_keys (key, event_id, ts) SELECT key, id, ts FROM added
), held AS (
    INSERT INTO firsts ({group}, event_id, ts)
    SELECT {group}, id, ts FROM added WHERE first = 1
    ON CONFLICT ({group}) DO UPDATE SET event_id = excluded.event_id, ts = excluded.ts
), outbox AS (
    INSERT INTO webhook_outbox (webhook_id, event_id)
    SELECT w.id, a.id FROM added a JOIN webhooks w ON w.account_id = a.account_id
    WHERE ((w.kinds >> a.kind) & 1) = 1
)
SELECT (SELECT count(*) FROM added),
    ARRAY(SELECT held_id FROM won WHERE held_id IS NOT NULL),
    ARRAY(SELECT held_ts FROM won WHERE held_id IS NOT NULL){extra}"""
