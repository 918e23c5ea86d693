"""Every failure becomes Copernica's error body here, in one place."""

from __future__ import annotations

import logging

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from mailstats.errors import InvalidMethod, MailstatsError, RateLimited
from mailstats.store.base import unavailable

log = logging.getLogger("mailstats.web")

UNAVAILABLE = "The database is unavailable; try again shortly"
RETRY_AFTER = "5"  # seconds: about a failover's length

JSON = "application/json"  # exactly: Copernica's PHP class compares the header to this string


def error_body(message: str) -> bytes:
    return orjson.dumps({"error": {"message": message}})


def error_response(
    message: str, status: int = 400, headers: dict[str, str] | None = None
) -> Response:
    return Response(error_body(message), status_code=status, media_type=JSON, headers=headers)


def response_for(exc: BaseException) -> Response:
    """The answer for any exception raised while serving the API."""
    if isinstance(exc, RateLimited):
        return error_response(exc.message, 429, {"Retry-After": str(exc.retry_after)})
    if isinstance(exc, MailstatsError):
        return error_response(exc.message, 400)
    if isinstance(exc, HTTPException):
        return error_response(InvalidMethod().message, 400)
    if unavailable(exc):
        log.warning("database unavailable: %s", str(exc).strip().splitlines()[0:1])
        return error_response(UNAVAILABLE, 503, {"Retry-After": RETRY_AFTER})
    log.exception("unexpected error", exc_info=exc)
    return error_response("Internal server error", 500)


async def handle(request: Request, exc: Exception) -> Response:
    return response_for(exc)
