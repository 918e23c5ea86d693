"""Group commit for events: many requests, one transaction, and a spool when the database fails.

Requests on an event loop add their events to that loop's open batch and await the batch's
one future. The writer thread takes every open batch once it is free and the batch has
gathered events for `batch_wait` (or is full), commits them in one transaction and wakes
each batch's loop once. When the commit fails, or a batch is not committed within the
deadline (counted from its first event), the batch goes to an append-only spool file,
fsync'd in groups the same way, and the spool is replayed once the database answers again.
Every event carries a unique key, so a batch both committed and spooled is stored once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from mailstats.store.base import Event
from mailstats.store.spool import Spool

log = logging.getLogger("mailstats.writer")

Commit = Callable[[Sequence[Event]], object]


class NotStored(RuntimeError):
    """An event was neither committed nor spooled (the spool itself failed)."""


class Batch:
    """Events that travel together, and how their writers learn that they are durable."""

    __slots__ = ("durable", "events", "spooling")

    def __init__(self, events: list[Event]) -> None:
        self.events = events
        self.durable = False  # committed or spooled
        self.spooling = False  # handed to the spool: the database may skip it

    def settle(self, error: BaseException | None) -> None:
        """Called from a worker thread once the batch is durable (None) or lost (error)."""
        raise NotImplementedError


class _Outcome(asyncio.Future[BaseException | None]):
    """A batch's outcome, awaited by every request in it.

    Cancelling one waiting request must not cancel the others: the request is cancelled
    once the batch is settled instead.
    """

    def cancel(self, msg: Any | None = None) -> bool:
        return False


class LoopBatch(Batch):
    """A batch written by requests on one event loop."""

    __slots__ = ("deadline", "loop", "opened", "outcome")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__([])
        self.loop = loop
        self.outcome = _Outcome(loop=loop)
        self.opened = time.monotonic()
        self.deadline: asyncio.TimerHandle | None = None

    def settle(self, error: BaseException | None) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            self.loop.call_soon_threadsafe(self._resolve, error)

    def _resolve(self, error: BaseException | None) -> None:
        if not self.outcome.done():
            self.outcome.set_result(error)
            if self.deadline is not None:
                self.deadline.cancel()


class ThreadBatch(Batch):
    """A batch of one event written by a caller outside any event loop."""

    __slots__ = ("error", "finished")

    def __init__(self, event: Event) -> None:
        super().__init__([event])
        self.finished = threading.Event()
        self.error: BaseException | None = None

    def settle(self, error: BaseException | None) -> None:
        if not self.finished.is_set():
            self.error = error
            self.finished.set()


def _run(action: Commit, batches: list[Batch], fallback: Callable[[Batch, Exception], None],
         name: str) -> None:  # fmt: skip
    """`action` on the events of `batches` at once; then each batch is settled or falls back."""
    events = [e for b in batches for e in b.events]
    try:
        action(events)
    except Exception as exc:
        log.warning("%s: %d events failed: %s", name, len(events), exc)
        for batch in batches:
            fallback(batch, exc)
    else:
        for batch in batches:
            batch.durable = True
            batch.settle(None)


def _groups(batches: list[Batch], size: int) -> Iterator[list[Batch]]:
    """Whole batches in groups of about `size` events."""
    group: list[Batch] = []
    count = 0
    for batch in batches:
        if group and count + len(batch.events) > size:
            yield group
            group, count = [], 0
        group.append(batch)
        count += len(batch.events)
    if group:
        yield group


class Spooler:
    """A thread that appends queued batches to the spool, many batches per fsync."""

    def __init__(self, spool: Spool, size: int) -> None:
        self._spool = spool
        self._size = size
        self._queue: queue.SimpleQueue[Batch | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="mailstats-spool", daemon=True)
        self._thread.start()

    def put(self, batch: Batch) -> None:
        if not batch.spooling:
            batch.spooling = True
            self._queue.put(batch)

    def close(self) -> None:
        """Finish what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join()

    def _loop(self) -> None:
        while (first := self._queue.get()) is not None:
            batches, count, stop = [first], len(first.events), False
            while count < self._size and not stop:
                try:
                    batch = self._queue.get_nowait()
                except queue.Empty:
                    break
                if batch is None:
                    stop = True
                else:
                    batches.append(batch)
                    count += len(batch.events)
            _run(self._spool.append, batches, _lost, "spool")
            if stop:
                return


