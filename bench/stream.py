"""Measurement: the click redirect with capture on a NATS JetStream stream (a cluster of
three on loopback, three replicas) against capture in PostgreSQL: the same server, data
set and load in the same run, so the ratio holds on a busy machine too."""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import indexer
import redirect
from databases import Database
from dataset import DataSet
from results import Goal, Result
from scale import Scale
from servers import HERE, Mailstats

from mailstats.store import Store, open_store

sys.path.insert(0, str(HERE.parent))  # the tests' cluster of three
from tests.nats import cluster

GOAL = 0.7  # of the redirects/s with capture in PostgreSQL
P99_MS = 20.0
LAG_P99_S = 2.0  # capture to visible at 80% of the rate above


def _drained(store: Store, timeout: float = 60) -> float:
    """Seconds until the stream's backlog is derived (the indexer's pace after a burst)."""
    began = time.monotonic()
    while store.backlog().events and time.monotonic() - began < timeout:
        time.sleep(0.05)
    return time.monotonic() - began


def measure(db: Database, store: Store, data: DataSet, scale: Scale,
            log: Callable[[str], None]) -> list[Result]:  # fmt: skip
    if db.backend != "postgres":
        return []  # capture on NATS needs PostgreSQL
    paths = redirect.write_paths(store, data, scale.tokens)
    base = redirect._mailstats(db, store, paths, scale, 1, log)
    with tempfile.TemporaryDirectory(prefix="bench-nats-") as folder, cluster(Path(folder)) as nats:
        streamed = open_store(db.url, migrate=False, capture=nats.urls)
        try:
            with Mailstats(db, 1, {"capture": nats.urls}) as server:
                run = redirect._load(server, paths, scale, 1, streamed)
                drain = _drained(streamed)
            lag = indexer.measure_lag(db, store, data, scale, run.load.rps, log,
                                      {"capture": nats.urls}, "lag_nats_p99", LAG_P99_S)  # fmt: skip
        finally:
            streamed.close()
    log(f"  capture on NATS: {run.load.rps:,.0f} requests/s, p99 {run.load.p99_ms:.2f} ms,"
        f" {run.cpu_us:.0f} µs CPU per request, {run.load.redirects:,} 302s,"
        f" {run.stored:,} stored, {run.backlog:,} stream messages waiting as wrk ended,"
        f" derived {drain:.1f} s later")  # fmt: skip
    lost = "OK" if run.stored >= run.load.redirects else "MISSING from the database"
    note = (
        f"1 worker, {scale.connections} connections, {scale.wrk_seconds} s; a 3-node cluster"
        f" on this machine, 3 replicas; ceiling = capture in PostgreSQL, same run"
        f" ({base.load.rps:,.0f}/s, p99 {base.load.p99_ms:.2f} ms); wrk counted"
        f" {run.load.redirects:,} 302s and {run.load.errors} errors, {run.stored:,} clicks"
        f" stored ({lost}); {redirect.spooled(db)} events in the spool; the stream's backlog"
        f" ({run.backlog:,} messages as wrk ended) derived {drain:.1f} s later"
    )
    return [
        *lag,
        Result("redirect_nats", db.backend, run.load.rps, "req/s", base.load.rps,
               Goal("ratio", ">=", GOAL), note),
        Result("redirect_nats_p99", db.backend, run.load.p99_ms, "ms", None,
               Goal("value", "<", P99_MS, "ms"), f"ours p50 {run.load.p50_ms:.2f} ms"),
        Result("redirect_nats_cpu", db.backend, run.cpu_us, "µs/req", base.cpu_us, None,
               "server CPU per request; ratio = capture on NATS / capture in PostgreSQL"),
    ]  # fmt: skip
