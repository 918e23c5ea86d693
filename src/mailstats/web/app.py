"""The app factory and the one route table of the whole URL surface."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Mount, Route
from starlette.types import Message, Receive, Scope, Send

from mailstats.errors import MailstatsError
from mailstats.settings import Settings
from mailstats.store import Store, open_configured, open_store, privacy
from mailstats.store.derive import Indexer
from mailstats.store.writer import Writer
from mailstats.tracking.tokens import Signer
from mailstats.web import access, dashboard, errors, openapi, ops
from mailstats.web.api import (
    charts,
    destinations,
    emailings,
    events,
    ingest,
    statistics,
    subjects,
    suppressions,
    webhooks,
)
from mailstats.web.api import settings as settings_api
from mailstats.web.context import State
from mailstats.web.limits import RateLimiter
from mailstats.web.tracking import Tracker
from mailstats.webhooks.dispatcher import Dispatcher

log = logging.getLogger("mailstats.web")

V2 = "/v2/ms"
_DEST = ("destination", "message")  # Copernica's two words for one message to one recipient


def _scoped(path: str, endpoint: Any, method: str, scopes: tuple[str, ...]) -> list[Route]:
    """One route per scope word; the handler reads the word from `scope` in its path params."""
    return [
        Route(f"{V2}/{name}/{path}", endpoint, methods=[method], name=f"{name}:{path}:{method}")
        for name in scopes
    ]


# Every API route needs an access token; the handlers check it first.
ROUTES = [
    Route(f"{V2}/emailings", emailings.list_all, methods=["GET"]),
    Route(f"{V2}/emailings", emailings.create, methods=["POST"]),
    Route(f"{V2}/events", ingest.bulk, methods=["POST"]),
    Route(f"{V2}/reports", ingest.report_mail, methods=["POST"]),
    Route(f"{V2}/reports/sns", ingest.report_sns, methods=["POST"]),
    Route(f"{V2}/settings", settings_api.get, methods=["GET"]),
    Route(f"{V2}/settings", settings_api.put, methods=["PUT"]),
    Route(f"{V2}/subject", subjects.get, methods=["GET"]),
    Route(f"{V2}/subject", subjects.delete, methods=["DELETE"]),
    Route(f"{V2}/suppressions", suppressions.list_all, methods=["GET"]),
    Route(f"{V2}/suppressions/{{email}}", suppressions.delete, methods=["DELETE"]),
    Route(f"{V2}/webhooks", webhooks.list_all, methods=["GET"]),
    Route(f"{V2}/webhooks", webhooks.create, methods=["POST"]),
    Route(f"{V2}/webhook/{{id}}", webhooks.get_one, methods=["GET"]),
    Route(f"{V2}/webhook/{{id}}", webhooks.update, methods=["PUT"]),
    Route(f"{V2}/webhook/{{id}}", webhooks.delete, methods=["DELETE"]),
    Route(f"{V2}/webhook/{{id}}/deliveries", webhooks.deliveries, methods=["GET"]),
    Route(f"{V2}/webhook/{{id}}/replay", webhooks.replay, methods=["POST"]),
    Route(f"{V2}/emailing/{{id}}", emailings.get_one, methods=["GET"]),
    Route(f"{V2}/emailing/{{id}}/destinations", destinations.list_all, methods=["GET"]),
    Route(f"{V2}/emailing/{{id}}/destinations", destinations.create, methods=["POST"]),
    *_scoped("{id}/statistics", statistics.get, "GET", ("emailing", *_DEST)),
    Route(f"{V2}/emailing/{{id}}/charts/{{chart}}", charts.get, methods=["GET"]),
    *_scoped("{id}", destinations.get_one, "GET", _DEST),
    *_scoped("{id}/body/{part}", destinations.body, "GET", _DEST),
    *_scoped("{id}/headers", destinations.headers, "GET", _DEST),
    *_scoped("{id}/{kind}", events.report_event, "POST", _DEST),
    *_scoped("{id}/{kind}", events.list_events, "GET", ("emailing", *_DEST)),
    Route(f"{V2}/{{kind}}", events.list_events, methods=["GET"]),
    Route("/openapi.json", openapi.document, methods=["GET"]),
    Route("/healthz", ops.healthz, methods=["GET"]),
    Route("/readyz", ops.readyz, methods=["GET"]),
]


class App:
    """The ASGI app: tracking paths go straight to their handlers, the rest to the API."""

    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.owns_store = store is None
        self.store = store or open_configured(settings)
        secret = self.store.secret(settings.secret.reveal() if settings.secret else None)
        self.store.backend.capture.start()
        # a hot standby for reads; never migrated from here (it follows the primary)
        self.reads = (
            open_store(settings.read_db, pool_size=settings.pool_size, migrate=False)
            if settings.read_db
            else None
        )
        # with `indexer` off, another process derives (and runs retention): this one never
        # takes the role, and its drain() waits for that process
        self.indexer = Indexer(self.store.backend, enabled=settings.indexer)
        self.retention = privacy.Retention(
            self.store, settings.retention_interval if settings.indexer else 0
        )
        # pushes the webhook outbox; any number of processes may run one (see dispatcher)
        self.dispatcher = Dispatcher(self.store, settings) if settings.webhook_dispatch else None
        writer = Writer(
            self.store.capture_events,
            settings.spool_path,
            batch_max=settings.batch_max,
            batch_wait=settings.batch_wait_ms / 1000,
            deadline=settings.commit_deadline_ms / 1000,
        )
        self.state = State(
            settings,
            self.store,
            Signer(secret),
            writer,
            RateLimiter(settings.rate_limit, settings.rate_burst),
            self.indexer,
            reads=self.reads,
        )
        self.tracker = Tracker(self.state)
        self._tracking = {
            "c": self.tracker.click,
            "o": self.tracker.open,
            "u": self.tracker.unsubscribe,
        }
        self.metrics = ops.Metrics(self.state)
        routes = [
            *ROUTES,
            Route("/metrics", self.metrics.endpoint, methods=["GET"]),
            Mount("/dashboard", app=dashboard.create(self.state, secret)),
        ]
        self.api = Starlette(
            routes=routes,
            exception_handlers={
                MailstatsError: errors.handle,
                HTTPException: errors.handle,
                Exception: errors.handle,
            },
            lifespan=self._lifespan,
        )
        self.api.state.mailstats = self.state
        self.api.router.redirect_slashes = False
        self._closed = False

    @asynccontextmanager
    async def _lifespan(self, app: Any) -> AsyncIterator[None]:
        yield
        self.close()

    def close(self) -> None:
        """Drain the writer (every acknowledged event is committed or spooled), then close."""
        if self._closed:
            return
        self._closed = True
        self.state.writer.close()
        self.retention.close()
        self.indexer.close()
        if self.dispatcher is not None:
            self.dispatcher.close()
        if self.owns_store:
            self.store.close()
        if self.reads is not None:
            self.reads.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.api(scope, receive, send)
        # Counted for /metrics here, around the handlers: a status seen on its way out and,
        # for tracking paths, the time taken (a few microseconds in all, see bench/).
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        path: str = scope["path"]
        if len(path) > 3 and path[2] == "/" and path[1] in self._tracking:
            started = time.perf_counter()
            try:
                await self._tracking[path[1]](scope, receive, sending, path[3:].rstrip("/"))
            finally:
                self.metrics.tracked(path[1], status, time.perf_counter() - started)
            return
        if path == "/dashboard":
            scope = {**scope, "path": "/dashboard/"}
        elif len(path) > 1 and path.endswith("/") and not path.startswith("/dashboard/"):
            scope = {**scope, "path": path.rstrip("/") or "/"}
        try:
            await self.api(scope, receive, sending)
        finally:
            route = scope.get("route")  # set by the router (a mount's by its own router)
            name = scope.get("root_path", "") + route.path if route is not None else "unmatched"
            self.metrics.count(name, status)
            if self.state.settings.access_log:
                access.line(scope, status)


def create_app(settings: Settings | None = None, store: Store | None = None) -> App:
    """The mailstats ASGI app.

    >>> app = create_app(Settings(db=":memory:"))  # doctest: +SKIP
    """
    return App(settings or Settings(), store)


def from_environment() -> App:
    """The app of a worker process, its settings from MAILSTATS_* variables."""
    from mailstats.settings import load

    return create_app(load())
