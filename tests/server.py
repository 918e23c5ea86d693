"""A real `mailstats serve` process on a free loopback port, for tests over real HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_token(db: str, account: str = "acme") -> str:
    out = subprocess.run(
        [sys.executable, "-m", "mailstats", "token", "create", "--account", account, "--db", db],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "MAILSTATS_DB": ""},
    )
    return out.stdout.strip().splitlines()[-1]


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    port: int

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)


def start(
    db: str, *, port: int | None = None, env: dict[str, str] | None = None, workers: int = 1
) -> Server:
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    args = [
        sys.executable,
        "-m",
        "mailstats",
        "serve",
        "--db",
        db,
        "--port",
        str(port),
        "--public-url",
        url,
    ]
    if workers > 1:
        args += ["--workers", str(workers)]
    process = subprocess.Popen(
        args,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mailstats serve exited with {process.returncode}")
        try:
            httpx.get(f"{url}/v2/ms/clicks", timeout=1)
            return Server(process, url, port)
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("mailstats serve did not answer within 30 s")


@contextmanager
def running(db: str, **kwargs: object) -> Iterator[Server]:
    server = start(db, **kwargs)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(10)


def wait_derived(db: str, seconds: float = 20) -> None:
    """Wait until the server's indexer has derived everything captured (`mailstats backlog
    --wait`): a click shows in the API once derived, a moment after its redirect."""
    out = subprocess.run(
        [sys.executable, "-m", "mailstats", "backlog", "--db", db, "--wait", str(seconds)],
        capture_output=True, text=True, env={**os.environ, "MAILSTATS_DB": ""}, timeout=seconds + 30,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
