"""The capture log on a NATS JetStream stream, for tracking nodes off the database's path.

A group commit is published as a few messages of JSON lines (the acknowledgement round trip
is the cost, not the bytes) and is durable once the stream acknowledges it: replicated by
Raft on `replicas` nodes, on file storage. A work-queue stream keeps only what the indexer
has not acknowledged yet, so its first message is the oldest waiting one. The indexer pulls
from one durable consumer, stores the events, commits, and only then acknowledges; a message
redelivered after a crash stores nothing twice (each event has a unique key).

nats-py is asynchronous and the store is not: one thread runs an event loop for the client,
and the writer and the indexer wait on it with a timeout. The connection is made in the
background and retried, so a node whose cluster is not up yet serves (and spools).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import threading
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from mailstats.store.base import Event
from mailstats.store.capture import Backlog, CaptureLog, decode, encode

log = logging.getLogger("mailstats.stream")

STREAM = "MAILSTATS_CAPTURE"
SUBJECT = "mailstats.capture"
CONSUMER = "mailstats-indexer"
# A message holds the events of a group commit up to about this many bytes (the server's
# default limit is 1 MiB).
MESSAGE_BYTES = 256 * 1024
# Messages the indexer takes per fetch (the first, then at most), and seconds it waits for
# the first one. A message holds a group commit: 1 to 1,000 events.
FIRST_FETCH = 16
FETCH = 256
FETCH_WAIT = 0.05
# Seconds the server waits for the indexer's acknowledgement before delivering again (to
# the next indexer, when this one died mid-batch): a derive transaction takes far less, and
# a batch delivered twice is stored once.
ACK_WAIT = 10.0
# Seconds an API call (stream info, creation) may take before it counts as failed.
API_TIMEOUT = 2.0
# Seconds of "insufficient resources" (fewer nodes up than replicas) before the stream is
# made with fewer replicas: a cluster starting node by node gets its full count.
FEWER_AFTER = 30.0

T = TypeVar("T")


class NotReady(RuntimeError):
    """The stream cannot take or give events now (not connected, not made, no leader)."""


@dataclass
class Pulled:
    """Messages taken from the stream by the indexer, not acknowledged yet."""

    events: list[Event] = field(default_factory=list)
    captured: float | None = None  # when the oldest of them was stored in the stream
    messages: list[Any] = field(default_factory=list)


def messages(events: Sequence[Event], size: int = MESSAGE_BYTES) -> list[bytes]:
    """The events as a few payloads of JSON lines, each about `size` bytes at most."""
    out: list[bytes] = []
    part: list[bytes] = []
    length = 0
    for event in events:
        line = encode((event,))
        if part and length + len(line) > size:
            out.append(b"".join(part))
            part, length = [], 0
        part.append(line)
        length += len(line)
    if part:
        out.append(b"".join(part))
    return out


class StreamCapture(CaptureLog):
    """The capture log as a JetStream stream on the NATS servers of `urls` (comma-separated
    nats:// URLs); `timeout` is how long a group commit waits for the acknowledgement."""

    def __init__(self, urls: str, *, replicas: int = 3, timeout: float = 0.25) -> None:
        self.servers = [u.strip() for u in urls.split(",") if u.strip()]
        self.replicas = max(1, replicas)
        self.timeout = timeout
        self.made_replicas: int | None = None  # the stream's replicas, once known
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._ready = threading.Event()
        self._closing = False
        self._nc: Any = None
        self._js: Any = None
        self._sub: Any = None
        self._sub_lock: asyncio.Lock | None = None

    # -- the client's thread ----------------------------------------------------------

    def start(self) -> None:
        """Start connecting in the background (once; every other call does it too)."""
        with self._start_lock:
            if self._thread is None and not self._closing:
                self._thread = threading.Thread(
                    target=self._run, name="mailstats-nats", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.create_task(self._connect())
        self._loop.run_forever()

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise NotReady(f"the NATS stream did not answer within {timeout:g} s") from None

    def wait_ready(self, timeout: float) -> bool:
        """Whether the stream is ready within `timeout` seconds."""
        self.start()
        return self._ready.wait(timeout)

    def _check(self) -> None:
        if not self._ready.is_set():
            self.start()
            raise NotReady("the NATS stream is not ready yet")

    async def _connect(self) -> None:
        import nats

        said = False
        while not self._closing:
            try:
                self._nc = await nats.connect(
                    servers=self.servers,
                    name="mailstats",
                    connect_timeout=1,
                    reconnect_time_wait=0.25,
                    max_reconnect_attempts=-1,
                    allow_reconnect=True,
                    ping_interval=5,
                    max_outstanding_pings=2,
                    error_cb=self._error,
                    disconnected_cb=self._disconnected,
                    reconnected_cb=self._reconnected,
                )
                break
            except Exception as exc:
                if not said:
                    log.warning("NATS not reachable yet at %s: %s", ",".join(self.servers), exc)
                    said = True
                await asyncio.sleep(0.5)
        if self._closing:
            return
        self._js = self._nc.jetstream(timeout=API_TIMEOUT)
        self._sub_lock = asyncio.Lock()
        began = time.monotonic()
        while not self._closing:
            try:
                await self._make_stream(time.monotonic() - began > FEWER_AFTER)
                break
            except Exception as exc:
                log.info("the stream %s is not ready yet: %s", STREAM, exc)
                await asyncio.sleep(0.5)
        self._ready.set()
        log.info("capture on the NATS stream %s (%s replicas)", STREAM, self.made_replicas)

    async def _error(self, exc: Exception) -> None:
        log.debug("NATS: %s", exc)

    async def _disconnected(self) -> None:
        if not self._closing:
            log.warning("NATS disconnected; group commits spool until it is back")

    async def _reconnected(self) -> None:
        log.info("NATS reconnected to %s", self._nc.connected_url.netloc)

    async def _make_stream(self, fewer: bool) -> None:
        """The stream, made when missing: file storage, work-queue retention, `replicas`
        replicas, or as many as the cluster has nodes (said in the log)."""
        from nats.js import api
        from nats.js.errors import APIError, NotFoundError

        try:
            info = await self._js.stream_info(STREAM)
            self.made_replicas = info.config.num_replicas
            return
        except NotFoundError:
            pass
        replicas = self.replicas
        while True:
            config = api.StreamConfig(
                name=STREAM,
                subjects=[SUBJECT],
                storage=api.StorageType.FILE,
                retention=api.RetentionPolicy.WORK_QUEUE,
                num_replicas=replicas,
            )
            try:
                await self._js.add_stream(config)
            except APIError as exc:
                # 10074: a server outside any cluster; 10005: fewer nodes than replicas
                single = exc.err_code == 10074
                if replicas > 1 and (single or (fewer and exc.err_code == 10005)):
                    replicas = 1 if single else replicas - 1
                    continue
                raise
            break
        if replicas < self.replicas:
            log.warning(
                "stream %s made with %d replicas, not %d: the NATS cluster has fewer nodes",
                STREAM, replicas, self.replicas,
            )  # fmt: skip
        self.made_replicas = replicas

    # -- capture ----------------------------------------------------------------------

    def append(self, events: Sequence[Event]) -> None:
        """Publish the events and wait for the stream's acknowledgement of each message."""
        self._check()
        payloads = messages(events)
        self._call(self._publish(payloads), self.timeout + 0.05)

    async def _publish(self, payloads: list[bytes]) -> None:
        await asyncio.gather(
            *(self._js.publish(SUBJECT, p, timeout=self.timeout, stream=STREAM) for p in payloads)
        )

    def backlog(self) -> Backlog:
        """Messages in the stream (each the events of one group commit, or part of one),
        and when the oldest of them was stored."""
        if not self.wait_ready(API_TIMEOUT):  # a command run once connects first
            raise NotReady("the NATS stream is not ready yet")
        return self._call(self._backlog(), API_TIMEOUT + 0.5)

    async def _backlog(self) -> Backlog:
        from nats.js.errors import NotFoundError

        state = (await self._js.stream_info(STREAM)).state
        if not state.messages:
            return Backlog(0, None, messages=0)
        oldest: float | None = None
        try:
            first = await self._js.get_msg(STREAM, seq=state.first_seq, next=True)
            oldest = first.time.timestamp() if first.time else None
        except NotFoundError:  # acknowledged meanwhile
            pass
        return Backlog(state.messages, oldest, messages=state.messages)

    # -- derive -----------------------------------------------------------------------

    def pull(self, limit: int) -> Pulled:
        """Messages from the durable consumer, about `limit` events or fewer (what is
        there); acknowledge them with `ack` once what they hold is committed."""
        if not self.wait_ready(API_TIMEOUT):
            raise NotReady("the NATS stream is not ready yet")
        return self._call(self._pull(limit), API_TIMEOUT + FETCH_WAIT + 1)

    async def _pull(self, limit: int) -> Pulled:
        import nats.errors

        assert self._sub_lock is not None
        async with self._sub_lock:
            if self._sub is None:
                from nats.js import api

                config = api.ConsumerConfig(
                    ack_policy=api.AckPolicy.EXPLICIT,
                    ack_wait=ACK_WAIT,
                    max_ack_pending=-1,
                )
                self._sub = await self._js.pull_subscribe(
                    SUBJECT, durable=CONSUMER, stream=STREAM, config=config
                )
        pulled = Pulled()
        want = FIRST_FETCH
        while len(pulled.events) < limit:
            try:
                got = await self._sub.fetch(want, timeout=FETCH_WAIT)
            except nats.errors.TimeoutError:
                break
            for msg in got:
                pulled.messages.append(msg)
                pulled.events.extend(decode(msg.data.splitlines(keepends=True)))
                stamp = msg.metadata.timestamp.timestamp()
                if pulled.captured is None or stamp < pulled.captured:
                    pulled.captured = stamp
            if len(got) < want:
                break
            # as many messages as should make up the rest of `limit`, at the size seen so far
            each = len(pulled.events) / len(pulled.messages)
            want = max(1, min(FETCH, math.ceil((limit - len(pulled.events)) / max(each, 1.0))))
        return pulled

    def ack(self, pulled: Pulled) -> None:
        """Acknowledge what `pull` gave (committed): the stream drops it. A lost
        acknowledgement only means a redelivery, which stores nothing twice."""
        if pulled.messages:
            self._call(self._ack(pulled.messages), API_TIMEOUT)

    async def _ack(self, msgs: list[Any]) -> None:
        for msg in msgs:
            await msg.ack()
        await self._nc.flush(timeout=API_TIMEOUT)

    def nak(self, pulled: Pulled) -> None:
        """Give back what `pull` gave (not committed): delivered again at once."""
        if pulled.messages:
            try:
                self._call(self._nak(pulled.messages), API_TIMEOUT)
            except Exception as exc:  # then it comes back after the ack wait
                log.info("messages not given back: %s", exc)

    async def _nak(self, msgs: list[Any]) -> None:
        for msg in msgs:
            await msg.nak()
        await self._nc.flush(timeout=API_TIMEOUT)

    def close(self) -> None:
        with self._start_lock:
            self._closing = True  # no thread starts after this
        if self._thread is not None:
            try:
                self._call(self._close(), 3.0)
            except NotReady:
                log.warning("the NATS connection did not close in time")
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            if self._thread.is_alive():
                return  # the loop is still running: leave it to the process' end
        self._loop.close()

    async def _close(self) -> None:
        # not drain(): acknowledgements are flushed already, and a pull subscription's
        # drain waits for its whole timeout
        if self._nc is not None and not self._nc.is_closed:
            await self._nc.close()
