"""What operators point monitors at: /healthz, /readyz and /metrics (Prometheus text format).

/readyz runs every check in READY_CHECKS; each returns None when all is well or the reason
it is not, and any reason makes the answer 503. A check is one function added to the list.

/metrics is counted at the ASGI level in web/app.py: a count per (route, status) and the
redirect's latency in histogram buckets, plain numbers turned into series when scraped, so
the click path pays for two clock reads and two increments (bench/metrics_hook.py). Pool use and the spool are read only when scraped.
/metrics answers loopback peers, the configured `metrics_allow` networks, or a caller with
`Authorization: Bearer <metrics_token>`; anyone else gets 404, as if it did not exist.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from mailstats.web import context

if TYPE_CHECKING:
    from mailstats.web.context import State

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
# The redirect is meant to take well under a millisecond; the buckets resolve that range.
_REDIRECT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5)
_TRACKING_ROUTES = {"c": "/c/{token}", "o": "/o/{token}", "u": "/u/{token}"}


def spool_bytes(folder: Path) -> int:
    """How many bytes wait in the spool for the database (0 when it has no files)."""
    try:
        return sum(entry.stat().st_size for entry in folder.iterdir() if entry.is_file())
    except FileNotFoundError:
        return 0


def check_database(st: State) -> str | None:
    try:
        pool = getattr(st.store.backend, "pool", None)
        if pool is not None:  # PostgreSQL: ask within a short wait, not the pool's usual one
            with pool.connection(timeout=st.settings.ready_timeout) as conn:
                conn.execute("SELECT 1").fetchall()
        else:
            st.store.backend.fetch("SELECT 1 FROM meta LIMIT 1")
    except Exception as exc:
        return f"database unreachable: {type(exc).__name__}"
    return None


def check_spool(st: State) -> str | None:
    waiting = spool_bytes(st.writer.spool.folder)
    limit = st.settings.ready_spool_bytes
    if waiting > limit:
        return f"spool holds {waiting} bytes (threshold {limit})"
    return None


def check_backlog(st: State) -> str | None:
    """The indexer keeps up: nothing captured waits longer than ready_backlog_seconds."""
    try:
        backlog = st.store.backlog()
    except Exception as exc:
        return f"capture log unreadable: {type(exc).__name__}"
    limit = st.settings.ready_backlog_seconds
    if backlog.age() > limit:
        return f"derive backlog of {backlog.events} events, the oldest {backlog.age():.0f} s old (threshold {limit:g} s)"
    return None


# Each check: the state in, None or the reason the server is not ready out.
READY_CHECKS: list[Callable[[State], str | None]] = [check_database, check_spool, check_backlog]


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok\n")


async def readyz(request: Request) -> Response:
    st = context.state(request)
    reasons = await context.run(lambda: [r for check in READY_CHECKS if (r := check(st))])
    if reasons:
        return PlainTextResponse("not ready: " + "; ".join(reasons) + "\n", status_code=503)
    return PlainTextResponse("ready\n")


class Metrics:
    """The app's registry and the hooks web/app.py calls per request.

    Requests are counted in a plain dict and the redirect's latency in a list of bucket
    counts, both touched only on the event loop's thread, and turned into Prometheus
    series when scraped: prometheus-client's own counters take a lock per increment,
    several microseconds on the click path, which this way costs well under one.
    """

    def __init__(self, st: State) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests: dict[tuple[str, int], int] = {}
        self.tracking: dict[tuple[str, int], int] = {}
        self.redirect_buckets = [0] * (len(_REDIRECT_BUCKETS) + 1)  # the last: above all
        self.redirect_sum = 0.0
        self.registry.register(_RequestCollector(self))
        self.registry.register(_StateCollector(st))

    def count(self, route: str, status: int) -> None:
        key = (route, status)
        self.requests[key] = self.requests.get(key, 0) + 1

    def tracked(self, letter: str, status: int, seconds: float) -> None:
        """A tracking request answered: counted, and timed if it was a click."""
        key = (letter, status)  # the route's letter; named at scrape time
        self.tracking[key] = self.tracking.get(key, 0) + 1
        if letter == "c":
            self.redirect_buckets[bisect_left(_REDIRECT_BUCKETS, seconds)] += 1
            self.redirect_sum += seconds

    def allowed(self, request: Request) -> bool:
        settings = context.state(request).settings
        token = settings.metrics_token
        if token is not None:
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() == "bearer" and hmac.compare_digest(
                given.strip().encode(), token.reveal().encode()
            ):
                return True
        peer = request.client.host if request.client else ""
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in net for net in (*_LOOPBACK, *settings.metrics_allow))

    async def endpoint(self, request: Request) -> Response:
        if not self.allowed(request):
            return PlainTextResponse("Not Found\n", status_code=404)
        body = await context.run(generate_latest, self.registry)
        return Response(body, media_type=CONTENT_TYPE)


class _RequestCollector(Collector):
    """The request counts and the redirect histogram, as they are at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        m = self.metrics
        requests = CounterMetricFamily(
            "mailstats_http_requests", "HTTP requests answered, by route and status",
            labels=["route", "status"],
        )  # fmt: skip
        tracked = {(_TRACKING_ROUTES[k], s): n for (k, s), n in dict(m.tracking).items()}
        for (route, status), n in sorted({**dict(m.requests), **tracked}.items()):
            requests.add_metric([route, str(status)], n)
        yield requests
        counts = list(m.redirect_buckets)
        cumulative, running = [], 0
        for bound, n in zip((*map(str, _REDIRECT_BUCKETS), "+Inf"), counts, strict=True):
            running += n
            cumulative.append((bound, running))
        redirect = HistogramMetricFamily(
            "mailstats_redirect_seconds", "Time from a click request to its redirect being sent"
        )
        redirect.add_metric([], cumulative, sum_value=m.redirect_sum)
        yield redirect


