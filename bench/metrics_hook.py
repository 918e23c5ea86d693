"""What the /metrics hook in web/app.py costs a tracking request, in microseconds.

The app is called over ASGI on a click path twice: through App.__call__ (the hook: a send
wrapper, two clock reads, a counter and the redirect histogram) and straight to the same
handler. The handler here answers at once, so the difference is the hook alone (CPU
microseconds per request, median of five runs of 200,000 calls each).

    .venv/bin/python bench/metrics_hook.py
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from typing import Any

from mailstats.settings import load
from mailstats.web.app import create_app

N = 200_000


async def _answer(scope: Any, receive: Any, send: Any, token: str) -> None:
    await send({"type": "http.response.start", "status": 302, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b""}


async def _send(message: Any) -> None:
    pass


async def _loop(call: Any, scope: dict[str, Any]) -> float:
    t0 = time.process_time()  # CPU time: others' load on a shared machine counts less
    for _ in range(N):
        await call(scope, _receive, _send)
    return (time.process_time() - t0) / N * 1e6


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        db = os.path.join(folder, "hook.db")
        app = create_app(load(environ={}, db=db, spool=os.path.join(folder, "spool")))
        try:
            app._tracking["c"] = _answer  # the real click path is not what is measured
            scope = {"type": "http", "path": "/c/abcdefghijklmnopqrs", "method": "GET"}

            async def direct(scope: Any, receive: Any, send: Any) -> None:
                await _answer(scope, receive, send, scope["path"][3:])

            hooked, plain = [], []
            for _ in range(5):
                hooked.append(asyncio.run(_loop(app, scope)))
                plain.append(asyncio.run(_loop(direct, scope)))
        finally:
            app.close()
    h, p = statistics.median(hooked), statistics.median(plain)
    print(f"through App.__call__: {h:.2f} us, handler alone: {p:.2f} us, hook: {h - p:.2f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
