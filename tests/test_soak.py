"""A bounded soak on loopback: tracking clicks and API reads at once against a real server.

No 5xx and no transport error, every 302 has exactly one stored click, and the server's
memory stays flat. MAILSTATS_SOAK_SECONDS sets the length (45 s on SQLite, a third of it
on PostgreSQL).
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests import server
from tests.test_durability import _assert_exactly_once, _tracked_links, _wait_for_all

SECONDS = float(os.environ.get("MAILSTATS_SOAK_SECONDS", "45"))
CLICKERS = 6
READERS = 2


def rss_kb(pid: int) -> tuple[int, int]:
    """VmRSS and VmHWM of a process, in kB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields["VmRSS"], fields["VmHWM"]


class Soak:
    """Clicker and reader threads plus a once-a-second RSS sampler, until `stop`."""

    def __init__(self, base: str, token: str, links: list[str], emailing: str, pid: int) -> None:
        self.base, self.token, self.links, self.emailing, self.pid = (
            base, token, links, emailing, pid
        )  # fmt: skip
        self.redirected: set[str] = set()
        self.latencies: list[float] = []
        self.problems: list[str] = []
        self.reads = 0
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        jobs: list[Callable[[], None]] = [
            *(lambda n=n: self._click(n) for n in range(CLICKERS)),
            *(lambda n=n: self._read(n) for n in range(READERS)),
            self._sample,
        ]
        self._threads = [threading.Thread(target=job) for job in jobs]

    def run(self, seconds: float) -> float:
        began = time.monotonic()
        for t in self._threads:
            t.start()
        time.sleep(seconds)
        self._stop.set()
        for t in self._threads:
            t.join()
        return time.monotonic() - began

    def _problem(self, what: str) -> None:
        with self._lock:
            self.problems.append(what)

    def _click(self, n: int) -> None:
        with httpx.Client(timeout=10) as http:
            i = 0
            while not self._stop.is_set():
                ua = f"soak/{n}/{i}"
                link = self.links[(i * CLICKERS + n) % len(self.links)]
                i += 1
                began = time.perf_counter()
                try:
                    r = http.get(link, headers={"user-agent": ua})
                except httpx.TransportError as exc:
                    self._problem(f"click transport error: {exc!r}")
                    continue
                took = time.perf_counter() - began
                with self._lock:
                    self.latencies.append(took)
                    if r.status_code == 302:
                        self.redirected.add(ua)
                if r.status_code != 302:
                    self._problem(f"click answered {r.status_code}")

    def _read(self, n: int) -> None:
        resources = [
            ("ms/clicks", {"limit": "1000", "total": "1"}),
            ("ms/clicks", {"fields[]": "ID>0", "limit": "1000", "total": "0"}),
            (f"ms/emailing/{self.emailing}/clicks", {"unique": "1", "start": "100"}),
            (f"ms/emailing/{self.emailing}/statistics", {}),
        ]
        with httpx.Client(base_url=self.base, timeout=30) as http:
            i = n
            while not self._stop.is_set():
                resource, params = resources[i % len(resources)]
                i += 1
                try:
                    r = http.get(f"/v2/{resource}", params={"access_token": self.token, **params})
                except httpx.TransportError as exc:
                    self._problem(f"read transport error: {exc!r}")
                    continue
                with self._lock:
                    self.reads += 1
                if r.status_code != 200:
                    self._problem(f"{resource} answered {r.status_code}: {r.text[:200]}")

    def _sample(self) -> None:
        while not self._stop.wait(1.0):
            self.samples.append(rss_kb(self.pid)[0])


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def test_soak_clicks_and_reads(
    backend: str,
    db_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    record_property: Callable[[str, object], None],
) -> None:
    seconds = SECONDS if backend == "sqlite" else SECONDS / 3
    token = server.make_token(db_url)
    env = {"MAILSTATS_SPOOL": str(tmp_path / "spool")}
    with server.running(db_url, env=env) as srv:
        links = _tracked_links(srv.url, token, 50)
        emailing = httpx.get(f"{srv.url}/v2/ms/emailings", params={"access_token": token}).json()[
            "data"
        ][0]["id"]
        soak = Soak(srv.url, token, links, emailing, srv.process.pid)
        elapsed = soak.run(seconds)
        peak_kb = rss_kb(srv.process.pid)[1]
        agents = _wait_for_all(db_url, soak.redirected)
        assert srv.stop() == 0

    third = max(1, len(soak.samples) // 3)
    first_mb, last_mb = max(soak.samples[:third]) / 1024, max(soak.samples[-third:]) / 1024
    clicks = len(soak.latencies)
    figures = {
        "backend": backend,
        "seconds": round(elapsed, 1),
        "requests": clicks + soak.reads,
        "clicks": clicks,
        "clicks_per_s": round(clicks / elapsed),
        "reads": soak.reads,
        "p50_ms": round(statistics.median(soak.latencies) * 1000, 1),
        "p99_ms": round(percentile(soak.latencies, 0.99) * 1000, 1),
        "rss_first_third_mb": round(first_mb, 1),
        "rss_last_third_mb": round(last_mb, 1),
        "peak_rss_mb": round(peak_kb / 1024, 1),
    }
    for name, value in figures.items():
        record_property(name, value)
    line = "soak " + " ".join(f"{k}={v}" for k, v in figures.items())
    print(line)
    with capsys.disabled():
        print("\n" + line)

    assert soak.problems == [], soak.problems[:10]
    assert clicks > 20 * seconds and soak.reads > seconds
    _assert_exactly_once(agents, soak.redirected)
    # Flat memory: what the server holds once warm may not keep growing. The last third's
    # peak may exceed the first third's by half, plus 20 MB for allocator and cache slack.
    assert last_mb <= first_mb * 1.5 + 20, figures
