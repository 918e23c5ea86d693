"""Servers a measurement runs against, always stopped again: `mailstats serve` and nginx.

Each runs in its own session (process group), so that Ctrl-C reaches the benchmark only and
the benchmark stops them in order; whatever is left of the group is killed at the end.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx
from databases import DATA, Database

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def vm_kb(pid: int, field: str) -> int:
    """A VmRSS/VmHWM-style line of /proc/<pid>/status, in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def tree_cpu_seconds(root: int) -> float:
    """User plus system CPU time of a process and its live descendants (e.g. workers)."""
    children: dict[int, list[int]] = {}
    ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)
        ticks[pid] = int(fields[11]) + int(fields[12])
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += ticks.get(pid, 0)
        todo.extend(children.get(pid, ()))
    return total / os.sysconf("SC_CLK_TCK")


class Process:
    """A child server: started by `__enter__`, stopped (TERM, then KILL) by `__exit__`."""

    name = "server"

    def __init__(self, command: list[str], port: int, env: dict[str, str] | None = None) -> None:
        self.command, self.port, self.env = command, port, env
        self.log = DATA / f"{self.name}-{port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Process:
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        try:
            self._wait_ready(timeout=60)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()
        if kind is None:
            self.log.unlink(missing_ok=True)  # kept when something went wrong

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log.read_text()[-2000:]}")
            try:
                httpx.get(self.url + "/ready", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer within {timeout} s; see {self.log}")

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        self.proc = None
        try:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # its own group: workers it left behind
            proc.wait(timeout=10)


class Mailstats(Process):
    name = "mailstats"

    def __init__(
        self, db: Database, workers: int = 1, settings: dict[str, str] | None = None
    ) -> None:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSTATS_")}
        env.update(MAILSTATS_SPOOL=str(db.spool))  # the access log as shipped: on
        env.update({f"MAILSTATS_{k.upper()}": v for k, v in (settings or {}).items()})
        command = [sys.executable, "-m", "mailstats", "serve", "--db", db.url,
                   "--port", str(port), "--public-url", f"http://127.0.0.1:{port}",
                   "--workers", str(workers)]  # fmt: skip
        super().__init__(command, port, env)
        self.workers = workers


class Nginx(Process):
    """nginx answering `return 302` on every /c/ path, from bench/nginx.conf."""

    name = "nginx"

    def __init__(self) -> None:
        port = free_port()
        prefix = DATA / f"nginx-{port}"
        prefix.mkdir(parents=True, exist_ok=True)
        conf = prefix / "nginx.conf"
        template = (HERE / "nginx.conf").read_text()
        conf.write_text(template.replace("{port}", str(port)).replace("{prefix}", str(prefix)))
        super().__init__(["nginx", "-p", str(prefix), "-c", str(conf)], port)
        self.prefix = prefix

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.prefix, ignore_errors=True)
