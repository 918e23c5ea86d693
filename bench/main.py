"""The benchmark suite behind bench/run: per backend, build a data set, measure, report.

Prints one JSON object per figure on stdout as it is measured, then a table; progress goes
to stderr. A Markdown report of the run is left in bench/data/report-<scale>.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dashboard
import emailing_stats
import export
import geo
import imports
import indexer
import machine
import memory
import paging
import redirect
import relay
import stream
import verdicts
import webhooks
from api import Api
from databases import DATA, Database, database, postgres_available, settle, versions
from dataset import DataSet, build
from profiler import profile_redirect
from results import Result, emit, notes, table
from scale import FULL, QUICK, Scale
from servers import Mailstats

from mailstats.store import Store, open_store

API_STEPS: dict[str, Callable[..., list[Result]]] = {
    "export": export.measure,
    "deep": paging.measure_deep,
    "ids": paging.measure_ids,
    "unique": paging.measure_unique,
    "statistics": emailing_stats.measure,
    "dashboard": dashboard.measure,
    "import": imports.measure,
}
NAMES = (
    "redirect",
    "nats",
    "lag",
    *API_STEPS,
    "memory",
    "indexer",
    "geo",
    "relay",
    "webhooks",
    "verdicts",
)
_T0 = time.monotonic()


def log(message: str) -> None:
    print(f"[{time.monotonic() - _T0:6.1f}s] {message}", file=sys.stderr, flush=True)


@dataclass
class Run:
    scale: Scale
    only: set[str]
    keep: bool
    reuse: bool
    profile: bool
    results: list[Result] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def wants(self, name: str) -> bool:
        return not self.only or name in self.only


def _build(run: Run, db: Database, store: Store) -> DataSet:
    log(f"{db.backend}: building {run.scale.clicks:,} clicks over {run.scale.days} days")
    data = build(store, run.scale.clicks, run.scale.days, run.scale.batch, log)
    t0 = time.monotonic()
    settle(store)
    log(f"  settled (VACUUM ANALYZE or WAL checkpoint) in {time.monotonic() - t0:.1f} s")
    kinds = ", ".join(f"{n:,} {k}" for k, n in data.counts.most_common())
    note = f"{data.events:,} events ({kinds}) in {data.seconds:.0f} s through Store.insert_events"
    emit(Result("build", db.backend, data.events / data.seconds, "events/s", note=note),
         run.results)  # fmt: skip
    return data


def _step(run: Run, backend: str, name: str, measure: Callable[[], list[Result]]) -> None:
    """One measurement; a failure is logged and reported, and the run goes on."""
    log(f"{backend}: {name}")
    try:
        for result in measure():
            emit(result, run.results)
    except Exception as exc:
        log(f"{backend}: {name} FAILED: {exc!r}")
        run.failures.append(f"{name} ({backend}): {exc!r}")


def _measure(run: Run, db: Database, store: Store, data: DataSet) -> None:
    backend, scale = db.backend, run.scale
    if run.wants("redirect"):
        _step(run, backend, "redirect", lambda: redirect.measure(db, store, data, scale, log))
    if run.wants("nats"):  # PostgreSQL only: capture on NATS against capture in the database
        _step(run, backend, "nats", lambda: stream.measure(db, store, data, scale, log))
    if run.wants("lag"):
        best = [r.value for r in run.results if r.name == "redirect" and r.backend == backend]
        rate = best[0] if best else 5_000.0  # without a redirect run: a rate it sustains
        _step(run, backend, "lag",
              lambda: indexer.measure_lag(db, store, data, scale, rate, log))  # fmt: skip
    steps = [name for name in API_STEPS if run.wants(name)]
    if steps:
        with Mailstats(db, workers=1) as server, Api(server.url, data.token) as api:
            for name in steps:
                step = functools.partial(API_STEPS[name], api, store, data, scale, backend)
                _step(run, backend, name, step)
    if run.wants("memory"):
        _step(run, backend, "memory", lambda: memory.measure(db, data))
    if run.wants("indexer"):  # last: it adds clicks to the data set
        _step(run, backend, "indexer",
              lambda: indexer.measure_throughput(store, data, scale, backend))  # fmt: skip
    if run.wants("geo"):  # it adds clicks too
        _step(run, backend, "geo", lambda: geo.measure(store, data, scale, backend, log))
    if run.wants("relay"):  # on a database of its own
        count = 300 if scale.name == "quick" else 2000
        _step(run, backend, "relay", lambda: [relay.measure(backend, count)])
    if run.wants("webhooks"):  # on a database of its own, to a receiver on loopback
        events = 5000 if scale.name == "quick" else 20000
        _step(run, backend, "webhooks", lambda: [webhooks.measure(backend, events)])
    if run.wants("verdicts"):  # on a database of its own, from the labelled corpus
        _step(run, backend, "verdicts", lambda: verdicts.measure(backend))
    if run.profile:
        paths = redirect.write_paths(store, data, scale.tokens)
        summary = profile_redirect(db, paths, scale)
        log(f"{backend}: profile in {summary}" if summary else "py-spy not found")


def _data(run: Run, db: Database, store: Store) -> DataSet:
    if run.reuse and db.meta.exists():
        log(f"{db.backend}: reusing the data set of {db.meta.name}")
        return DataSet.load(db.meta)
    data = _build(run, db, store)
    data.save(db.meta)
    return data


# Measurements on databases of their own: `--only` these alone builds no data set.
STANDALONE = {"relay", "verdicts"}


def run_backend(run: Run, backend: str) -> None:
    db = database(backend, run.scale.name)
    if backend == "postgres" and (why := postgres_available()):
        log(f"postgres skipped: {why}")
        return
    if run.only and run.only <= STANDALONE:
        DATA.mkdir(parents=True, exist_ok=True)  # for the report
        if run.wants("relay"):
            count = 300 if run.scale.name == "quick" else 2000
            _step(run, backend, "relay", lambda: [relay.measure(backend, count)])
        if run.wants("verdicts"):
            _step(run, backend, "verdicts", lambda: verdicts.measure(backend))
        return
    if not (run.reuse and db.meta.exists() and db.exists()):
        db.create()
    try:
        store = open_store(db.url)
        try:
            data = _data(run, db, store)
            run.facts[backend] = {**versions(store), "load average before measuring": _load()}
            _measure(run, db, store, data)
        finally:
            store.close()
    finally:
        if not (run.keep or run.reuse):
            db.drop()


def _load() -> str:
    """The 1, 5 and 15 minute load averages: others' work on a shared machine shows here."""
    return " ".join(open("/proc/loadavg").read().split()[:3])