class _StateCollector(Collector):
    """Figures read at scrape time: database pool use and the spool."""

    def __init__(self, st: State) -> None:
        self.st = st

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        pool = getattr(self.st.store.backend, "pool", None)
        if pool is not None:
            stats = pool.get_stats()
            size = GaugeMetricFamily("mailstats_db_pool_size", "Connections the pool holds")
            size.add_metric([], stats.get("pool_size", 0))
            yield size
            idle = GaugeMetricFamily("mailstats_db_pool_available", "Idle connections")
            idle.add_metric([], stats.get("pool_available", 0))
            yield idle
            waiting = GaugeMetricFamily(
                "mailstats_db_pool_waiting", "Requests waiting for a connection"
            )
            waiting.add_metric([], stats.get("requests_waiting", 0))
            yield waiting
            limit = GaugeMetricFamily("mailstats_db_pool_max", "Most connections the pool opens")
            limit.add_metric([], stats.get("pool_max", getattr(pool, "max_size", 0)))
            yield limit
        else:
            conns = getattr(self.st.store.backend, "_connections", [])
            size = GaugeMetricFamily("mailstats_db_pool_size", "Open SQLite connections")
            size.add_metric([], len(conns))
            yield size
        spool = GaugeMetricFamily("mailstats_spool_bytes", "Bytes in the spool, not yet replayed")
        spool.add_metric([], spool_bytes(self.st.writer.spool.folder))
        yield spool
        yield from _derive_figures(self.st)
        up = GaugeMetricFamily("mailstats_start_time_seconds", "When this process started")
        up.add_metric([], _STARTED)
        yield up


_STARTED = time.time()


def _derive_figures(st: State) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    """The capture log's backlog (for the whole database) and this process's indexer."""
    try:
        backlog = st.store.backlog()
    except Exception:
        return  # the database is away: /readyz says so
    events = GaugeMetricFamily("mailstats_derive_backlog_events", "Captured, not derived yet")
    events.add_metric([], backlog.events)
    yield events
    if backlog.messages is not None:
        messages = GaugeMetricFamily(
            "mailstats_derive_backlog_messages", "Stream messages not derived yet (capture on NATS)"
        )
        messages.add_metric([], backlog.messages)
        yield messages
    age = GaugeMetricFamily(
        "mailstats_derive_backlog_age_seconds", "Age of the oldest event not derived yet"
    )
    age.add_metric([], backlog.age())
    yield age
    indexer = st.indexer
    if indexer is None:
        return
    lag = GaugeMetricFamily(
        "mailstats_derive_lag_seconds",
        "Capture to visibility of the last batch this process derived",
    )
    lag.add_metric([], indexer.lag)
    yield lag
    derived = CounterMetricFamily("mailstats_derived_events", "Events this process derived")
    derived.add_metric([], indexer.derived)
    yield derived
    dropped = CounterMetricFamily(
        "mailstats_dropped_hits", "Tracking hits dropped at derive (no such destination)"
    )
    dropped.add_metric([], indexer.dropped)
    yield dropped
