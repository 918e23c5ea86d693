"""The store: everything the web and CLI layers ask of the database, as plain data."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import orjson

from mailstats.errors import InvalidParameter, NotFound
from mailstats.kinds import KINDS, Kind
from mailstats.store import blocks
from mailstats.store import events as ev
from mailstats.store.base import (
    Account,
    Backend,
    Destination,
    Emailing,
    Event,
    Link,
    Page,
    Row,
    Scope,
    TokenInfo,
)
from mailstats.store.capture import Backlog
from mailstats.store.charts import Charts
from mailstats.store.derive import BATCH, Derived
from mailstats.store.users import Users
from mailstats.store.verdicts import TRAP_START
from mailstats.store.webhooks import Webhooks

T = TypeVar("T")


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class Store:
    """One database, whichever backend. Methods are blocking; call them off the event loop."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.q = backend.queries
        self.users = Users(backend)  # dashboard sign-in
        self.charts = Charts(backend)  # the dashboard's and the chart API's figures
        self.webhooks = Webhooks(backend)  # push endpoints, their outbox and attempts

    @property
    def dialect(self) -> str:
        return self.backend.dialect

    def close(self) -> None:
        self.backend.close()

    def _one(self, name: str, params: dict[str, Any]) -> Row | None:
        rows = self.backend.fetch(self.q[name], params)
        return rows[0] if rows else None

    def _write(self, name: str, params: dict[str, Any]) -> Row | None:
        with self.backend.transaction() as cur:
            cur.execute(self.q[name], params)
            row: Row | None = cur.fetchone() if "RETURNING" in self.q[name] else None
            return row

    # -- meta ---------------------------------------------------------------------------

    def secret(self, given: str | None = None) -> bytes:
        """The link-signing secret: `given` if set, else the one kept in the database."""
        if given:
            return given.encode()
        self._write("meta_put_new", {"key": "secret", "value": secrets.token_hex(32)})
        row = self._one("meta_get", {"key": "secret"})
        assert row is not None
        return bytes.fromhex(row[0])

    # -- accounts and tokens -------------------------------------------------------------

    def ensure_account(self, name: str, timezone: str) -> Account:
        if not name or len(name) > 200:
            raise InvalidParameter("An account name is 1 to 200 characters")
        row = self._one("account_by_name", {"name": name})
        if row is None:
            with self.backend.transaction() as cur:
                cur.execute(
                    self.q["account_insert"], {"name": name, "timezone": timezone, "now": _now()}
                )
            row = self._one("account_by_name", {"name": name})
        assert row is not None
        return Account(*row)

    def account(self, name: str) -> Account:
        row = self._one("account_by_name", {"name": name})
        if row is None:
            raise NotFound(f"No account named {name!r}")
        return Account(*row)

    def create_token(self, account_name: str, timezone: str) -> str:
        """A new access token for the account (made if needed); only its hash is kept."""
        account = self.ensure_account(account_name, timezone)
        token = secrets.token_urlsafe(30)
        params = {
            "account_id": account.id,
            "hash": hash_token(token),
            "hint": token[:4],
            "now": _now(),
        }
        self._write("token_insert", params)
        return token

    def tokens(self) -> list[TokenInfo]:
        return [TokenInfo(*row) for row in self.backend.fetch(self.q["token_list"])]

    def revoke_token(self, token_id: int) -> bool:
        with self.backend.transaction() as cur:
            cur.execute(self.q["token_revoke"], {"id": token_id, "now": _now()})
            return cur.rowcount > 0

    def authenticate(self, token: str) -> Account | None:
        digest = hash_token(token)
        row = self._one("token_lookup", {"hash": digest})
        if row is None or not hmac.compare_digest(bytes(row[0]), digest):
            return None
        return Account(row[1], row[2], row[3])

    # -- emailings -----------------------------------------------------------------------

    def create_emailing(
        self,
        account_id: int,
        *,
        subject: str,
        from_name: str,
        from_email: str,
        html: str,
        text: str | None,
        tags: Sequence[str],
        type: str,
        links: Sequence[tuple[int, int, str]],
        created_at: int | None = None,
    ) -> int:
        with self.backend.transaction() as cur:
            cur.execute(
                self.q["emailing_insert"],
                {
                    "account_id": account_id,
                    "created_at": created_at or _now(),
                    "type": type,
                    "subject": subject,
                    "from_name": from_name,
                    "from_email": from_email,
                    "html": html,
                    "text": text,
                    "tags": orjson.dumps(list(tags)).decode(),
                },
            )
            emailing_id = int(cur.fetchone()[0])
            # the trap link: no person sees or follows it (verdicts' `trap` reason)
            for start, stop, url in (*links, (TRAP_START, TRAP_START, "")):
                cur.execute(
                    self.q["link_insert"],
                    {"emailing_id": emailing_id, "start": start, "stop": stop, "url": url},
                )
        return emailing_id

    def emailing(self, account_id: int, emailing_id: int) -> Emailing:
        row = self._one("emailing_get", {"id": emailing_id, "account_id": account_id})
        if row is None:
            raise NotFound()
        return _emailing(row)

    def links(self, emailing_id: int) -> list[Link]:
        rows = self.backend.fetch(self.q["emailing_links"], {"emailing_id": emailing_id})
        return [Link(*row) for row in rows]

    def trap_link(self, emailing_id: int) -> Link | None:
        """The emailing's invisible trap link (none for emailings made before traps)."""
        row = self._one("emailing_trap", {"emailing_id": emailing_id})
        return Link(*row) if row else None

    def emailings(
        self,
        account_id: int,
        *,
        start: int,
        limit: int,
        total: bool,
        type: str | None = None,
        fromdate: int | None = None,
        todate: int | None = None,
    ) -> Page[Emailing]:
        q = ev.Query(self.backend.placeholder, self.backend.like)
        q.add("account_id = ?", account_id)
        if type is not None:
            q.add("type = ?", type)
        if fromdate is not None:
            q.add("created_at >= ?", fromdate)
        if todate is not None:
            q.add("created_at <= ?", todate)
        columns = (
            "id, created_at, type, subject, from_name, from_email, destinations, tags, html, text"
        )
        sql = f"SELECT {columns} FROM emailings WHERE {q.where} ORDER BY id"
        return self._page(
            sql,
            f"SELECT count(*) FROM emailings WHERE {q.where}",
            q.args,
            start,
            limit,
            total,
            _emailing,
        )

    # -- destinations --------------------------------------------------------------------

    def create_destinations(
        self, account_id: int, emailing_id: int, items: Sequence[dict[str, Any]]
    ) -> list[int]:
        """Register recipients of an emailing; each item has email, profile, subprofile, fields."""
        self.emailing(account_id, emailing_id)
        ids = []
        now = _now()
        with self.backend.transaction() as cur:
            for item in items:
                cur.execute(
                    self.q["destination_insert"],
                    {
                        "account_id": account_id,
                        "emailing_id": emailing_id,
                        "created_at": item.get("timestamp") or now,
                        "email": item["email"],
                        "profile": item.get("profile"),
                        "subprofile": item.get("subprofile"),
                        "fields": orjson.dumps(item.get("fields") or {}).decode(),
                        "message_key": "ms" + secrets.token_urlsafe(15),
                    },
                )
                ids.append(int(cur.fetchone()[0]))
            cur.execute(self.q["emailing_count_destinations"], {"n": len(ids), "id": emailing_id})
        return ids

    def destination(self, account_id: int, destination_id: int) -> Destination:
        row = self._one("destination_get", {"id": destination_id, "account_id": account_id})
        if row is None:
            raise NotFound()
        return _destination(row)

    def destinations(
        self, account_id: int, emailing_id: int, *, start: int, limit: int, total: bool
    ) -> Page[Destination]:
        self.emailing(account_id, emailing_id)
        mark = self.backend.placeholder
        where = f"emailing_id = {mark} AND account_id = {mark}"
        columns = "id, emailing_id, created_at, email, profile, subprofile, fields, message_key"
        return self._page(
            f"SELECT {columns} FROM destinations WHERE {where} ORDER BY id",
            f"SELECT count(*) FROM destinations WHERE {where}",
            [emailing_id, account_id],
            start,
            limit,
            total,
            _destination,
        )

    def destination_by_message_key(self, account_id: int, key: str) -> int | None:
        row = self._one("destination_by_message_key", {"key": key, "account_id": account_id})
        return int(row[0]) if row else None

    def destination_by_email(self, account_id: int, emailing_id: int, email: str) -> int | None:
        """The emailing's (first) destination with this address, in any case."""
        params = {"emailing_id": emailing_id, "email": email, "account_id": account_id}
        row = self._one("destination_by_email", params)
        return int(row[0]) if row else None

    def tracking_destination(self, destination_id: int) -> tuple[int, int, dict[str, Any]] | None:
        """(account, emailing, fields) of a destination, for the tracking endpoints."""
        row = self._one("destination_for_tracking", {"id": destination_id})
        return (row[0], row[1], orjson.loads(row[2])) if row else None

    def tracking_link(self, link_id: int) -> tuple[int, str] | None:
        """(emailing, URL) of a link, for the click endpoint."""
        row = self._one("link_by_id", {"id": link_id})
        return (int(row[0]), str(row[1])) if row else None

    # -- events --------------------------------------------------------------------------

    def insert_events(self, events: Sequence[Event], now: float | None = None) -> int:
        """Store events at once (derived in the caller's call); return how many were new.
        `now` is the verdicts' clock, for a replay of past events (the present by default)."""
        return self.backend.insert_events(events, now) if events else 0

    def capture_events(self, events: Sequence[Event]) -> None:
        """Append a batch to the capture log; the indexer derives it a moment later."""
        if events:
            self.backend.capture.append(events)

    def backlog(self) -> Backlog:
        """What is captured and not derived yet."""
        return self.backend.capture.backlog()

    def derive(self, limit: int = BATCH) -> Derived:
        """One derive step on the calling thread (what the indexer does in a loop)."""
        return self.backend.derive(limit)

    def event_id(self, key: bytes) -> int | None:
        """The ID of the stored event with this key."""
        row = self._one("event_id_by_key", {"key": key})
        return int(row[0]) if row else None

    def check_scope(self, scope: Scope) -> None:
        """Raise NotFound unless the scope's emailing or destination is the account's."""
        if scope.emailing_id is not None:
            self.emailing(scope.account_id, scope.emailing_id)
        if scope.destination_id is not None:
            self.destination(scope.account_id, scope.destination_id)

    def events(
        self, kind: Kind, scope: Scope, flt: ev.Filter, *, start: int, limit: int, total: bool
    ) -> Page[Row]:
        """One page of `kind` events in ID order, with the total when asked.

        Where the event_blocks counters can answer (see blocks.py), a page starts at the
        block that holds its first row and a total adds blocks up.
        """
        q = self._where(kind, scope, flt)
        counter = (
            blocks.Counter(self.backend, kind, scope, flt)
            if blocks.usable(scope, flt, kind)
            else None
        )
        if counter is not None and not counter.countable():
            counter = None
        rows: list[Row] = []
        if start >= 0 and limit > 0:
            ranged = flt.begin is not None or flt.end is not None
            if counter is None or (start == 0 and not ranged):
                sql = ev.skip_sql(kind, q) if start else ev.list_sql(kind, q)
                rows = self.backend.fetch(sql, [*q.args, limit, start])
            elif (found := counter.locate(start)) is not None:
                lowest, before = found
                b = self.backend
                at = ev.where(kind, scope, flt, b.placeholder, b.like, f"{b.unindexed}e.ts")
                at.add("e.id >= ?", lowest)
                if ranged:
                    at.add("e.id < ?", counter.upper())
                sql = ev.skip_sql(kind, at) if start > before else ev.list_sql(kind, at)
                rows = self.backend.fetch(sql, [*at.args, limit, start - before])
        count = None
        if total:
            if counter is not None:
                count = counter.total()
            else:
                count = int(self.backend.fetch(ev.count_sql(kind, q), q.args)[0][0])
        return Page(rows, count)

    def _where(self, kind: Kind, scope: Scope, flt: ev.Filter) -> ev.Query:
        """The list's conditions; a time range also as the IDs of the blocks it meets."""
        b = self.backend
        if scope.destination_id is not None or (flt.begin is None and flt.end is None):
            return ev.where(kind, scope, flt, b.placeholder, b.like)
        q = ev.where(kind, scope, flt, b.placeholder, b.like, f"{b.unindexed}e.ts")
        low, high = blocks.id_span(b, kind, scope, flt)
        q.add("e.id >= ?", low)
        q.add("e.id < ?", high)
        return q

    def stream_events(
        self, kind: Kind, scope: Scope, flt: ev.Filter, size: int = 5000
    ) -> Iterator[Row]:
        """Every matching event in ID order, read in bounded batches."""
        q = self._where(kind, scope, flt)
        return self.backend.stream(ev.stream_sql(kind, q), q.args, 0, size)

    def statistics(
        self, scope: Scope, begin: int | None, end: int | None, bots: str = "include",
        *, uniques: bool = True,
    ) -> dict[str, Any]:  # fmt: skip
        """Totals and uniques per kind; each unique equals its list's total with unique=true
        (and the same `bots`). Without `uniques`, the uniques that only rows can count
        (`bots=only`'s) are left 0, so that the totals alone cost only counters."""
        q = self._scoped(scope, begin, end)
        counted = None
        if scope.emailing_id is not None and scope.destination_id is None:
            counted = blocks.statistics(self.backend, scope, begin, end, _VERDICT_KINDS)
        if counted is not None:
            sums = counted.counts
        else:
            sql = (
                f"SELECT e.kind, {blocks.row_sums(_VERDICT_KINDS)} FROM events e"
                f" WHERE {q.where} GROUP BY e.kind"
            )
            sums = {int(k): blocks.add(None, tuple(r)) for k, *r in self.backend.fetch(sql, q.args)}
        counts = {}
        for kind in KINDS.values():
            total, unique = _pick(kind, bots, sums.get(kind.code, (0, 0, 0, 0, 0)))
            if unique is None and not uniques:
                unique = 0
            elif unique is None:  # the earliest machine events: counted from rows
                flt = ev.Filter(begin, end, unique=True, bots=bots)
                where = ev.where(kind, scope, flt, self.backend.placeholder, self.backend.like)
                unique = int(self.backend.fetch(ev.count_sql(kind, where), where.args)[0][0])
            counts[kind.name] = (total, unique)
        if counted is not None and counted.retries is not None:
            retries = counted.retries
        else:
            retry_sql = (
                f"SELECT count(*), count(DISTINCT e.destination_id) FROM events e WHERE {q.where}"
                f" AND e.kind = {int(KINDS['deliveries'].code)} AND e.attempts > 1"
            )
            row = self.backend.fetch(retry_sql, q.args)[0]
            retries = (int(row[0]), int(row[1]))
        return {"counts": counts, "retries": retries}

    def rescore_destinations(self, account_id: int, since: int | None = None) -> list[int]:
        """The account's destinations with clicks or opens (since `since`), in ID order:
        what `rescore` goes through."""
        q = ev.Query(self.backend.placeholder, self.backend.like)
        q.add("e.account_id = ?", account_id)
        q.add(f"e.kind IN ({_VERDICT_KINDS})")
        if since is not None:
            q.add("e.ts >= ?", since)
        sql = f"SELECT DISTINCT e.destination_id FROM events e WHERE {q.where} ORDER BY 1"
        return [int(row[0]) for row in self.backend.fetch(sql, q.args)]

    def rescore(self, destinations: Sequence[int], now: float | None = None) -> None:
        """Apply the current rules afresh to every click and open of these destinations, in
        one transaction; their counters and `unique` flags follow. Verdicts still inside
        their window are settled by the indexer later, as new ones are."""
        if destinations:
            self.backend.rescore(destinations, now)

    def settle(self, now: float | None = None) -> None:
        """Settle the verdicts whose window has passed by `now` (the indexer does this)."""
        self.backend.settle(now)

    def implied_opens(self, scope: Scope, begin: int | None, end: int | None) -> int:
        """Destinations with a settled human click in range and no settled human open at
        all: their images were blocked, the click says they opened it."""
        c, o = KINDS["clicks"], KINDS["impressions"]
        flt = ev.Filter(begin, end, bots="exclude")
        q = ev.where(c, scope, flt, self.backend.placeholder, self.backend.like)
        sql = (
            f"SELECT count(DISTINCT e.destination_id) FROM events e WHERE {q.where}"
            f" AND NOT EXISTS (SELECT 1 FROM events o WHERE o.destination_id = e.destination_id"
            f" AND o.kind = {o.code} AND o.settled = 1 AND o.verdict = 0)"
        )
        return int(self.backend.fetch(sql, q.args)[0][0])

    def statistics_by_country(
        self, scope: Scope, begin: int | None, end: int | None, *, reasons: bool = False,
        bots: str = "include",
    ) -> dict[str, dict[str, Any]]:  # fmt: skip
        """`statistics` per country ("" for unknown or not looked up), the most events
        first; the groups add up to the ungrouped figures, machine events by the same
        `bots`. With `reasons`, each group also has its errors' reasons."""
        q = self._scoped(scope, begin, end)
        country = "coalesce(e.country, '')"
        sql = (
            f"SELECT {country}, e.kind, {blocks.row_sums(_VERDICT_KINDS)} FROM events e"
            f" WHERE {q.where} GROUP BY {country}, e.kind"
        )
        groups: dict[str, dict[str, Any]] = {}

        def group(name: str) -> dict[str, Any]:
            return groups.setdefault(name, {"counts": {}, "retries": (0, 0), "reasons": {}})

        for name, code, *sums in self.backend.fetch(sql, q.args):
            kind = next(k for k in KINDS.values() if k.code == int(code))
            total, unique = _pick(kind, bots, blocks.add(None, tuple(sums)))
            if unique is None:  # the earliest machine events: counted from rows
                flt = ev.Filter(begin, end, unique=True, bots=bots)
                where = ev.where(kind, scope, flt, self.backend.placeholder, self.backend.like)
                where.add(f"{country} = ?", str(name))
                unique = int(self.backend.fetch(ev.count_sql(kind, where), where.args)[0][0])
            group(str(name))["counts"][int(code)] = (total, unique)
        retry_sql = (
            f"SELECT {country}, count(*), count(DISTINCT e.destination_id) FROM events e"
            f" WHERE {q.where} AND e.kind = {int(KINDS['deliveries'].code)} AND e.attempts > 1"
            f" GROUP BY {country}"
        )
        for name, n, destinations in self.backend.fetch(retry_sql, q.args):
            group(str(name))["retries"] = (int(n), int(destinations))
        if reasons:
            reason_sql = (
                f"SELECT {country}, e.reason, count(*) FROM events e WHERE {q.where}"
                f" AND e.kind = {int(KINDS['errors'].code)} GROUP BY {country}, e.reason"
            )
            for name, reason, n in self.backend.fetch(reason_sql, q.args):
                merged = group(str(name))["reasons"]
                key = str(reason or "undefined")
                merged[key] = merged.get(key, 0) + int(n)
        out = {}
        for name, found in groups.items():
            out[name] = {
                "counts": {k.name: found["counts"].get(k.code, (0, 0)) for k in KINDS.values()},
                "retries": found["retries"],
                "reasons": dict(sorted(found["reasons"].items(), key=lambda i: (-i[1], i[0]))),
            }
        weight = {name: sum(t for t, _ in g["counts"].values()) for name, g in out.items()}
        return dict(sorted(out.items(), key=lambda i: (i[0] == "", -weight[i[0]], i[0])))

    def _scoped(self, scope: Scope, begin: int | None, end: int | None) -> ev.Query:
        """Every kind's events in scope and time range."""
        q = ev.Query(self.backend.placeholder, self.backend.like)
        q.add("e.account_id = ?", scope.account_id)
        if scope.emailing_id is not None:
            q.add("e.emailing_id = ?", scope.emailing_id)
        if scope.destination_id is not None:
            q.add("e.destination_id = ?", scope.destination_id)
        if begin is not None:
            q.add("e.ts >= ?", begin)
        if end is not None:
            q.add("e.ts <= ?", end)
        return q

    def error_reasons(self, scope: Scope, begin: int | None, end: int | None) -> dict[str, int]:
        """How many errors in scope and range have each reason, most first (then by name)."""
        q = ev.where(KINDS["errors"], scope, ev.Filter(begin, end), self.backend.placeholder,
                     self.backend.like)  # fmt: skip
        sql = f"SELECT e.reason, count(*) FROM events e WHERE {q.where} GROUP BY e.reason"
        counted = [(str(r or "undefined"), int(n)) for r, n in self.backend.fetch(sql, q.args)]
        merged: dict[str, int] = {}
        for name, n in counted:  # errors stored before reasons were kept count as undefined
            merged[name] = merged.get(name, 0) + n
        return dict(sorted(merged.items(), key=lambda item: (-item[1], item[0])))

    def destination_count(self, scope: Scope) -> int:
        if scope.destination_id is not None:
            return 1
        assert scope.emailing_id is not None
        return self.emailing(scope.account_id, scope.emailing_id).destinations

    # -- helpers -------------------------------------------------------------------------

    def _page(
        self,
        sql: str,
        count_sql: str,
        args: list[Any],
        start: int,
        limit: int,
        total: bool,
        make: Callable[[Row], T],
    ) -> Page[T]:
        mark = self.backend.placeholder
        rows: list[Any] = []
        if start >= 0 and limit > 0:
            rows = [
                make(r)
                for r in self.backend.fetch(
                    f"{sql} LIMIT {mark} OFFSET {mark}", [*args, limit, start]
                )
            ]
        count = int(self.backend.fetch(count_sql, args)[0][0]) if total else None
        return Page(rows, count)

    def destination_emailings(self, account_id: int, ids: set[int]) -> dict[int, int]:
        """Destination ID -> emailing ID, for those of `ids` that are the account's.

        One query for a whole bulk import, however many destinations it names.
        """
        wanted = [i for i in ids if 0 <= i < 2**63]  # no other number is a stored ID
        if not wanted:
            return {}
        params = {"ids": orjson.dumps(wanted).decode(), "account_id": account_id}
        rows = self.backend.fetch(self.q["destination_emailings"], params)
        return {int(dest): int(emailing) for dest, emailing in rows}


_VERDICT_KINDS = ", ".join(str(kind.code) for kind in KINDS.values() if kind.verdicts)


def _pick(kind: Kind, bots: str, sums: blocks.Sums) -> tuple[int, int | None]:
    """(total, unique) of a kind's sums for `bots`; unique None: not counted by flags."""
    n, firsts, settled, humans, hfirsts = sums
    if bots == "include" or not kind.verdicts:
        return (0, 0) if bots == "only" else (n, firsts)
    if bots == "exclude":
        return humans, hfirsts
    return settled - humans, None


def _now() -> int:
    return int(time.time())


def _emailing(row: Row) -> Emailing:
    id_, created, type_, subject, from_name, from_email, count, tags, html, text = row
    tags = orjson.loads(tags)
    return Emailing(id_, created, type_, subject, from_name, from_email, count, tags, html, text)


def _destination(row: Row) -> Destination:
    id_, emailing_id, created, email, profile, subprofile, fields, key = row
    fields = orjson.loads(fields)
    return Destination(id_, emailing_id, created, email, profile, subprofile, fields, key)
