"""/c, /o and /u: the tracking endpoints, as plain ASGI handlers on the lean path.

No framework layers: verify the signed token, find the link (cached), hand the event to the
group-commit writer of the capture log, and answer once it is durable.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import itertools
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

from starlette.types import Receive, Scope, Send

from mailstats.kinds import CLICKS, IMPRESSIONS, UNSUBSCRIBES, Kind
from mailstats.store import Event
from mailstats.store.base import unavailable
from mailstats.tracking.devices import hit_values
from mailstats.tracking.render import personalise
from mailstats.tracking.tokens import Purpose
from mailstats.verdicts import HEAD
from mailstats.web import access
from mailstats.web.context import State

GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_NO_CACHE = [
    (b"cache-control", b"no-store, no-cache, must-revalidate, max-age=0"),
    (b"pragma", b"no-cache"),
    (b"expires", b"0"),
]
_URL_SAFE = "/:?#[]@!$&'()*+,;=%~-._"
_CACHE_LIMIT = 100_000
# the Allow header of each handler -> the methods it takes (parsed once, not per request)
_METHODS = {
    allow: frozenset(allow.decode().split(", ")) for allow in (b"GET, HEAD", b"GET, HEAD, POST")
}
_MAX_UA = 1024
RETRY_AFTER = b"5"  # seconds a visitor waits when the database is unreachable
_REDIRECT = [(b"content-length", b"0"), *_NO_CACHE]  # a 302's headers after the location
# Headers by which browsers and previewers say a request is a prefetch, not a visit.
_PREFETCH = frozenset({b"purpose", b"sec-purpose", b"x-purpose", b"x-moz"})
_TRAP_PAGE = b"<!doctype html><title></title>"


class EventKeys:
    """Unique event keys without a system call each: a random prefix, then a counter.

    80 random bits per process (drawn again in a forked child, and when the 48-bit counter
    runs out) keep keys apart across processes and restarts; the database stores each key
    once, so a collision would drop a click.

    >>> keys = EventKeys()
    >>> a, b = keys(), keys()
    >>> len(a), a[:10] == b[:10], a != b
    (16, True, True)
    """

    __slots__ = ("_state",)

    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        self._state = (os.urandom(10), itertools.count())

    def __call__(self) -> bytes:
        prefix, count = self._state  # one read: a concurrent reseed swaps both at once
        n = next(count)
        if n >> 48:
            self.reseed()
            return self()
        return prefix + n.to_bytes(6, "big")


new_key = EventKeys()
os.register_at_fork(after_in_child=new_key.reseed)

T = TypeVar("T")
_Call = tuple[asyncio.Future[Any], Callable[..., Any], tuple[Any, ...]]


class Lookups:
    """Blocking store lookups off the event loop, for the cache misses of the tracking paths.

    Most clicks name a destination seen for the first time, so this is the common path. A
    few threads each take up to `take` waiting calls at once and wake the loop once for
    all of them: a fraction of the cost of a thread hand-off per call. Several threads
    keep a database with network round trips busy in parallel.
    """

    def __init__(self, threads: int = 4, take: int = 16) -> None:
        self._size = threads
        self._take = take
        self._wake = threading.Condition(threading.Lock())
        self._waiting: list[_Call] = []
        self._threads: list[threading.Thread] = []

    async def call(self, func: Callable[..., T], *args: Any) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        with self._wake:
            if not self._threads:
                self._start()
            self._waiting.append((future, func, args))
            self._wake.notify()
        return await future

    def _start(self) -> None:
        for n in range(self._size):
            thread = threading.Thread(target=self._run, name=f"mailstats-lookup-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._waiting:
                    self._wake.wait()
                calls, self._waiting = self._waiting[: self._take], self._waiting[self._take :]
                if self._waiting:
                    self._wake.notify()  # more than one take: another thread helps
            done: dict[asyncio.AbstractEventLoop, list[tuple[Any, ...]]] = {}
            for future, func, args in calls:
                try:
                    outcome: tuple[Any, ...] = (future, func(*args), None)
                except Exception as exc:
                    outcome = (future, None, exc)
                done.setdefault(future.get_loop(), []).append(outcome)
            for loop, outcomes in done.items():
                with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits
                    loop.call_soon_threadsafe(_resolve, outcomes)

    def forget_threads(self) -> None:
        """In a forked child: the parent's threads do not exist here."""
        self._threads = []
        self._waiting = []
        self._wake = threading.Condition(threading.Lock())


