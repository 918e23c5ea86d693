"""A real NATS JetStream cluster of three on loopback ports of its own, for tests.

The machine's own NATS (4222) is a single node and is left alone. Each node is a
`nats-server` process with its own store folder; a node killed with SIGKILL and started
again on the same folder rejoins, and so does the whole cluster.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.server import free_port

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


@dataclass
class Node:
    name: str
    client: int
    route: int
    monitor: int
    store: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.client}"


@dataclass
class Cluster:
    nodes: list[Node]
    folder: Path
    name: str = "mstest"
    logs: list[Path] = field(default_factory=list)

    @property
    def urls(self) -> str:
        """The `capture` setting for this cluster."""
        return ",".join(n.url for n in self.nodes)

    def start(self, node: Node) -> None:
        routes = ",".join(f"nats-route://127.0.0.1:{n.route}" for n in self.nodes if n is not node)
        log = self.folder / f"{node.name}.log"
        args = [NATS_SERVER, "-a", "127.0.0.1", "-p", str(node.client), "-n", node.name, "-js",
                "-sd", str(node.store), "--cluster_name", self.name,
                "--cluster", f"nats://127.0.0.1:{node.route}", "--routes", routes,
                "-m", str(node.monitor), "-l", str(log)]  # fmt: skip
        node.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill(self, node: Node) -> None:
        if node.process is not None and node.process.poll() is None:
            node.process.send_signal(signal.SIGKILL)
            node.process.wait(10)
        node.process = None

    def stop_all(self) -> None:
        """Every node stopped at once, as an operator or a failing rack stops them (SIGTERM:
        each flushes its store). A hard kill of every node at the same instant can lose the
        last acknowledged messages on nats-server 2.9, which writes its store behind the
        acknowledgement and has no `sync_interval: always` (2.10 has): see docs/scaling.md."""
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.send_signal(signal.SIGTERM)
        for node in self.nodes:
            if node.process is not None:
                node.process.wait(30)
            node.process = None

    def start_all(self) -> None:
        for node in self.nodes:
            if node.process is None:
                self.start(node)

    def jsz(self, node: Node) -> dict[str, object]:
        url = f"http://127.0.0.1:{node.monitor}/jsz?streams=true&config=true"
        data: dict[str, object] = httpx.get(url, timeout=2).json()
        return data

    def wait_ready(self, timeout: float = 30) -> None:
        """Every running node healthy and a meta leader elected."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                up = [n for n in self.nodes if n.process is not None]
                healthy = all(
                    httpx.get(f"http://127.0.0.1:{n.monitor}/healthz", timeout=1).status_code == 200
                    for n in up
                )
                meta = self.jsz(up[0]).get("meta_cluster") or {}
                if healthy and isinstance(meta, dict) and meta.get("leader"):
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError("the NATS cluster did not become ready")

    def stream_leader(self, stream: str, timeout: float = 20) -> Node:
        """The node that leads `stream` now."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for node in self.nodes:
                if node.process is None:
                    continue
                try:
                    data = self.jsz(node)
                except (httpx.TransportError, ValueError):
                    continue
                for account in data.get("account_details") or []:  # type: ignore[attr-defined]
                    for s in account.get("stream_detail") or []:
                        leader = (s.get("cluster") or {}).get("leader")
                        if s.get("name") == stream and leader:
                            return next(n for n in self.nodes if n.name == leader)
            time.sleep(0.1)
        raise RuntimeError(f"no leader for the stream {stream}")


@contextmanager
def cluster(folder: Path, size: int = 3) -> Iterator[Cluster]:
    """A cluster of `size` nodes, ready; every node killed at the end."""
    if not os.path.exists(NATS_SERVER):
        if os.environ.get("CI"):
            raise RuntimeError("nats-server is not installed")
        pytest.skip("nats-server is not installed")
    nodes = []
    for i in range(size):
        store = folder / f"n{i}"
        store.mkdir(parents=True)
        nodes.append(Node(f"n{i}", free_port(), free_port(), free_port(), store))
    c = Cluster(nodes, folder)
    try:
        c.start_all()
        c.wait_ready()
        yield c
    finally:
        c.stop_all()
