"""A PostgreSQL primary and a streaming hot standby of their own, on loopback ports.

Made with the server's own tools as the `postgres` user (the server refuses to run as
root): `initdb`, `pg_basebackup -R` for the standby, `pg_ctl promote` for a failover. The
machine's own server on 5432 is left alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.server import free_port


def _bindir() -> Path | None:
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    path = Path(out.stdout.strip())
    return path if (path / "initdb").exists() else None


def _as_postgres(*args: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.getuid() == 0 else list(args)


@dataclass
class Node:
    data: Path
    port: int
    log: Path

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"


@dataclass
class Pair:
    """A primary and its standby; `failover_url` follows whichever one takes writes."""

    bindir: Path
    primary: Node
    standby: Node

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            _as_postgres(str(self.bindir / "pg_ctl"), *args),
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip

    def start(self, node: Node) -> None:
        self._ctl("-D", str(node.data), "-o", f"-p {node.port}", "-l", str(node.log), "-w",
                  "start")  # fmt: skip

    def stop(self, node: Node) -> None:
        """Stop at once, as a crash would (no checkpoint)."""
        self._ctl("-D", str(node.data), "-m", "immediate", "-w", "stop")

    def promote(self) -> None:
        self._ctl("-D", str(self.standby.data), "-w", "promote")

    def failover_url(self, db: str) -> str:
        hosts = f"127.0.0.1:{self.primary.port},127.0.0.1:{self.standby.port}"
        return f"postgresql://postgres@{hosts}/{db}?target_session_attrs=read-write"

    def replayed(self, db: str, timeout: float = 20) -> None:
        """Wait until the standby has replayed everything the primary has written so far."""
        with psycopg.connect(self.primary.url(db), autocommit=True) as conn:
            row = conn.execute("SELECT pg_current_wal_lsn()").fetchone()
        assert row is not None
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.standby.url(db), autocommit=True) as conn:
            while time.monotonic() < deadline:
                done = conn.execute(
                    "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (row[0],)
                ).fetchone()
                if done and done[0]:
                    return
                time.sleep(0.05)
        raise RuntimeError("the standby did not catch up")


@contextmanager
def pair() -> Iterator[Pair]:
    """A primary with a database `mailstats`, and a streaming standby of it."""
    bindir = _bindir()
    if bindir is None or shutil.which("runuser") is None:
        if os.environ.get("CI"):
            raise RuntimeError("the PostgreSQL server tools are not installed")
        pytest.skip("the PostgreSQL server tools (initdb, pg_ctl) are not installed")
    folder = Path(tempfile.mkdtemp(prefix="ms-standby-"))
    os.chmod(folder, 0o755)
    shutil.chown(folder, "postgres", "postgres")
    primary = Node(folder / "primary", free_port(), folder / "primary.log")
    standby = Node(folder / "standby", free_port(), folder / "standby.log")
    p = Pair(bindir, primary, standby)
    started: list[Node] = []
    try:
        subprocess.run(
            _as_postgres(str(bindir / "initdb"), "-D", str(primary.data), "--auth=trust",
                         "-U", "postgres", "--no-sync"),
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        with open(primary.data / "postgresql.conf", "a") as conf:
            conf.write("listen_addresses = '127.0.0.1'\nunix_socket_directories = ''\n"
                       "fsync = off\nwal_level = replica\n")  # fmt: skip
        p.start(primary)
        started.append(primary)
        with psycopg.connect(primary.url(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE mailstats")
        subprocess.run(
            _as_postgres(str(bindir / "pg_basebackup"), "-h", "127.0.0.1", "-p",
                         str(primary.port), "-U", "postgres", "-D", str(standby.data), "-R",
                         "-X", "stream", "-c", "fast"),
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        p.start(standby)
        started.append(standby)
        # synchronous replication: a commit returns once the standby has it, so a promoted
        # standby has every commit the primary acknowledged (asynchronous replication may
        # lose the last ones). Set after the copy: the standby, once promoted, waits for none.
        with psycopg.connect(primary.url(), autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
            conn.execute("SELECT pg_reload_conf()")
        yield p
    finally:
        for node in started:
            subprocess.run(
                _as_postgres(str(bindir / "pg_ctl"), "-D", str(node.data), "-m", "immediate",
                             "stop"),
                capture_output=True, timeout=60,
            )  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)
