"""Measurement 1: the click redirect under load, each click durably stored before the 302."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import wrk
from databases import DATA, Database
from dataset import DataSet
from results import Goal, Result
from scale import Scale
from servers import Mailstats, Nginx, Process, tree_cpu_seconds

from mailstats.store import Store
from mailstats.tracking.tokens import Purpose, Signer

GOAL = {"sqlite": 0.30, "postgres": 0.25}
P99_MS = 10.0


@dataclass(frozen=True)
class Run:
    workers: int  # 0: nginx
    load: wrk.Load
    cpu_us: float  # server CPU time per request, all its processes
    stored: int = 0  # clicks committed while the measured run lasted
    backlog: int = 0  # events captured and not derived yet as the run ended


def write_paths(store: Store, data: DataSet, count: int) -> Path:
    """Click paths signed for real destinations and links, one per line."""
    signer, rng = Signer(store.secret()), random.Random(7)
    lines = []
    for _ in range(count):
        flow = rng.choice(data.flows)
        dest = flow.first_dest + rng.randrange(flow.dests)
        lines.append(f"/c/{signer.sign(Purpose.CLICK, dest, rng.choice(flow.links))}")
    path = DATA / "click-paths.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def last_id(store: Store) -> int:
    return int(store.backend.fetch("SELECT coalesce(max(id), 0) FROM events")[0][0])


def clicks_after(store: Store, event_id: int) -> int:
    mark = store.backend.placeholder
    sql = f"SELECT count(*) FROM events WHERE kind = 1 AND id > {mark}"
    return int(store.backend.fetch(sql, [event_id])[0][0])


def settled_clicks(store: Store, event_id: int, timeout: float = 20.0) -> int:
    """Clicks stored after `event_id`, once the count stops moving (spool replays included)."""
    deadline, seen = time.monotonic() + timeout, -1
    while time.monotonic() < deadline:
        count = clicks_after(store, event_id)
        if count == seen:
            return count
        seen = count
        time.sleep(1.5)
    return seen


def _load(server: Process, paths: Path, scale: Scale, workers: int, store: Store | None) -> Run:
    """Warm up, then the measured run; with `store`, count the clicks it stored."""
    wrk.run(server.url, paths, scale.warmup_seconds, scale.connections)
    time.sleep(0.5)
    deadline = time.monotonic() + 30
    while store and store.backlog().events and time.monotonic() < deadline:
        time.sleep(0.1)  # the warm-up's clicks get their IDs before `before` is read
    before = last_id(store) if store else 0
    cpu = tree_cpu_seconds(server.pid)
    load = wrk.run(server.url, paths, scale.wrk_seconds, scale.connections)
    cpu_us = (tree_cpu_seconds(server.pid) - cpu) / max(1, load.requests) * 1e6
    backlog = store.backlog().events if store else 0
    return Run(workers, load, cpu_us, settled_clicks(store, before) if store else 0, backlog)


def _nginx(paths: Path, scale: Scale, log: Callable[[str], None]) -> Run:
    with Nginx() as nginx:
        run = _load(nginx, paths, scale, 0, None)
    log(f"  nginx: {run.load.rps:,.0f} requests/s, p99 {run.load.p99_ms:.2f} ms,"
        f" {run.cpu_us:.0f} µs CPU per request")  # fmt: skip
    return run


def _mailstats(db: Database, store: Store, paths: Path, scale: Scale, workers: int,
               log: Callable[[str], None]) -> Run:  # fmt: skip
    with Mailstats(db, workers) as server:
        run = _load(server, paths, scale, workers, store)
    log(f"  mailstats, {workers} worker(s): {run.load.rps:,.0f} requests/s,"
        f" p99 {run.load.p99_ms:.2f} ms, {run.cpu_us:.0f} µs CPU per request,"
        f" {run.load.redirects:,} 302s, {run.stored:,} stored,"
        f" {run.backlog:,} not derived yet as wrk ended")  # fmt: skip
    return run


def spooled(db: Database) -> int:
    """Events the servers wrote to their spool (the database failed or was too slow)."""
    return sum(len(p.read_bytes().splitlines()) for p in db.spool.glob("*.spool"))


def _results(db: Database, ceiling: Run, runs: list[Run], scale: Scale) -> list[Result]:
    backend = db.backend
    best = max(runs, key=lambda r: r.load.rps)
    other = next(r for r in runs if r is not best)
    lost = "OK" if best.stored >= best.load.redirects else "MISSING from the database"
    note = (
        f"{best.workers} worker(s) (the better; {other.workers}: {other.load.rps:,.0f}/s);"
        f" {scale.connections} connections, {scale.tokens:,} tokens, {scale.wrk_seconds} s;"
        f" wrk counted {best.load.redirects:,} 302s and {best.load.errors} errors,"
        f" {best.stored:,} clicks stored ({lost}); {spooled(db)} events in the spool;"
        f" {best.backlog:,} events not derived yet as wrk ended"
    )
    return [
        Result("redirect", backend, best.load.rps, "req/s", ceiling.load.rps,
               Goal("ratio", ">=", GOAL[backend]), note),
        Result("redirect_cpu", backend, best.cpu_us, "µs/req", ceiling.cpu_us, None,
               "server CPU time (user + system, all its processes) per request: robust to"
               " others' load on a shared machine; no goal, ratio = ours / nginx"),
        Result("redirect_p99", backend, best.load.p99_ms, "ms", None,
               Goal("value", "<", P99_MS, "ms"),
               f"nginx p99 {ceiling.load.p99_ms:.2f} ms; ours p50 {best.load.p50_ms:.2f} ms"),
    ]  # fmt: skip


def measure(db: Database, store: Store, data: DataSet, scale: Scale,
            log: Callable[[str], None]) -> list[Result]:  # fmt: skip
    """nginx first, then `mailstats serve` with 1 and 2 workers; the better one counts."""
    paths = write_paths(store, data, scale.tokens)
    ceiling = _nginx(paths, scale, log)
    runs = [_mailstats(db, store, paths, scale, workers, log) for workers in (1, 2)]
    return _results(db, ceiling, runs, scale)
