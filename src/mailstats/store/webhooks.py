"""Webhook endpoints, their outbox and their delivery attempts, as plain data.

The derive step adds each new event's ID to the outbox of every endpoint that takes it
(sqlite_batch.OUTBOX, postgres._insert_sql), in the transaction that makes it visible. A
dispatcher leases one endpoint at a time, turns its oldest outbox rows into a batch with a
message ID (kept by every retry), and records each attempt here. The leases are rows in
`webhooks`, so any number of processes and nodes can share the work of one database.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mailstats.errors import InvalidParameter, NotFound
from mailstats.kinds import KINDS, Kind
from mailstats.store import events as ev
from mailstats.store.base import Backend, Page, Row

BOTS = ("include", "exclude")
# Attempts kept per endpoint for `deliveries`.
KEEP_ATTEMPTS = 1000
_BY_CODE = {kind.code: kind for kind in KINDS.values()}


def kinds_mask(names: Sequence[str]) -> int:
    mask = 0
    for name in names:
        kind = KINDS.get(name)
        if kind is None:
            raise InvalidParameter(f"Unknown kind {name!r}: use {', '.join(KINDS)}")
        mask |= 1 << kind.code
    return mask


def mask_kinds(mask: int) -> tuple[Kind, ...]:
    return tuple(kind for kind in KINDS.values() if mask >> kind.code & 1)


@dataclass(frozen=True)
class Webhook:
    id: int
    account_id: int
    url: str
    kinds: tuple[str, ...]
    bots: str
    created: int
    disabled_at: int | None
    failures: int  # failed attempts since the last success
    attempts: int  # of the batch in flight
    next_at: float  # no attempt before this
    delivered_id: int  # the highest event ID delivered
    pending: int  # events in the outbox

    @property
    def enabled(self) -> bool:
        return self.disabled_at is None


@dataclass(frozen=True)
class Delivery:
    """One attempt to deliver a batch."""

    id: int
    message_id: str
    attempt: int
    at: float
    events: int
    first_id: int | None
    last_id: int | None
    status: int | None  # None: no HTTP answer
    latency_ms: float
    error: str | None


@dataclass(frozen=True)
class Batch:
    """A leased endpoint's batch in flight: what a dispatcher sends next."""

    webhook_id: int
    url: str
    secret: str
    kinds: tuple[Kind, ...]
    timezone: str
    message_id: str
    attempt: int  # this attempt's number, from 1
    events: int
    first_id: int
    last_id: int
    bots: str = "include"  # "exclude": settled human events only (store.events.HUMAN_SETTLED)

    def __repr__(self) -> str:  # the secret never reaches a log line
        return f"Batch(webhook {self.webhook_id}, {self.message_id}, attempt {self.attempt})"


def _webhook(row: Row) -> Webhook:
    id_, account, url, kinds, bots, created, disabled, failures, attempts, next_at, done, n = row
    names = tuple(k.name for k in mask_kinds(int(kinds)))
    return Webhook(int(id_), int(account), url, names, bots, int(created),
                   None if disabled is None else int(disabled), int(failures), int(attempts),
                   float(next_at), int(done), int(n))  # fmt: skip