def _resolve(outcomes: list[tuple[Any, ...]]) -> None:
    for future, result, error in outcomes:
        if future.done():
            continue  # its request was cancelled
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)


_LOOKUPS = Lookups()
os.register_at_fork(after_in_child=_LOOKUPS.forget_threads)


async def _plain(
    scope: Scope,
    send: Send,
    status: int,
    text: str,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """A refusal in plain text; refusals (not answered hits) go to the access log."""
    access.line(scope, status)
    body = text.encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send(
        {"type": "http.response.start", "status": status, "headers": headers + (extra or [])}
    )
    await send({"type": "http.response.body", "body": body})


def _head(scope: Scope) -> int:
    """verdicts.HEAD for a HEAD request or a prefetch, else 0."""
    if scope["method"] == "HEAD":
        return HEAD
    for key, value in scope["headers"]:
        if key in _PREFETCH and (b"prefetch" in value.lower() or b"preview" in value.lower()):
            return HEAD
    return 0


async def _page(scope: Scope, send: Send, body: bytes) -> None:
    headers = [(b"content-type", b"text/html; charset=utf-8"),
               (b"content-length", str(len(body)).encode()), *_NO_CACHE]  # fmt: skip
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return ""


def client_address(scope: Scope, trusted: tuple[Any, ...]) -> str:
    """The visitor's address: X-Forwarded-For counts only when the peer is a trusted proxy."""
    client = scope.get("client")
    peer = client[0] if client else ""
    if not trusted or not peer:
        return str(peer)
    hops = [
        peer,
        *reversed([h.strip() for h in _header(scope, b"x-forwarded-for").split(",") if h.strip()]),
    ]
    for hop in hops:
        try:
            address = ipaddress.ip_address(hop)
        except ValueError:
            return str(hop)[:64] if hop != peer else peer
        if not any(address in net for net in trusted):
            return str(address)
    return str(hops[-1])


def _location(url: str) -> bytes:
    """The redirect target as a header value: never raw non-ASCII or control characters."""
    if url.isascii() and url.isprintable():
        return url.encode()
    return quote(url, safe=_URL_SAFE).encode()


class Tracker:
    """The three handlers, sharing the app state and bounded caches of links and destinations.

    A hit is captured with what the signed token names (destination, link) and account 0:
    the indexer fills in the account and emailing. So a click on a plain link reads the
    link's URL from the cache and nothing else; only a personalised link needs the
    destination's fields. Opens and unsubscribes read nothing at all.
    """

    def __init__(self, state: State) -> None:
        self.st = state
        self._dests: dict[int, tuple[int, int, dict[str, Any]] | None] = {}
        self._links: dict[int, tuple[int, str] | None] = {}

    async def _destination(self, dest_id: int) -> tuple[int, int, dict[str, Any]] | None:
        if len(self._dests) > _CACHE_LIMIT:
            self._dests.clear()
        dest = self._dests[dest_id] = await _LOOKUPS.call(
            self.st.store.tracking_destination, dest_id
        )
        return dest

    async def _link(self, link_id: int) -> tuple[int, str] | None:
        if len(self._links) > _CACHE_LIMIT:
            self._links.clear()
        link = self._links[link_id] = await _LOOKUPS.call(self.st.store.tracking_link, link_id)
        return link

    def _event(self, kind: Kind, scope: Scope, dest_id: int, link_id: int,
               owner: tuple[int, int] = (0, 0)) -> Event:  # fmt: skip
        ua = _header(scope, b"user-agent")[:_MAX_UA]
        ip = client_address(scope, self.st.settings.trusted_proxies)
        values: tuple[Any, ...] = hit_values(ip, ua)  # the same five columns for every hit
        return Event(kind, new_key(), int(time.time()), owner[0], owner[1], dest_id, link_id,
                     values, _head(scope))  # fmt: skip

    async def _ids(
        self, purpose: Purpose, scope: Scope, send: Send, token: str, methods: bytes
    ) -> tuple[int, int] | None:
        """The token's (destination, link) IDs, or None once refused."""
        if scope["method"] not in _METHODS[methods]:
            await _plain(scope, send, 405, "Method not allowed", [(b"allow", methods)])
            return None
        ids = self.st.signer.verify(purpose, token)
        if ids is None:
            await _plain(scope, send, 404, "Not found")
        return ids

    async def click(self, scope: Scope, receive: Receive, send: Send, token: str) -> None:
        ids = await self._ids(Purpose.CLICK, scope, send, token, b"GET, HEAD")
        if ids is None:
            return
        dest_id, link_id = ids
        # cached entries need no coroutine and no thread
        try:
            link = self._links[link_id] if link_id in self._links else await self._link(link_id)
        except Exception as exc:
            return await self._unanswerable(scope, send, exc, dest_id, link_id)
        if link is None:
            return await _plain(scope, send, 404, "Not found")
        emailing_id, url = link
        if not url:  # the trap link no person sees: a machine followed it
            await self.st.writer.write(self._event(CLICKS, scope, dest_id, link_id))
            return await _page(scope, send, _TRAP_PAGE)
        owner = (0, 0)
        if "{$" in url:  # personalised: the destination's fields fill it in
            try:
                dest = (
                    self._dests[dest_id]
                    if dest_id in self._dests
                    else await self._destination(dest_id)
                )
            except Exception as exc:
                return await self._unanswerable(scope, send, exc, dest_id, link_id)
            if dest is None or dest[1] != emailing_id:
                return await _plain(scope, send, 404, "Not found")
            url, owner = personalise(url, dest[2]), (dest[0], dest[1])
        # a HEAD request is kept too (a machine's: verdicts.HEAD)
        await self.st.writer.write(self._event(CLICKS, scope, dest_id, link_id, owner))
        headers = [(b"location", _location(url)), *_REDIRECT]
        await send({"type": "http.response.start", "status": 302, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    async def _unanswerable(self, scope: Scope, send: Send, exc: Exception, dest_id: int,
                            link_id: int) -> None:  # fmt: skip
        """The database is needed for the redirect's target and cannot be reached: the click
        is captured all the same (its token is valid; the indexer checks the rest), and the
        visitor is asked to come back. Any other failure is a 500, as before."""
        if not unavailable(exc):
            raise exc
        if scope["method"] == "GET":
            await self.st.writer.write(self._event(CLICKS, scope, dest_id, link_id))
        await _plain(scope, send, 503, "Try again shortly", [(b"retry-after", RETRY_AFTER)])

    async def open(self, scope: Scope, receive: Receive, send: Send, token: str) -> None:
        ids = await self._ids(Purpose.OPEN, scope, send, token, b"GET, HEAD")
        if ids is None:
            return
        method = scope["method"]
        await self.st.writer.write(self._event(IMPRESSIONS, scope, ids[0], 0))
        headers = [
            (b"content-type", b"image/gif"),
            (b"content-length", str(len(GIF)).encode()),
            *_NO_CACHE,
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": GIF if method == "GET" else b""})

    async def unsubscribe(self, scope: Scope, receive: Receive, send: Send, token: str) -> None:
        """GET shows a confirmation form (scanners follow links); only POST unsubscribes."""
        ids = await self._ids(Purpose.UNSUBSCRIBE, scope, send, token, b"GET, HEAD, POST")
        if ids is None:
            return
        method = scope["method"]
        if method == "POST":
            await self.st.writer.write(self._event(UNSUBSCRIBES, scope, ids[0], 0))
            page = _PAGE.format(
                body="<p>You have been unsubscribed. You will receive no more of these emails.</p>"
            )
        else:
            page = _PAGE.format(body=_FORM)
        body = page.encode()
        headers = [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"x-frame-options", b"DENY"),
            (b"content-security-policy", b"default-src 'none'; form-action 'self'"),
            *_NO_CACHE,
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})


_FORM = (
    "<p>Do you want to unsubscribe from these emails?</p>"
    '<form method="post"><button type="submit">Unsubscribe</button></form>'
)
_PAGE = (
    '<!doctype html><html><head><meta charset="utf-8"><meta name="robots" content="noindex">'
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    "<title>Unsubscribe</title></head>"
    '<body style="font-family:sans-serif;max-width:32em;margin:4em auto">{body}</body></html>'
)
