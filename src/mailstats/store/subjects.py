"""Data subjects: everything stored about an address (access), and its erasure.

Erasure clears the personal fields of every destination with the address in one account
(the address, profile, subprofile and fields; the IP address and user agent of its events;
the address where an error's description or a complaint quotes it) and leaves every event,
flag and counter in place, so every list, total and statistic stays what it was. The audit
log keeps a keyed hash of the address, never the address, so a repeated request is matched.
Retention clears destinations the same way once all their events are past their age.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from mailstats.kinds import ABUSES, ERRORS, KINDS
from mailstats.serialize import item_maker
from mailstats.store import suppressions
from mailstats.store.base import Destination, Row, Scope
from mailstats.store.core import Store, _destination
from mailstats.store.events import Filter
from mailstats.timefmt import format_time

__all__ = ["Receipt", "access", "clear_past", "document", "erase", "subject_hash"]

ERASED = "[erased]"  # what stands where an error or a complaint quoted the address
_CHUNK = 500  # destinations per statement
_DEST_COLUMNS = "id, emailing_id, created_at, email, profile, subprofile, fields, message_key"


@dataclass(frozen=True)
class Receipt:
    """What an erasure did. `previous`: when the same address was erased before."""

    subject: str  # the keyed hash the audit log keeps
    destinations: int
    events: int
    suppressions: int
    previous: list[int]
    erased_at: int

    def as_json(self, tz: ZoneInfo) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "destinations": self.destinations,
            "events": self.events,
            "suppressions": self.suppressions,
            "timestamp": format_time(self.erased_at, tz),
            "previous": [format_time(ts, tz) for ts in self.previous],
        }


def _key(store: Store) -> bytes:
    """The audit log's hash key, made once per database and kept in meta."""
    store._write("meta_put_new", {"key": "subject_key", "value": secrets.token_hex(32)})
    row = store._one("meta_get", {"key": "subject_key"})
    assert row is not None
    return bytes.fromhex(row[0])


def subject_hash(store: Store, email: str) -> str:
    """The keyed hash (HMAC-SHA256) of an address, whatever its case."""
    return hmac.new(_key(store), email.strip().lower().encode(), hashlib.sha256).hexdigest()


def _marks(store: Store, n: int) -> str:
    return ", ".join(store.backend.placeholder for _ in range(n))


def _matching(store: Store, account_id: int, email: str) -> list[Row]:
    mark = store.backend.placeholder
    return store.backend.fetch(
        f"SELECT {_DEST_COLUMNS} FROM destinations WHERE account_id = {mark}"
        f" AND lower(email) = lower({mark}) AND email <> '' ORDER BY id",
        [account_id, email.strip()],
    )


def erase(store: Store, account_id: int, email: str, *, via: str = "api",
          now: int | None = None) -> Receipt:  # fmt: skip
    """Clear the address's personal data in the account; the same call again clears nothing
    more and says when it was done before."""
    now = int(time.time()) if now is None else now
    subject = subject_hash(store, email)
    b, mark = store.backend, store.backend.placeholder
    rows = _matching(store, account_id, email)
    with b.transaction() as cur:
        events = 0
        for at in range(0, len(rows), _CHUNK):
            events += _clear(store, cur, rows[at : at + _CHUNK], now)
        cur.execute(
            f"DELETE FROM suppression_marks WHERE account_id = {mark} AND email = {mark}",
            [account_id, suppressions.normal(email.strip())],
        )
        marks = max(0, cur.rowcount)
        cur.execute(
            f"SELECT erased_at FROM erasures WHERE account_id = {mark} AND subject = {mark}"
            " ORDER BY id",
            [account_id, subject],
        )
        previous = [int(r[0]) for r in cur.fetchall()]
        cur.execute(
            "INSERT INTO erasures (account_id, subject, erased_at, destinations, events, via)"
            f" VALUES ({_marks(store, 6)})",
            [account_id, subject, now, len(rows), events, via],
        )
    return Receipt(subject, len(rows), events, marks, previous, now)


