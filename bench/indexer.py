"""Measurements: the indexer's throughput (capture log -> events with the data set stored),
and the capture-to-visible lag under a steady click load below the maximum.

Throughput: clicks are appended to the capture log in batches of 20 (a group commit under
load), then the indexer's step runs until the log is empty; the ceiling writes the same
number of rows into `events` with the database's own bulk path (executemany / COPY), as the
import's ceiling does, without flags, counters or keys.
"""

from __future__ import annotations

import os
import random
import statistics
import threading
import time
from collections.abc import Callable

import httpx
import imports
import wrk
from databases import Database
from dataset import DataSet
from redirect import write_paths
from results import Goal, Result
from scale import Scale
from servers import Mailstats

from mailstats.kinds import CLICKS
from mailstats.store import Event, Store
from mailstats.store.derive import BATCH
from mailstats.store.events import event_row
from mailstats.tracking.tokens import Purpose, Signer

GOAL = {"sqlite": 100_000, "postgres": 50_000}
LAG_P99_S = 1.0
UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0.0.0"


def _clicks(data: DataSet, count: int, owned: bool) -> list[Event]:
    """Clicks as the tracking endpoint captures them (account 0), or with their owner."""
    rng, now = random.Random(5), int(time.time())
    out = []
    for _ in range(count):
        flow = rng.choice(data.flows)
        dest = flow.first_dest + rng.randrange(flow.dests)
        owner = (flow.account_id, flow.emailing_id) if owned else (0, 0)
        out.append(Event(CLICKS, os.urandom(16), now - rng.randrange(60), *owner, dest,
                         rng.choice(flow.links), ("192.0.2.7", UA)))  # fmt: skip
    return out


def measure_throughput(store: Store, data: DataSet, scale: Scale, backend: str) -> list[Result]:
    if not store.backend.indexer_role():
        raise RuntimeError("another process holds the indexer role")
    events = _clicks(data, scale.index_events, owned=False)
    for at in range(0, len(events), 20):
        store.capture_events(events[at : at + 20])
    t0 = time.perf_counter()
    steps = 0
    while store.derive(BATCH).taken:
        steps += 1
    seconds = time.perf_counter() - t0
    rows = [event_row(e, 0) for e in _clicks(data, len(events), owned=True)]
    if backend == "postgres":
        ceiling = imports._copy_postgres(store, rows, BATCH)
    else:
        ceiling = imports._insert_sqlite(store.backend.path, rows, BATCH)  # type: ignore[attr-defined]
    how = "COPY" if backend == "postgres" else "executemany"
    total = int(store.backend.fetch("SELECT count(*) FROM events")[0][0])
    note = (f"{len(events):,} clicks from the capture log in {steps} steps of {BATCH:,},"
            f" {total:,} events stored; ceiling: {how} of as many rows into events")  # fmt: skip
    return [Result("indexer", backend, len(events) / seconds, "events/s", len(rows) / ceiling,
                   Goal("value", ">=", GOAL[backend], "events/s"), note)]  # fmt: skip


class Probe:
    """Clicks one link every `every` seconds and times until the API lists each click."""

    def __init__(self, base: str, token: str, store: Store, data: DataSet, every: float) -> None:
        flow = data.flows[-1]
        self.dest, link = flow.first_dest, flow.links[0]
        self.click = f"{base}/c/{Signer(store.secret()).sign(Purpose.CLICK, self.dest, link)}"
        self.api = httpx.Client(base_url=base, params={"access_token": token}, timeout=10)
        self.every = every
        self.lags: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _last(self) -> int:
        page = self.api.get(f"/v2/ms/destination/{self.dest}/clicks",
                            params={"total": "true", "limit": 1}).json()  # fmt: skip
        start = max(0, page["total"] - 1)
        page = self.api.get(f"/v2/ms/destination/{self.dest}/clicks",
                            params={"start": start, "limit": 1}).json()  # fmt: skip
        return int(page["data"][0]["ID"]) if page["data"] else 0

    def _run(self) -> None:
        last, n = self._last(), 0
        while not self._stop.wait(self.every):
            n += 1
            marker = f"probe/{n}"
            r = self.api.get(self.click, headers={"user-agent": marker})
            sent = time.perf_counter()
            if r.status_code != 302:
                continue
            while time.perf_counter() - sent < 30:
                page = self.api.get(f"/v2/ms/destination/{self.dest}/clicks",
                                    params={"fields[]": f"ID>{last}", "total": "false"}).json()  # fmt: skip
                found = [i for i in page["data"] if i["useragent"] == marker]
                if found:
                    self.lags.append(time.perf_counter() - sent)
                    last = int(found[0]["ID"])
                    break
                time.sleep(0.005)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.api.close()


def measure_lag(db: Database, store: Store, data: DataSet, scale: Scale, max_rps: float,
                log: Callable[[str], None], settings: dict[str, str] | None = None,
                name: str = "lag_p99", goal_s: float = LAG_P99_S) -> list[Result]:  # fmt: skip
    """wrk paced to 80% of the best redirect rate (each connection waits between requests),
    one probe click every 100 ms timed from its 302 until the API lists it; `settings`
    for the server (such as capture on NATS)."""
    paths = write_paths(store, data, scale.tokens)
    target = 0.8 * max_rps
    delay_ms = 20
    connections = max(1, round(target * delay_ms / 1000))
    with (
        Mailstats(db, 1, settings) as server,
        Probe(server.url, data.token, store, data, 0.1) as probe,
    ):
        load = wrk.run(server.url, paths, scale.wrk_seconds, connections, delay_ms=delay_ms)
    lags = sorted(probe.lags)
    if not lags:
        raise RuntimeError("no probe click was seen in the API")
    p99 = lags[min(len(lags) - 1, round(0.99 * (len(lags) - 1)))]
    log(f"  lag at {load.rps:,.0f} req/s: p50 {statistics.median(lags) * 1000:.0f} ms,"
        f" p99 {p99 * 1000:.0f} ms over {len(lags)} probes")  # fmt: skip
    note = (f"wrk at {load.rps:,.0f} req/s ({load.rps / max_rps:.2f} of the best redirect rate,"
            f" {connections} connections each pausing {delay_ms} ms); {len(lags)} probe clicks,"
            f" p50 {statistics.median(lags) * 1000:.0f} ms, max {lags[-1] * 1000:.0f} ms")  # fmt: skip
    return [Result(name, db.backend, p99 * 1000, "ms", None,
                   Goal("value", "<", goal_s * 1000, "ms"), note)]  # fmt: skip
