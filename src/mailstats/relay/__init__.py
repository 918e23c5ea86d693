"""The SMTP relay: mail in from an application or an MTA, tracked copies out to the next hop.

`mailstats relay` runs it; `Background` runs one on a thread of its own (tests, benches).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import threading
from collections.abc import Callable
from types import TracebackType

from mailstats.relay.server import Relay
from mailstats.settings import Settings, host_port
from mailstats.store import Store
from mailstats.tracking.tokens import Signer

__all__ = ["Background", "Relay", "run"]


def _signer(settings: Settings, store: Store) -> Signer:
    return Signer(store.secret(settings.secret.reveal() if settings.secret else None))


def run(settings: Settings, open_store: Callable[[], Store], workers: int = 1) -> None:
    """Serve until SIGTERM or SIGINT; a message being relayed is finished first.

    With several workers, each is a process of its own (its own database connections)
    taking connections from one listening socket, so the relay uses more than one core.
    """
    host, port = host_port(settings.smtp_listen, "smtp_listen")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(512)
    children = []
    for _ in range(workers - 1):
        pid = os.fork()
        if pid == 0:
            _serve(settings, open_store, sock)
            os._exit(0)
        children.append(pid)
    try:  # this process's own SIGTERM ends its loop; then it ends the others
        _serve(settings, open_store, sock)
    finally:
        for child in children:
            _kill(child, signal.SIGTERM)
            os.waitpid(child, 0)


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _serve(settings: Settings, open_store: Callable[[], Store], sock: socket.socket) -> None:
    store = open_store()

    async def main() -> None:
        relay = Relay(settings, store, _signer(settings, store))
        await relay.start(sock)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await relay.stop()

    try:
        asyncio.run(main())
    finally:
        store.close()


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
