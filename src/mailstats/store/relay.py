"""What the SMTP relay keeps: the emailing each key names, the links found in messages, and one
destination per copy sent, keyed so that a sender's retry finds the same one again."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Iterable
from typing import Any

import orjson

from mailstats.store.base import Destination
from mailstats.store.core import Store, _destination

__all__ = [
    "copy_key",
    "create_emailing",
    "destination",
    "drop_destination",
    "emailing_for_key",
    "link_ids",
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
    """A new emailing for `key`, its template the first message's HTML.

    The caller serialises creation per key (the relay holds a lock), so the key is new here.
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
    return emailing_id


def link_ids(store: Store, emailing_id: int, urls: Iterable[str], known: dict[str, int]) -> None:
    """Fill `known` (url -> link ID) for every URL, adding links the emailing lacks.

    `known` is the caller's cache of the emailing's links; it is read from the database
    when empty, so a fresh cache sees the links other processes added.
    """
    if not known:
        rows = store.backend.fetch(store.q["relay_links"], {"emailing_id": emailing_id})
        for url, link_id in rows:
            known.setdefault(str(url), int(link_id))
    missing = [url for url in dict.fromkeys(urls) if url not in known]
    if not missing:
        return
    with store.backend.transaction() as cur:
        for url in missing:
            cur.execute(store.q["relay_link_insert"], {"emailing_id": emailing_id, "url": url})
            known[url] = int(cur.fetchone()[0])


def destination(
    store: Store, account_id: int, emailing_id: int, email: str, message_key: str
) -> tuple[Destination, bool]:
    """The destination of one copy, made if new; True when this call made it."""
    params = {
        "account_id": account_id,
        "emailing_id": emailing_id,
        "created_at": int(time.time()),
        "email": email,
        "message_key": message_key,
    }
    with store.backend.transaction() as cur:
        cur.execute(store.q["relay_destination_insert"], params)
        made = cur.fetchone()
        if made is not None:
            cur.execute(store.q["emailing_count_destinations"], {"n": 1, "id": emailing_id})
        cur.execute(
            store.q["relay_destination_by_key"],
            {"message_key": message_key, "account_id": account_id},
        )
        row = cur.fetchone()
    return _destination(row), made is not None


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
