"""The SMTP relay: mail in from an application or an MTA, tracked copies out to the next hop.

`mailstats relay` runs it; `Background` runs one on a thread of its own (tests, benches).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from types import TracebackType

from mailstats.relay.server import Relay
from mailstats.settings import Settings
from mailstats.store import Store
from mailstats.tracking.tokens import Signer

__all__ = ["Background", "Relay", "run"]


def _signer(settings: Settings, store: Store) -> Signer:
    return Signer(store.secret(settings.secret.reveal() if settings.secret else None))


def run(settings: Settings, store: Store) -> None:
    """Serve until SIGTERM or SIGINT; a message being relayed is finished first."""

    async def main() -> None:
        relay = Relay(settings, store, _signer(settings, store))
        await relay.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await relay.stop()

    asyncio.run(main())


class Background:
    """A relay on its own thread and event loop: `with Background(settings, store) as r:`."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.relay: Relay | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> Relay:
        self._thread.start()
        self.relay = Relay(self.settings, self.store, _signer(self.settings, self.store))
        asyncio.run_coroutine_threadsafe(self.relay.start(), self._loop).result()
        return self.relay

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.relay is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self.relay.stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()