def _clear(store: Store, cur: Any, rows: Sequence[Row], now: int) -> int:
    """Clear these destinations (rows as _DEST_COLUMNS) and their events; return how many
    events they have."""
    if not rows:
        return 0
    ids = [int(r[0]) for r in rows]
    marks = _marks(store, len(ids))
    mark = store.backend.placeholder
    cur.execute(f"SELECT count(*) FROM events WHERE destination_id IN ({marks})", ids)
    events = int(cur.fetchone()[0])
    cur.execute(
        f"UPDATE events SET ip = NULL, useragent = NULL WHERE destination_id IN ({marks})"
        " AND (ip IS NOT NULL OR useragent IS NOT NULL)",
        ids,
    )
    emails = sorted({str(r[3]) for r in rows if r[3]}, key=len, reverse=True)
    if emails:
        quoted = re.compile("|".join(re.escape(e) for e in emails), re.IGNORECASE)
        cur.execute(
            f"SELECT id, ts, description, report FROM events WHERE destination_id IN ({marks})"
            f" AND kind IN ({ERRORS.code}, {ABUSES.code})",
            ids,
        )
        for event_id, ts, description, report in cur.fetchall():
            text = [
                quoted.sub(ERASED, v) if isinstance(v, str) else v for v in (description, report)
            ]
            if text != [description, report]:
                cur.execute(
                    f"UPDATE events SET description = {mark}, report = {mark}"
                    f" WHERE id = {mark} AND ts = {mark}",
                    [*text, event_id, ts],
                )
    cur.execute(
        f"UPDATE destinations SET email = '', profile = NULL, subprofile = NULL, fields = '{{}}',"
        f" cleared_at = {mark} WHERE id IN ({marks})",
        [now, *ids],
    )
    return events


def clear_past(store: Store, account_id: int, cutoffs: dict[int, int], batch: int = _CHUNK,
               now: int | None = None) -> int:  # fmt: skip
    """Retention: clear the account's destinations whose events are all older than their
    kind's cutoff (kind code -> epoch; a kind not named keeps its destinations), or that
    have none and were made before the earliest cutoff; `batch` destinations per
    transaction. Return how many."""
    if not cutoffs:
        return 0
    now = int(time.time()) if now is None else now
    b, mark = store.backend, store.backend.placeholder
    past = " OR ".join(f"(e.kind = {code} AND e.ts < {mark})" for code in cutoffs)
    sql = (
        f"SELECT {', '.join('d.' + c for c in _DEST_COLUMNS.split(', '))} FROM destinations d"
        f" WHERE d.account_id = {mark} AND d.cleared_at IS NULL AND d.id > {mark}"
        f" AND (d.created_at < {mark} OR EXISTS (SELECT 1 FROM events e"
        " WHERE e.destination_id = d.id)) AND NOT EXISTS (SELECT 1 FROM events e"
        f" WHERE e.destination_id = d.id AND NOT ({past})) ORDER BY d.id LIMIT {int(batch)}"
    )
    cleared, last = 0, 0
    while True:
        rows = b.fetch(sql, [account_id, last, min(cutoffs.values()), *cutoffs.values()])
        if not rows:
            return cleared
        with b.transaction() as cur:
            _clear(store, cur, rows, now)
        cleared += len(rows)
        last = int(rows[-1][0])
        if len(rows) < batch:
            return cleared


@dataclass(frozen=True)
class Subject:
    """Everything stored about one address in one account."""

    email: str
    destinations: list[Destination]
    events: dict[int, dict[str, list[Row]]]  # destination -> kind -> rows (extended fields)
    suppressions: list[suppressions.Suppression]
    erasures: list[Row]  # (erased_at, destinations, events)


def access(store: Store, account_id: int, email: str) -> Subject:
    """Every stored item about `email` in the account (empty lists: nothing is kept)."""
    dests = [_destination(row) for row in _matching(store, account_id, email)]
    events: dict[int, dict[str, list[Row]]] = {}
    for d in dests:
        scope = Scope(account_id, destination_id=d.id)
        events[d.id] = {
            name: list(store.stream_events(kind.extended(), scope, Filter()))
            for name, kind in KINDS.items()
        }
    mark = store.backend.placeholder
    erasures = store.backend.fetch(
        f"SELECT erased_at, destinations, events FROM erasures WHERE account_id = {mark}"
        f" AND subject = {mark} ORDER BY id",
        [account_id, subject_hash(store, email)],
    )
    listed = suppressions.check(store, account_id, email.strip())
    return Subject(email.strip(), dests, events, listed, erasures)


def document(subject: Subject, tz: ZoneInfo) -> dict[str, Any]:
    """The subject access answer: one JSON document, times in the account's zone."""
    makers = {name: item_maker(kind.extended(), tz) for name, kind in KINDS.items()}
    return {
        "email": subject.email,
        "destinations": [
            {
                "ID": str(d.id),
                "messageID": d.message_key,
                "mailing": str(d.emailing_id),
                "timestampsent": format_time(d.created_at, tz),
                "email": d.email,
                "profile": d.profile,
                "subprofile": d.subprofile,
                "fields": d.fields,
                **{
                    name: [makers[name](row) for row in rows]
                    for name, rows in subject.events[d.id].items()
                },
            }
            for d in subject.destinations
        ],
        "suppressions": [
            {
                "reason": s.reason,
                "timestamp": format_time(s.ts, tz),
                "destination": None if s.destination_id is None else str(s.destination_id),
            }
            for s in subject.suppressions
        ],
        "erasures": [
            {"timestamp": format_time(int(ts), tz), "destinations": int(n), "events": int(e)}
            for ts, n, e in subject.erasures
        ],
    }
