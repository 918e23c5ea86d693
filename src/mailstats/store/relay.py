"""What the SMTP relay keeps: the emailing each key names, the links found in messages, and one
destination per copy sent, keyed so that a sender's retry finds the same one again."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from mailstats.store.base import Destination
from mailstats.store.core import Store, _destination

__all__ = [
    "copies",
    "copy_key",
    "create_emailing",
    "drop_destination",
    "emailing_for_key",
    "position",
    "save_position",
]


def copy_key(account_id: int, message_id: str | None, recipient: str) -> str:
    """The message key of one copy: the same Message-ID and recipient give the same key.

    A message without a Message-ID cannot be recognised when sent again: its key is random.
    It has the shape of the keys the API makes ("ms" and 20 URL-safe characters).
    """
    if not message_id:
        return "ms" + secrets.token_urlsafe(15)
    seed = f"relay\0{account_id}\0{message_id}\0{recipient}".encode("utf-8", "surrogatepass")
    digest = hashlib.sha256(seed).digest()[:15]
    return "ms" + base64.urlsafe_b64encode(digest).decode()


def emailing_for_key(store: Store, account_id: int, key: str) -> int | None:
    rows = store.backend.fetch(
        store.q["relay_emailing_get"], {"account_id": account_id, "key": key}
    )
    return int(rows[0][0]) if rows else None


def create_emailing(
    store: Store,
    account_id: int,
    key: str,
    *,
    subject: str,
    from_name: str,
    from_email: str,
    html: str,
    links: list[tuple[int, int, str]],
) -> int:
    """The emailing of `key`: a new one, its template the first message's HTML.

    Relay processes may make one for the same key at once: the first to name it in
    relay_emailings keeps it, the others drop theirs and take that one.
    """
    emailing_id = store.create_emailing(
        account_id,
        subject=subject,
        from_name=from_name,
        from_email=from_email,
        html=html,
        text=None,
        tags=["relay"],
        type="mass",
        links=links,
    )
    with store.backend.transaction() as cur:
        cur.execute(
            store.q["relay_emailing_insert"],
            {"account_id": account_id, "key": key, "emailing_id": emailing_id},
        )
        if cur.fetchone() is not None:
            return emailing_id
        for name in ("relay_links_delete", "relay_emailing_drop"):
            cur.execute(store.q[name], {"emailing_id": emailing_id})
    found = emailing_for_key(store, account_id, key)
    assert found is not None
    return found


def copies(
    store: Store,
    account_id: int,
    emailing_id: int,
    urls: Iterable[str],
    known: dict[str, int],
    recipients: Sequence[tuple[str, str]],
) -> list[tuple[Destination, bool]]:
    """One message's links and destinations, in one transaction.

    Fills `known` (url -> link ID, the caller's cache of the emailing's links; read from
    the database when empty) with every URL, adding the links the emailing lacks, and
    answers the destination of each (email, message key), True where this call made it.
    """
    if not known:
        rows = store.backend.fetch(store.q["relay_links"], {"emailing_id": emailing_id})
        for url, link_id in rows:
            known.setdefault(str(url), int(link_id))
    missing = [url for url in dict.fromkeys(urls) if url not in known]
    added: dict[str, int] = {}
    out = []
    now = int(time.time())
    with store.backend.transaction() as cur:
        for at in range(0, len(missing), 500):
            cur.execute(*_links_insert(store, emailing_id, missing[at : at + 500]))
            added.update((str(url), int(link_id)) for link_id, url in cur.fetchall())
        made = 0
        for email, key in recipients:
            params = {"account_id": account_id, "emailing_id": emailing_id, "created_at": now,
                      "email": email, "message_key": key}  # fmt: skip
            cur.execute(store.q["relay_destination_insert"], params)
            row = cur.fetchone()
            new = row is not None
            if not new:  # a sender's retry: the destination of the first try
                by_key = {"message_key": key, "account_id": account_id}
                cur.execute(store.q["relay_destination_by_key"], by_key)
                row = cur.fetchone()
            made += new
            out.append((_destination(row), new))
        if made:
            cur.execute(store.q["emailing_count_destinations"], {"n": made, "id": emailing_id})
    known.update(added)  # only once committed
    return out


def _links_insert(store: Store, emailing_id: int, urls: list[str]) -> tuple[str, list[Any]]:
    """One INSERT for new links of a message (start -1: they have no place in the template)."""
    mark = store.backend.placeholder
    rows = ", ".join(f"({mark}, -1, -1, {mark})" for _ in urls)
    args = [value for url in urls for value in (emailing_id, url)]
    sql = f"INSERT INTO links (emailing_id, start, stop, url) VALUES {rows} RETURNING id, url"
    return sql, args


def drop_destination(store: Store, dest: Destination, emailing_made: bool) -> None:
    """Undo a destination made for a copy the next hop did not take (it has no events).

    With `emailing_made`, the emailing made for this message goes too once it is empty, so
    a message that went nowhere leaves nothing behind.
    """
    with store.backend.transaction() as cur:
        cur.execute(store.q["relay_destination_delete"], {"id": dest.id})
        if cur.rowcount:
            cur.execute(store.q["emailing_count_destinations"], {"n": -1, "id": dest.emailing_id})
        if emailing_made:
            cur.execute(store.q["relay_emailing_used"], {"id": dest.emailing_id})
            if cur.fetchone() is None:
                for name in ("relay_links_delete", "relay_emailing_delete", "relay_emailing_drop"):
                    cur.execute(store.q[name], {"emailing_id": dest.emailing_id})


def position(store: Store, name: str) -> dict[str, Any] | None:
    """Where reading the log `name` stopped, as `save_position` kept it."""
    rows = store.backend.fetch(store.q["meta_get"], {"key": f"maillog:{name}"})
    return dict(orjson.loads(rows[0][0])) if rows else None


def save_position(store: Store, name: str, value: dict[str, Any]) -> None:
    with store.backend.transaction() as cur:
        params = {"key": f"maillog:{name}", "value": orjson.dumps(value).decode()}
        cur.execute(store.q["meta_put"], params)