def _lost(batch: Batch, error: Exception) -> None:
    batch.settle(error)


class Writer:
    """Durable writes for the tracking endpoints: database first, spool when it fails."""

    def __init__(
        self,
        commit: Commit,
        spool_folder: Path,
        *,
        batch_max: int = 1000,
        batch_wait: float = 0.002,
        deadline: float = 0.25,
        replay_every: float = 1.0,
    ) -> None:
        self._commit = commit
        self._size = batch_max
        self._wait = batch_wait
        self.deadline = deadline
        self.spool = Spool(spool_folder)
        self._spooler = Spooler(self.spool, batch_max)
        # What the writer thread takes next: one open batch per event loop, batches that
        # are full or come from write_sync; guarded by the lock of `_wake`.
        self._wake = threading.Condition(threading.Lock())
        self._open: dict[asyncio.AbstractEventLoop, LoopBatch] = {}
        self._full: list[Batch] = []
        self._closing = False
        self._writer = threading.Thread(target=self._loop, name="mailstats-writer", daemon=True)
        self._writer.start()
        self._stop = threading.Event()
        self._replay_every = replay_every
        self._replayer = threading.Thread(
            target=self._replay_loop, name="mailstats-replay", daemon=True
        )
        self._replayer.start()

    async def write(self, event: Event) -> None:
        """Return once the event is committed to the database or fsync'd to the spool."""
        loop = asyncio.get_running_loop()
        with self._wake:
            batch = self._open.get(loop)
            if batch is None:
                batch = self._open[loop] = LoopBatch(loop)
                self._wake.notify()
            batch.events.append(event)
            if len(batch.events) >= self._size:
                self._full.append(self._open.pop(loop))
                self._wake.notify()
        if batch.deadline is None:
            batch.deadline = loop.call_later(self.deadline, self._overdue, batch)
        error = await batch.outcome
        if error is not None:
            raise NotStored("the event was neither committed nor spooled") from error

    def write_sync(self, event: Event) -> None:
        """The blocking twin of `write`, for callers outside the event loop."""
        batch = ThreadBatch(event)
        with self._wake:
            self._full.append(batch)
            self._wake.notify()
        if not batch.finished.wait(self.deadline):
            self._spooler.put(batch)
            batch.finished.wait()
        if batch.error is not None:
            raise NotStored("the event was neither committed nor spooled") from batch.error

    def _overdue(self, batch: LoopBatch) -> None:
        """On the batch's loop: not committed in time, so it goes to the spool."""
        if batch.durable:
            return
        with self._wake:
            if self._open.get(batch.loop) is batch:
                del self._open[batch.loop]  # no event may join once the spool has it
        self._spooler.put(batch)

    def _take(self) -> list[Batch] | None:
        """Wait for batches, then take them all; None once closed and drained."""
        with self._wake:
            while not (self._open or self._full or self._closing):
                self._wake.wait()
            if self._open and not (self._full or self._closing):
                # events gather for batch_wait after the first; under steady load the
                # last commit took longer than that, and the batch goes at once
                opened = min(batch.opened for batch in self._open.values())
                delay = opened + self._wait - time.monotonic()
                self._wake.wait_for(lambda: self._full or self._closing, delay)
            batches = [*self._full, *self._open.values()]
            self._full, self._open = [], {}
            if not batches and self._closing:
                return None
        return batches

    def _loop(self) -> None:
        while (batches := self._take()) is not None:
            live = [b for b in batches if not b.spooling]
            for group in _groups(live, self._size):
                _run(self._commit, group, self._failed, "commit")

    def _failed(self, batch: Batch, error: Exception) -> None:
        self._spooler.put(batch)

    def _replay_loop(self) -> None:
        while not self._stop.wait(self._replay_every):
            self.replay_now()

    def replay_now(self) -> int:
        """Move spooled events into the database; harmless to call at any time."""
        if not self.spool.pending():
            return 0
        self.spool.rotate()
        try:
            count = self.spool.replay(self._commit)
        except Exception as exc:
            log.info("spool replay deferred: %s", exc)
            return 0
        if count:
            log.info("replayed %d spooled events", count)
        return count

    def close(self) -> None:
        """Commit (or spool) every batch written so far, then try one last replay."""
        self._stop.set()
        self._replayer.join()
        with self._wake:
            self._closing = True
            self._wake.notify()
        self._writer.join()
        self._spooler.close()
        with contextlib.suppress(Exception):
            self.replay_now()
