"""A bounce mailbox watched over IMAP: every message that arrives is read into events.

Messages are fetched without marking them read. A message that was taken (its events are
stored, or were stored before) is moved to the taken folder; anything else (not a bounce,
unmatched, unreadable) stays where it is, marked with a keyword so it is read only once,
for a person to look at. Nothing is deleted unread. Between rounds the watcher waits in
IDLE where the server offers it (RFC 2177, renewed well within its 29 minutes), else polls.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from imapclient import IMAPClient

from mailstats import ingest
from mailstats.errors import MailstatsError
from mailstats.settings import Secret
from mailstats.store import Account, Store

log = logging.getLogger("mailstats.imap")

# Keywords (RFC 3501 flags without a backslash) for the messages left in the folder.
SKIPPED = {
    "not a bounce": b"$MailstatsNotABounce",
    "unmatched": b"$MailstatsUnmatched",
    "unreadable": b"$MailstatsUnreadable",
}
BATCH = 50
IDLE_RENEW = 25 * 60  # seconds; servers may end an IDLE after 29 minutes


@dataclass(frozen=True)
class Mailbox:
    """Where the bounces arrive and how to reach it."""

    host: str
    user: str
    password: Secret
    port: int = 993
    tls: str = "imaps"  # "imaps" (TLS from the start) or "starttls"
    ca_file: str | None = None  # trust these certificates instead of the system's
    folder: str = "INBOX"
    taken_folder: str = "mailstats-taken"
    poll: float = 60.0  # seconds between rounds where the server has no IDLE


def connect(box: Mailbox) -> IMAPClient:
    """A logged-in connection over TLS, the folder selected; the taken folder made."""
    context = ssl.create_default_context(cafile=box.ca_file)
    if box.tls == "imaps":
        client = IMAPClient(box.host, port=box.port, ssl=True, ssl_context=context, timeout=60)
    elif box.tls == "starttls":
        client = IMAPClient(box.host, port=box.port, ssl=False, timeout=60)
    else:
        raise ValueError(f"tls must be imaps or starttls, not {box.tls!r}")
    try:
        if box.tls == "starttls":
            client.starttls(context)
        client.login(box.user, box.password.reveal())
        if not client.folder_exists(box.taken_folder):
            client.create_folder(box.taken_folder)
        client.select_folder(box.folder)
    except BaseException:
        client.shutdown()  # a refused login must not leave the connection open
        raise
    return client


def take_new(
    client: IMAPClient,
    store: Store,
    account: Account,
    box: Mailbox,
    tally: Counter[str],
    said: Callable[[str], None] = log.info,
) -> int:
    """Read every message not read before; return how many there were."""
    uids = _unread(client)
    for start in range(0, len(uids), BATCH):
        batch = uids[start : start + BATCH]
        fetched = client.fetch(batch, ["BODY.PEEK[]"])
        taken: list[int] = []
        skipped: dict[str, list[int]] = {k: [] for k in SKIPPED}
        for uid in batch:
            raw = fetched.get(uid, {}).get(b"BODY[]")
            outcome = _one(store, account, raw if isinstance(raw, bytes) else b"", said, uid)
            tally[outcome] += 1
            (taken if outcome == "taken" else skipped[outcome]).append(uid)
        for outcome, marked in skipped.items():
            if marked:
                client.add_flags(marked, [SKIPPED[outcome]])
        if taken:
            _move(client, taken, box.taken_folder)
    return len(uids)


def _unread(client: IMAPClient) -> list[int]:
    """The folder's messages that were not read before."""
    criteria: list[Any] = ["UNDELETED"]
    for keyword in SKIPPED.values():
        criteria += ["UNKEYWORD", keyword]
    return sorted(client.search(criteria))


def _one(store: Store, account: Account, raw: bytes, said: Callable[[str], None], uid: int) -> str:
    try:
        taken = ingest.ingest_report(store, account, raw)
    except ingest.Unmatched as exc:
        said(f"UID {uid}: {exc.message}")
        return "unmatched"
    except MailstatsError as exc:
        said(f"UID {uid}: {exc.message}")
        return "unreadable"
    if taken.not_a_bounce:
        said(f"UID {uid}: not a bounce: {taken.not_a_bounce}")
        return "not a bounce"
    said(f"UID {uid}: {taken.stored} event(s)")
    return "taken"


def _move(client: IMAPClient, uids: list[int], folder: str) -> None:
    """MOVE where the server has it (RFC 6851); else copy, then remove only these messages
    (UID EXPUNGE, RFC 4315), or leave them marked deleted for the server's own cleanup."""
    if client.has_capability("MOVE"):
        client.move(uids, folder)
        return
    client.copy(uids, folder)
    client.add_flags(uids, [b"\\Deleted"])
    if client.has_capability("UIDPLUS"):
        client.uid_expunge(uids)


def wait(client: IMAPClient, box: Mailbox, stop: threading.Event) -> None:
    """Until something arrives (IDLE), or `poll` seconds pass, or `stop` is set."""
    if not client.has_capability("IDLE"):
        stop.wait(box.poll)
        return
    # A message that came in while the last round ran was announced then, not in IDLE:
    # NOOP takes every announcement so far, the search finds what they announced, and
    # whatever arrives after that is announced in IDLE.
    client.noop()
    if _unread(client):
        return
    client.idle()
    try:
        started = time.monotonic()
        while not stop.is_set() and time.monotonic() - started < IDLE_RENEW:
            responses = client.idle_check(timeout=1)
            if any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses):
                return
    finally:
        client.idle_done()


def watch(
    store: Store,
    account: Account,
    box: Mailbox,
    *,
    once: bool = False,
    stop: threading.Event | None = None,
    said: Callable[[str], None] = log.info,
) -> Counter[str]:
    """Take what is in the folder, then (unless `once`) wait for more until `stop` is set.

    A lost connection is made again after a pause; a database failure ends the watch with
    the message it was reading left unread where it was.
    """
    stop = stop or threading.Event()
    tally: Counter[str] = Counter()
    pause = 1.0
    while True:
        try:
            client = connect(box)
        except (OSError, IMAPClient.Error) as exc:
            if once:
                raise
            said(f"cannot reach {box.host}:{box.port}: {exc}; trying again in {pause:.0f}s")
            if stop.wait(pause):
                return tally
            pause = min(pause * 2, 60.0)
            continue
        pause = 1.0
        try:
            while True:
                take_new(client, store, account, box, tally, said)
                if once or stop.is_set():
                    return tally
                wait(client, box, stop)
        except (OSError, IMAPClient.AbortError) as exc:
            said(f"connection to {box.host} lost: {exc}")
            if once:
                raise
        finally:
            with contextlib.suppress(Exception):  # already gone: nothing to close
                client.logout()
