"""Group commit for events: many requests, one transaction, and a spool when the database fails.

A request hands its event to the writer and waits. The writer thread gathers events for a
few milliseconds (or until a batch is full), commits them in one transaction and wakes the
waiters. When the database fails or misses the deadline, the waiter's event goes to an
append-only spool file, fsync'd in groups the same way, and the spool is replayed once the
database answers again. Every event carries a unique key, so a replay never counts twice.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO

import orjson

from mailstats.kinds import KINDS
from mailstats.store.base import Event

log = logging.getLogger("mailstats.writer")

_KINDS_BY_CODE = {kind.code: kind for kind in KINDS.values()}
Item = tuple[Event, concurrent.futures.Future[None]]


class Batcher:
    """A thread that calls `commit` with groups of events and resolves their futures."""

    def __init__(
        self, name: str, commit: Callable[[Sequence[Event]], object], size: int, wait: float
    ) -> None:
        self._commit = commit
        self._size = size
        self._wait = wait
        self._queue: queue.SimpleQueue[Item | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, event: Event) -> concurrent.futures.Future[None]:
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._queue.put((event, future))
        return future

    def close(self) -> None:
        """Commit what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join()

    def _gather(self, first: Item) -> tuple[list[Item], bool]:
        batch = [first]
        until = time.monotonic() + self._wait
        while len(batch) < self._size:
            try:
                item = self._queue.get(timeout=max(0.0, until - time.monotonic()))
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                break
            batch, stop = self._gather(first)
            live = [(e, f) for e, f in batch if f.set_running_or_notify_cancel()]
            try:
                self._commit([e for e, _ in live])
            except Exception as exc:  # the waiters fall back to the spool
                log.warning("commit of %d events failed: %s", len(live), exc)
                for _, future in live:
                    future.set_exception(exc)
            else:
                for _, future in live:
                    future.set_result(None)


class Spool:
    """Append-only files of events not yet in the database, one active file per process.

    The active file is locked while in use, so a replayer (in any process) takes only files
    whose writer has closed them or died.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None

    def _active(self) -> IO[bytes]:
        if self._file is None:
            path = self.folder / f"active-{os.getpid()}-{uuid.uuid4().hex}.spool"
            self._file = open(path, "ab")  # noqa: SIM115 - kept open across calls
            fcntl.flock(self._file, fcntl.LOCK_EX)
        return self._file

    def append(self, events: Sequence[Event]) -> None:
        """Write and fsync; when this returns the events survive a crash."""
        data = b"".join(_encode(e) for e in events)
        with self._lock:
            fh = self._active()
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    def rotate(self) -> None:
        """Close the active file so that it can be replayed."""
        with self._lock:
            if self._file is not None:
                path = Path(self._file.name)
                path.rename(path.with_name("ready-" + path.name.removeprefix("active-")))
                self._file.close()
                self._file = None

    def pending(self) -> bool:
        return any(self.folder.glob("*.spool"))

    def replay(self, commit: Callable[[Sequence[Event]], object], size: int = 1000) -> int:
        """Commit every closed spool file, then delete it; return how many events were read."""
        count = 0
        for path in sorted(self.folder.glob("*.spool")):
            if self._file is not None and path.name == Path(self._file.name).name:
                continue
            with open(path, "rb") as fh:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # another live process still writes it
                for batch in _batches(_decode(fh), size):
                    commit(batch)
                    count += len(batch)
                path.unlink()
        return count


def _encode(event: Event) -> bytes:
    record = [
        event.kind.code,
        event.key.hex(),
        event.ts,
        event.account_id,
        event.emailing_id,
        event.destination_id,
        event.link_id,
        list(event.values),
    ]
    return orjson.dumps(record) + b"\n"


def _decode(lines: IO[bytes]) -> Iterator[Event]:
    for line in lines:
        try:
            code, key, ts, account, emailing, dest, link, values = orjson.loads(line)
        except (orjson.JSONDecodeError, ValueError):
            continue  # a torn last line: its event was never acknowledged
        yield Event(
            _KINDS_BY_CODE[code],
            bytes.fromhex(key),
            ts,
            account,
            emailing,
            dest,
            link,
            tuple(values),
        )


def _batches(events: Iterator[Event], size: int) -> Iterator[list[Event]]:
    batch: list[Event] = []
    for event in events:
        batch.append(event)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class Writer:
    """Durable writes for the tracking endpoints: database first, spool when it fails."""

    def __init__(
        self,
        commit: Callable[[Sequence[Event]], object],
        spool_folder: Path,
        *,
        batch_max: int = 1000,
        batch_wait: float = 0.002,
        deadline: float = 0.25,
        replay_every: float = 1.0,
    ) -> None:
        self._commit = commit
        self.deadline = deadline
        self.spool = Spool(spool_folder)
        self._db = Batcher("mailstats-writer", commit, batch_max, batch_wait)
        self._spooler = Batcher("mailstats-spool", self.spool.append, batch_max, batch_wait)
        self._stop = threading.Event()
        self._replay_every = replay_every
        self._replayer = threading.Thread(
            target=self._replay_loop, name="mailstats-replay", daemon=True
        )
        self._replayer.start()

    async def write(self, event: Event) -> None:
        """Return once the event is committed to the database or fsync'd to the spool."""
        future = self._db.submit(event)
        try:
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), self.deadline)
            return
        except Exception:
            future.cancel()  # if the writer has not taken it yet, it never will
        await asyncio.wrap_future(self._spooler.submit(event))

    def write_sync(self, event: Event) -> None:
        """The blocking twin of `write`, for callers outside the event loop."""
        future = self._db.submit(event)
        try:
            future.result(timeout=self.deadline)
        except Exception:
            future.cancel()
            self._spooler.submit(event).result()

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
        """Drain both queues, then try one last replay."""
        self._stop.set()
        self._replayer.join()
        self._db.close()
        self._spooler.close()
        with contextlib.suppress(Exception):
            self.replay_now()
