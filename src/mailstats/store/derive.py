"""The indexer: the capture log drained into `events`, flags and counters, in large batches.

One indexer works per database at a time: on SQLite the serving process that holds a file
lock, on PostgreSQL the one that holds an advisory lock, so several processes or nodes may
run one each and only one derives. A batch is taken from the log in capture order, its
tracking hits are given their account and emailing (the click path reads nothing of the
destination), and it is written with the same set-based insert as every other event.
The API shows an event once it is derived; `Backlog` says how far behind that is.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from mailstats.store.base import Backend

log = logging.getLogger("mailstats.derive")

# Events per derive transaction: large enough that per-statement costs vanish, small
# enough that the events lock is held for tens of milliseconds.
BATCH = 10_000
# Seconds between derive steps while the indexer keeps up: events become visible within
# about this much (plus the step itself), and a step's fixed costs are spread over all the
# events that gathered meanwhile.
INTERVAL = 0.1


@dataclass
class Derived:
    """What one derive step did."""

    taken: int = 0  # events read from the log
    stored: int = 0  # events new to `events`
    dropped: int = 0  # tracking hits naming no destination or a link of another emailing
    captured: list[float] = field(default_factory=list)  # capture time of each batch


class Indexer:
    """A thread that derives the capture log whenever this process holds the indexer role."""

    def __init__(self, backend: Backend, *, batch: int = BATCH, interval: float = INTERVAL,
                 role_retry: float = 1.0, enabled: bool = True) -> None:  # fmt: skip
        """`enabled` False: the role is never taken here (another process derives)."""
        self.backend = backend
        self.enabled = enabled
        self.batch = batch
        self.interval = interval
        self.role_retry = role_retry
        self.derived = 0
        self.dropped = 0
        self.lag = 0.0  # seconds from capture to visibility of the last derived batch
        self._hurry = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mailstats-indexer", daemon=True)
        if enabled:
            self._thread.start()

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until everything captured so far is derived (by whichever process holds the
        role); False if that took longer than `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while self.backend.capture.backlog().events:
            if time.monotonic() > deadline:
                return False
            self._hurry.set()
            time.sleep(0.001)
        return True

    def step(self) -> Derived:
        """Derive one batch now, on the calling thread (holding the role or not)."""
        done = self.backend.derive(self.batch)
        if done.captured:
            now = time.time()
            self.lag = now - min(done.captured)
            self.derived += done.stored
            self.dropped += done.dropped
            if done.dropped:
                log.warning("dropped %d tracking hits of unknown destinations", done.dropped)
        return done

    def _loop(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                if not self.backend.indexer_role():
                    self._stop.wait(self.role_retry)
                    continue
                done = self.step()
            except Exception as exc:  # the database is away: try again in a moment
                log.warning("derive deferred: %s", exc)
                self._stop.wait(self.role_retry)
                continue
            if done.taken < self.batch:
                # caught up: the next batch gathers for `interval` (a step costs about the
                # same for 10 events as for 1,000); `drain` cuts the wait short
                self._hurry.wait(max(0.0, self.interval - (time.monotonic() - began)))
                self._hurry.clear()

    def close(self, drain: float = 5.0) -> None:
        """Stop; as the role holder, first derive what is left for up to `drain` seconds.
        Anything still in the log then waits there for the next indexer."""
        self._stop.set()
        self._hurry.set()
        if not self.enabled:
            return
        self._thread.join()
        deadline = time.monotonic() + drain
        try:
            while time.monotonic() < deadline and self.backend.indexer_role():
                if self.step().taken == 0:
                    break
        except Exception as exc:
            log.warning("derive left for the next start: %s", exc)
