"""The spool: events that got their answer but are not in the database yet, on local disk.

Files of JSON lines, fsync'd before any event in them is acknowledged; one active file per
process, locked while in use, and replayed by any process once the database answers again.
"""

from __future__ import annotations

import fcntl
import os
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO

from mailstats.store.base import Event
from mailstats.store.capture import decode, encode


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
        data = encode(events)
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
                for batch in _batches(decode(fh), size):
                    commit(batch)
                    count += len(batch)
                path.unlink()
        return count


def _batches(events: Iterator[Event], size: int) -> Iterator[list[Event]]:
    batch: list[Event] = []
    for event in events:
        batch.append(event)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