def _report(run: Run, seconds: float) -> str:
    facts = "\n".join(
        f"- {name}: " + "; ".join(f"{k} {v}" for k, v in values.items())
        for name, values in run.facts.items()
    )
    return (
        f"# bench/run ({run.scale.name}), {time.strftime('%Y-%m-%d %H:%M %Z')}\n\n"
        f"{facts}\n- wall time: {seconds:.0f} s\n\n{table(run.results)}\n\n{notes(run.results)}\n"
        + "".join(f"- FAILED {failure}\n" for failure in run.failures)
    )


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a small data set (< 5 minutes)")
    parser.add_argument("--backend", choices=("sqlite", "postgres", "all"), default="all")
    parser.add_argument("--only", action="append", choices=NAMES, metavar="NAME",
                        help=f"run only this measurement (repeatable): {', '.join(NAMES)}")  # fmt: skip
    parser.add_argument("--clicks", type=int, help="size the data set by this many clicks")
    parser.add_argument("--keep", action="store_true", help="leave the data set behind")
    parser.add_argument("--reuse", action="store_true",
                        help="measure the data set an earlier --keep run left (implies --keep)")  # fmt: skip
    parser.add_argument("--profile", action="store_true",
                        help="also sample the redirect server with py-spy (an extra run)")  # fmt: skip
    return parser.parse_args(argv)


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    args = _parse(argv)
    signal.signal(signal.SIGTERM, _stop)
    scale = QUICK if args.quick else FULL
    if args.clicks:
        scale = dataclasses.replace(scale, clicks=args.clicks)
    run = Run(scale, set(args.only or ()), args.keep, args.reuse, args.profile)
    run.facts["machine"] = machine.describe()
    log(f"machine: {run.facts['machine']}")
    backends = ("sqlite", "postgres") if args.backend == "all" else (args.backend,)
    try:
        for backend in backends:
            run_backend(run, backend)
    except KeyboardInterrupt:
        log("interrupted; servers stopped, scratch data removed")
        return 130
    seconds = time.monotonic() - _T0
    print("\n" + table(run.results))
    for failure in run.failures:
        print(f"FAILED {failure}")
    report = DATA / f"report-{run.scale.name}.md"
    report.write_text(_report(run, seconds))
    log(f"done in {seconds:.0f} s; report in {report}")
    return 1 if run.failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
