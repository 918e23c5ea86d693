"""What operators point monitors at: /healthz, /readyz and /metrics (Prometheus text format).

/readyz runs every check in READY_CHECKS; each returns None when all is well or the reason
it is not, and any reason makes the answer 503. A check is one function added to the list.

/metrics is counted at the ASGI level in web/app.py: one counter child per (route, status)
bound once and kept, and the redirect's latency in a histogram, so the click path pays for
two clock reads and two increments. Pool use and the spool are read only when scraped.
/metrics answers loopback peers, the configured `metrics_allow` networks, or a caller with
`Authorization: Bearer <metrics_token>`; anyone else gets 404, as if it did not exist.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from mailstats.web import context

if TYPE_CHECKING:
    from mailstats.web.context import State

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# The *_created series say nothing an operator needs.
disable_created_metrics()  # type: ignore[no-untyped-call]
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


# Each check: the state in, None or the reason the server is not ready out.
READY_CHECKS: list[Callable[[State], str | None]] = [check_database, check_spool]


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok\n")


async def readyz(request: Request) -> Response:
    st = context.state(request)
    reasons = await context.run(lambda: [r for check in READY_CHECKS if (r := check(st))])
    if reasons:
        return PlainTextResponse("not ready: " + "; ".join(reasons) + "\n", status_code=503)
    return PlainTextResponse("ready\n")


class Metrics:
    """The app's registry and the hooks web/app.py calls per request."""

    def __init__(self, st: State) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "mailstats_http_requests",
            "HTTP requests answered, by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.redirect = Histogram(
            "mailstats_redirect_seconds",
            "Time from a click request to its redirect being sent",
            buckets=_REDIRECT_BUCKETS,
            registry=self.registry,
        )
        self._children: dict[tuple[str, int], Any] = {}
        self.registry.register(_StateCollector(st))

    def count(self, route: str, status: int) -> None:
        child = self._children.get((route, status))
        if child is None:
            child = self._children[(route, status)] = self.requests.labels(route, str(status))
        child.inc()

    def tracked(self, letter: str, status: int, seconds: float) -> None:
        """A tracking request answered: counted, and timed if it was a click."""
        self.count(_TRACKING_ROUTES[letter], status)
        if letter == "c":
            self.redirect.observe(seconds)

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


class _StateCollector(Collector):
    """Figures read at scrape time: database pool use and the spool."""

    def __init__(self, st: State) -> None:
        self.st = st

    def collect(self) -> Iterator[GaugeMetricFamily]:
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
        up = GaugeMetricFamily("mailstats_start_time_seconds", "When this process started")
        up.add_metric([], _STARTED)
        yield up


_STARTED = time.time()
