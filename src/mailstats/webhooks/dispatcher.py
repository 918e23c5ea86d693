"""The dispatcher: a thread that sends each endpoint's outbox, one batch at a time.

An endpoint is leased (a row lock in `webhooks`, so any number of dispatchers may run on
one database, in processes or on nodes of their own) before its batch is read or sent, and
the lease is renewed just before each request: no two dispatchers send one endpoint's
batches at once, and the next batch is formed only after the one in flight succeeded, so
events arrive in ID order per endpoint. A batch keeps its message ID (`webhook-id`) through
its retries; retries wait longer each time, with jitter, until `webhook_disable_after`
failures in a row disable the endpoint.
"""

from __future__ import annotations

import logging
import random
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from mailstats.serialize import item_maker
from mailstats.settings import Settings
from mailstats.store import Store
from mailstats.store.webhooks import Batch
from mailstats.webhooks import signing
from mailstats.webhooks.network import Refused, Resolver, Sender

log = logging.getLogger("mailstats.webhooks")

# Seconds a dispatcher keeps delivering to one endpoint before it looks at the others.
TURN = 1.0


def backoff(attempt: int, base: float, cap: float) -> float:
    """Seconds to wait after failed attempt number `attempt` (from 1): doubling from
    `base` up to `cap`, each wait 20% either way at random so receivers coming back are
    not hit by every sender at once."""
    return min(cap, base * 2.0 ** min(attempt - 1, 60)) * random.uniform(0.8, 1.2)


def payload(store: Store, batch: Batch) -> list[dict[str, Any]]:
    """The batch's events, each the item `GET ms/<kind>` returns plus its "kind"."""
    tz = ZoneInfo(batch.timezone)
    makers = {kind.name: item_maker(kind, tz) for kind in batch.kinds}
    return [
        {**makers[kind.name](row), "kind": kind.name}
        for kind, row in store.webhooks.batch_events(batch)
    ]


class Dispatcher:
    """Delivers due batches: `step` once on the calling thread, or in a loop on its own."""

    def __init__(self, store: Store, settings: Settings, *, resolver: Resolver | None = None,
                 interval: float = 0.2, start: bool = True) -> None:  # fmt: skip
        self.store = store
        self.settings = settings
        self.resolver = resolver
        self.interval = interval
        self.owner = "d_" + secrets.token_hex(8)  # this dispatcher's name on its leases
        self.lease_seconds = max(30.0, 3 * settings.webhook_timeout + 5)
        self.sent = 0  # events delivered by this dispatcher
        self._senders: dict[int, tuple[str, Sender]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(settings.webhook_workers, "mailstats-webhook")
        self._thread: threading.Thread | None = None
        if start:
            self._thread = threading.Thread(target=self._loop, name="mailstats-dispatcher",
                                            daemon=True)  # fmt: skip
            self._thread.start()

    def step(self) -> int:
        """One round: each endpoint due now gets up to a second of deliveries. Returns the
        number of attempts made."""
        due = self.store.webhooks.due(time.time(), self.settings.webhook_workers * 4)
        return sum(self._pool.map(self._turn, due))

    def _turn(self, webhook_id: int) -> int:
        began = time.monotonic()
        attempts = 0
        while time.monotonic() - began < TURN and not self._stop.is_set():
            outcome = self.deliver(webhook_id)
            if outcome is None:
                break
            attempts += 1
            if not outcome:
                break
        return attempts

    def deliver(self, webhook_id: int) -> bool | None:
        """One attempt at the endpoint's batch in flight: True delivered, False failed,
        None nothing to do (not due, leased elsewhere, or nothing waits)."""
        hooks = self.store.webhooks
        lease = self.lease_seconds
        batch = hooks.lease(webhook_id, self.owner, time.time(), lease, self.settings.webhook_batch)
        if batch is None:
            return None
        try:
            items = payload(self.store, batch)
            body = orjson.dumps(items)
        except Exception:
            hooks.release(webhook_id, self.owner)
            raise
        if not hooks.renew(webhook_id, self.owner, time.time(), lease):
            return None  # lost the lease while reading: another dispatcher has it now
        status: int | None = None
        error: str | None = None
        started = time.perf_counter()
        if items:
            status, error = self._send(batch, body)
        latency_ms = (time.perf_counter() - started) * 1000
        ok = error is None and (not items or (status is not None and 200 <= status < 300))
        if not ok and error is None:
            error = f"HTTP {status}"
        s = self.settings
        wait = backoff(batch.attempt, s.webhook_backoff, s.webhook_backoff_max)
        hooks.attempted(batch, self.owner, ok=ok, status=status, latency_ms=latency_ms,
                        error=error, next_at=time.time() + wait,
                        disable_after=s.webhook_disable_after)  # fmt: skip
        if ok:
            self.sent += len(items)
        else:
            log.warning("webhook %d: attempt %d of %s failed: %s", webhook_id, batch.attempt,
                        batch.message_id, error)  # fmt: skip
        return ok

    def _send(self, batch: Batch, body: bytes) -> tuple[int | None, str | None]:
        sender = self._sender(batch)
        headers = signing.headers(batch.secret, batch.message_id, int(time.time()), body)
        try:
            answer = sender.post(body, headers)
        except Refused as exc:
            return None, f"refused: {exc}"
        except (OSError, ValueError) as exc:  # includes timeouts and TLS failures
            return None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except Exception as exc:  # http.client's protocol errors
            return None, f"{type(exc).__name__}: {exc}"
        if 300 <= answer.status < 400:
            return answer.status, f"HTTP {answer.status}: redirect not followed"
        if not 200 <= answer.status < 300:
            text = answer.body[:200].decode("utf-8", "replace")
            return answer.status, f"HTTP {answer.status}" + (f": {text}" if text else "")
        return answer.status, None

    def _sender(self, batch: Batch) -> Sender:
        with self._lock:
            known = self._senders.get(batch.webhook_id)
            if known is not None and known[0] == batch.url:
                return known[1]
            s = self.settings
            sender = Sender(batch.url, s.webhook_allowed_networks, timeout=s.webhook_timeout,
                            resolver=self.resolver)  # fmt: skip
            self._senders[batch.webhook_id] = (batch.url, sender)
            return sender

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.step()
            except Exception as exc:  # the database is away: try again in a moment
                log.warning("webhook delivery deferred: %s", exc)
                busy = 0
            if not busy:
                self._stop.wait(self.interval)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._pool.shutdown()
        with self._lock:
            for _, sender in self._senders.values():
                sender.close()
            self._senders.clear()