class Webhooks:
    """The webhook tables of one database."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.q = backend.queries

    def _one(self, sql: str, params: dict[str, Any]) -> Row | None:
        rows = self.backend.fetch(sql, params)
        return rows[0] if rows else None

    # -- endpoints -------------------------------------------------------------------------

    def create(self, account_id: int, url: str, kinds: Sequence[str], bots: str) -> tuple[int, str]:
        """A new endpoint; returns its ID and signing secret (`whsec_` + base64)."""
        if bots not in BOTS:
            raise InvalidParameter("Invalid value for parameter 'bots': use include or exclude")
        if not kinds:
            raise InvalidParameter("Parameter 'kinds' names no kind")
        secret = new_secret()
        with self.backend.transaction() as cur:
            cur.execute(self.q["webhook_insert"], {"account_id": account_id, "url": url,
                        "kinds": kinds_mask(kinds), "bots": bots, "secret": secret,
                        "now": int(time.time())})  # fmt: skip
            row = cur.fetchone()
        return int(row[0]), secret

    def all(self, account_id: int | None, start: int = 0, limit: int = 100) -> Page[Webhook]:
        mark = self.backend.placeholder
        where, args = (
            ("", []) if account_id is None else (f" WHERE w.account_id = {mark}", [account_id])
        )
        sql = self.q["webhook_select"].rstrip(";") + where
        rows = self.backend.fetch(f"{sql} ORDER BY w.id LIMIT {mark} OFFSET {mark}",
                                  [*args, max(0, limit), max(0, start)])  # fmt: skip
        total = self.backend.fetch(f"SELECT count(*) FROM webhooks w{where}", args)[0][0]
        return Page([_webhook(r) for r in rows], int(total))

    def get(self, account_id: int, webhook_id: int) -> Webhook:
        mark = self.backend.placeholder
        sql = self.q["webhook_select"].rstrip(";")
        rows = self.backend.fetch(f"{sql} WHERE w.id = {mark} AND w.account_id = {mark}",
                                  [webhook_id, account_id])  # fmt: skip
        if not rows:
            raise NotFound()
        return _webhook(rows[0])

    def remove(self, account_id: int, webhook_id: int) -> None:
        """The endpoint, its outbox and its attempts."""
        with self.backend.transaction() as cur:
            self._hold_derive(cur)
            cur.execute(self.q["webhook_delete"], {"id": webhook_id, "account_id": account_id})
            if cur.rowcount != 1:
                raise NotFound()
            cur.execute(self.q["webhook_delete_outbox"], {"id": webhook_id})
            cur.execute(self.q["webhook_delete_deliveries"], {"id": webhook_id})

    def _hold_derive(self, cur: Any) -> None:
        """On PostgreSQL, wait out a derive step that may still add to this outbox."""
        if self.backend.dialect == "postgres":
            from mailstats.store.postgres import EVENTS_LOCK

            cur.execute("SELECT pg_advisory_xact_lock(%s)", (EVENTS_LOCK,))

    def set_enabled(self, account_id: int, webhook_id: int, enabled: bool) -> Webhook:
        """Enable (its failures forgotten, the batch in flight retried now) or disable."""
        self.get(account_id, webhook_id)
        name = "webhook_enable" if enabled else "webhook_disable"
        with self.backend.transaction() as cur:
            cur.execute(self.q[name], {"id": webhook_id, "account_id": account_id,
                                       "now": int(time.time())})  # fmt: skip
        return self.get(account_id, webhook_id)

    def replay(self, account_id: int, webhook_id: int, since_id: int) -> int:
        """Queue again the endpoint's events with IDs above `since_id`; return how many
        were not waiting already."""
        self.get(account_id, webhook_id)
        with self.backend.transaction() as cur:
            cur.execute(self.q["webhook_replay"], {"id": webhook_id, "since_id": since_id})
            return max(0, cur.rowcount)

    def deliveries(
        self, account_id: int, webhook_id: int, start: int = 0, limit: int = 100
    ) -> Page[Delivery]:
        """Recent attempts, newest first."""
        self.get(account_id, webhook_id)
        args = {"id": webhook_id, "start": max(0, start), "limit": max(0, limit)}
        rows = self.backend.fetch(self.q["webhook_deliveries"], args)
        total = self.backend.fetch(self.q["webhook_deliveries_count"], args)[0][0]
        out = [
            Delivery(int(i), m, int(a), float(at), int(n), f, la, st, float(ms), err)
            for i, m, a, at, n, f, la, st, ms, err in rows
        ]
        return Page(out, int(total))

    # -- the dispatcher's side ---------------------------------------------------------------

    def due(self, now: float, limit: int) -> list[int]:
        """Enabled endpoints with events waiting, due now and leased by no one."""
        rows = self.backend.fetch(self.q["webhook_due"], {"now": now, "limit": limit})
        return [int(r[0]) for r in rows]

    def lease(
        self, webhook_id: int, owner: str, now: float, seconds: float, size: int
    ) -> Batch | None:
        """Lease the endpoint to `owner` until now + seconds and return its batch in flight
        (made of its oldest `size` waiting events if there was none); None if another owner
        holds it, it is not due, or nothing waits."""
        key = {"id": webhook_id, "owner": owner, "now": now, "until": now + seconds}
        with self.backend.transaction() as cur:
            cur.execute(self.q["webhook_lease"], key)
            if cur.rowcount != 1:
                return None
            cur.execute(self.q["webhook_leased"], key)
            url, secret, kinds, message_id, attempts, timezone, bots = cur.fetchone()
            if message_id is None:
                message_id = "msg_" + secrets.token_urlsafe(18)
                ids = {"id": webhook_id, "message_id": message_id, "owner": owner}
                take = "webhook_batch_take_settled" if bots == "exclude" else "webhook_batch_take"
                cur.execute(self.q[take], {**ids, "limit": size})
                cur.execute(self.q["webhook_batch_start"], ids)
            cur.execute(self.q["webhook_batch_span"], {"id": webhook_id, "message_id": message_id})
            count, first, last = cur.fetchone()
            if not count:
                cur.execute(self.q["webhook_batch_none"], key)
                return None
        return Batch(webhook_id, url, secret, mask_kinds(int(kinds)), timezone, message_id,
                     int(attempts) + 1, int(count), int(first), int(last), str(bots))  # fmt: skip

    def renew(self, webhook_id: int, owner: str, now: float, seconds: float) -> bool:
        """Extend a lease `owner` holds; False if it has lost it."""
        key = {"id": webhook_id, "owner": owner, "now": now, "until": now + seconds}
        with self.backend.transaction() as cur:
            cur.execute(self.q["webhook_lease"], key)
            return bool(cur.rowcount == 1)

    def release(self, webhook_id: int, owner: str) -> None:
        with self.backend.transaction() as cur:
            cur.execute(self.q["webhook_release"], {"id": webhook_id, "owner": owner})

    def batch_events(self, batch: Batch) -> list[tuple[Kind, Row]]:
        """The batch's events as list rows (fields in API order, as `GET ms/<kind>` reads
        them), in ID order. Read when sent, so an event erased meanwhile is left out.

        Every condition on which events are pushed belongs here: with `bots=exclude` the
        machine events of the batch are left out (its events are all settled: see
        `webhook_batch_take_settled`), as `GET ms/<kind>?bots=exclude` leaves them out."""
        mark = self.backend.placeholder
        people = f" AND {ev.HUMAN_SETTLED}" if batch.bots == "exclude" else ""
        found: list[tuple[int, Kind, Row]] = []
        for kind in batch.kinds:
            select = ", ".join(ev.select_expressions(kind).values())
            sql = (
                f"SELECT {select} FROM events e{ev.joins(kind, select)}"
                f" WHERE e.kind = {mark}{people} AND e.id IN (SELECT o.event_id"
                f" FROM webhook_outbox o WHERE o.webhook_id = {mark} AND o.message_id = {mark})"
            )
            rows = self.backend.fetch(sql, [kind.code, batch.webhook_id, batch.message_id])
            found.extend((int(row[0]), kind, row) for row in rows)
        found.sort(key=lambda item: item[0])
        return [(kind, row) for _, kind, row in found]

    def attempted(
        self,
        batch: Batch,
        owner: str,
        *,
        ok: bool,
        status: int | None,
        latency_ms: float,
        error: str | None,
        next_at: float,
        disable_after: int,
    ) -> bool:
        """Record an attempt: one that is `ok` takes the batch off the outbox, any other
        schedules the next attempt at `next_at` (and disables the endpoint after
        `disable_after` failures in a row). False if the lease was lost meanwhile."""
        key = {"id": batch.webhook_id, "owner": owner, "message_id": batch.message_id}
        now = time.time()
        with self.backend.transaction() as cur:
            if ok:
                cur.execute(self.q["webhook_succeeded"], {**key, "last_id": batch.last_id})
            else:
                cur.execute(self.q["webhook_failed"], {**key, "next_at": next_at, "now": int(now),
                            "disable_after": disable_after})  # fmt: skip
            if cur.rowcount != 1:
                return False
            if ok:
                cur.execute(self.q["webhook_batch_done"], key)
            cur.execute(self.q["webhook_attempt"], {**key, "attempt": batch.attempt, "at": now,
                        "events": batch.events, "first_id": batch.first_id,
                        "last_id": batch.last_id, "status": status, "latency_ms": latency_ms,
                        "error": error})  # fmt: skip
            cur.execute(self.q["webhook_attempts_trim"], {"id": batch.webhook_id,
                                                          "keep": KEEP_ATTEMPTS - 1})  # fmt: skip
        return True


def new_secret() -> str:
    """A Standard Webhooks signing secret: `whsec_` and 32 random bytes in base64."""
    import base64

    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
