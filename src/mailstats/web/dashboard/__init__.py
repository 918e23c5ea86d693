"""The dashboard, mounted at /dashboard: signed-in pages over the store, static assets
(uPlot, vendored with its license), and error pages in HTML instead of API JSON."""

from __future__ import annotations

import hashlib
import hmac
import logging
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from mailstats.errors import MailstatsError, NotFound
from mailstats.store.base import unavailable
from mailstats.web.context import State
from mailstats.web.dashboard import auth, pages
from mailstats.web.dashboard.render import page

log = logging.getLogger("mailstats.dashboard")
SESSION_COOKIE = "mailstats_session"
SESSION_SECONDS = 12 * 3600

# Every page but sign-in needs a signed-in account (each handler asks auth.account first).
ROUTES = [
    Route("/", pages.overview, methods=["GET"]),
    Route("/login", auth.sign_in_page, methods=["GET"]),
    Route("/login", auth.sign_in, methods=["POST"]),
    Route("/logout", auth.sign_out, methods=["POST"]),
    Route("/emailing/{id}", pages.emailing, methods=["GET"]),
    Route("/emailing/{id}/export/{kind}.csv", pages.export, methods=["GET"]),
    Route("/destination/{id}", pages.destination, methods=["GET"]),
    Mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static"),
]


async def _error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, auth.SignInNeeded):
        root = request.scope.get("root_path", "")
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        from urllib.parse import quote

        return RedirectResponse(f"{root}/login?next={quote(target)}", status_code=303)
    if isinstance(exc, NotFound) or (isinstance(exc, HTTPException) and exc.status_code == 404):
        return page(request, "error.html", status=404, title="Not found",
                    message="There is no such page in this account.")  # fmt: skip
    if isinstance(exc, MailstatsError):
        status = 403 if isinstance(exc, auth.Forbidden) else 400
        return page(request, "error.html", status=status, title="Cannot show this",
                    message=exc.message)  # fmt: skip
    if isinstance(exc, HTTPException):
        return page(request, "error.html", status=exc.status_code, title="Cannot show this",
                    message=str(exc.detail))  # fmt: skip
    if unavailable(exc):
        log.warning("database unavailable: %s", str(exc).strip().splitlines()[0:1])
        response = page(request, "error.html", status=503, title="Try again shortly",
                        message="The database is unavailable.")  # fmt: skip
        response.headers["Retry-After"] = "5"
        return response
    log.exception("dashboard error", exc_info=exc)
    return page(request, "error.html", status=500, title="Something went wrong",
                message="The error is in the server's log.")  # fmt: skip


def create(st: State, secret: bytes) -> Starlette:
    """The dashboard app; its session key is derived from the server's secret."""
    key = hmac.new(secret, b"mailstats dashboard session", hashlib.sha256).hexdigest()
    app = Starlette(
        routes=ROUTES,
        middleware=[
            Middleware(
                SessionMiddleware,
                secret_key=key,
                session_cookie=SESSION_COOKIE,
                max_age=SESSION_SECONDS,
                path="/dashboard",
                same_site="lax",
                https_only=st.settings.base_url.startswith("https://"),
            )
        ],
        exception_handlers={
            Exception: _error,
            HTTPException: _error,
            MailstatsError: _error,
            auth.SignInNeeded: _error,
        },
    )
    app.state.mailstats = st
    return app
