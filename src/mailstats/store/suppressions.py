"""The suppression list: addresses the relay refuses, and why.

Entries are computed from stored events (errors of errortype `hard`, abuses, unsubscribes)
whenever they are asked for, so the list is right however and whenever those events
arrive; the `suppression_marks` table only adds addresses by hand and clears an address
(its events up to the moment it was cleared no longer count).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from mailstats.kinds import ABUSES, ERRORS, UNSUBSCRIBES
from mailstats.store.core import Store

__all__ = ["REASONS", "Suppression", "add", "check", "list_all", "normal", "remove"]

# Why an address is suppressed, strongest first: the first three refuse every message, an
# unsubscribe refuses all but transactional ones.
REASONS = {ERRORS.code: "bounce", ABUSES.code: "complaint", UNSUBSCRIBES.code: "unsubscribe"}
_ORDER = ("bounce", "complaint", "manual", "unsubscribe")
_KINDS = {"errors": ERRORS.code, "abuses": ABUSES.code, "unsubscribes": UNSUBSCRIBES.code}
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True)
class Suppression:
    email: str
    reason: str  # bounce, complaint, manual or unsubscribe
    ts: int
    destination_id: int | None  # the destination whose event it was; None when manual

    @property
    def always(self) -> bool:
        """True when even a transactional message is refused."""
        return self.reason != "unsubscribe"


def normal(email: str) -> str:
    """The address as the list compares it: ASCII letters lowercased, as the database does."""
    return email.translate(_ASCII_LOWER)


def check(store: Store, account_id: int, email: str) -> list[Suppression]:
    """Every reason that suppresses `email` now, strongest first (empty: not suppressed)."""
    key = normal(email)
    q = store.q
    rows = store.backend.fetch(
        q["suppression_events_for"], {"account_id": account_id, "email": key, **_KINDS}
    )
    marks = store.backend.fetch(q["suppression_mark_get"], {"account_id": account_id, "email": key})
    entries = _entries([(key, *row) for row in rows], marks)
    return entries.get(key, [])


def list_all(store: Store, account_id: int) -> list[Suppression]:
    """The account's list: one entry per address (its strongest reason), by time then address."""
    b, q = store.backend, store.q
    rows = b.fetch(q["suppression_events"], {"account_id": account_id, **_KINDS})
    marks = b.fetch(q["suppression_marks"], {"account_id": account_id})
    found = [reasons[0] for reasons in _entries(rows, marks).values()]
    return sorted(found, key=lambda s: (s.ts, s.email))


def add(store: Store, account_id: int, email: str) -> None:
    """Put an address on the list by hand."""
    with store.backend.transaction() as cur:
        params = {"account_id": account_id, "email": normal(email), "now": int(time.time())}
        cur.execute(store.q["suppression_mark_add"], params)


def remove(store: Store, account_id: int, email: str) -> bool:
    """Take an address off the list; False when it was not on it (nothing is changed then).

    Its events so far no longer count; a later bounce, complaint or unsubscribe puts it
    back on.
    """
    if not check(store, account_id, email):
        return False
    now = int(time.time())
    with store.backend.transaction() as cur:
        params = {"account_id": account_id, "email": normal(email), "now": now}
        cur.execute(store.q["suppression_mark_clear"], params)
    return True


def _entries(
    rows: list[tuple[str, int, int, int]], marks: list[tuple[str, int | None, int | None]]
) -> dict[str, list[Suppression]]:
    """Reasons per address from (email, kind, ts, destination) rows and the marks."""
    cleared = {str(email): int(at) for email, _, at in marks if at is not None}
    latest: dict[tuple[str, str], Suppression] = {}
    for email, kind, ts, dest in rows:
        email, ts = str(email), int(ts)
        if ts <= cleared.get(email, -1):
            continue  # before the address was taken off the list
        reason = REASONS[int(kind)]
        old = latest.get((email, reason))
        if old is None or ts > old.ts:
            latest[(email, reason)] = Suppression(email, reason, ts, int(dest))
    for email, added, _ in marks:
        if added is not None:
            latest[(str(email), "manual")] = Suppression(str(email), "manual", int(added), None)
    out: dict[str, list[Suppression]] = {}
    for (email, _), entry in latest.items():
        out.setdefault(email, []).append(entry)
    for reasons in out.values():
        reasons.sort(key=lambda s: _ORDER.index(s.reason))
    return out
