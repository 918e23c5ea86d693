"""The access log: one line per API request and per refused tracking hit, tokens redacted,
and email addresses too (ms/subject?email=..., ms/suppressions/{email}, any value with an @).

A tracking hit that is answered (302, pixel, form) writes no line: it is recorded as an
event already, and formatting a log line costs more than the rest of the redirect.
"""

from __future__ import annotations

import logging
import re

from starlette.types import Scope

log = logging.getLogger("mailstats.access")

_SECRET_QUERY = re.compile(rb"(access_token=)[^&\s]*", re.IGNORECASE)
# a query value that is (or holds) an address, or the `email` parameter whatever it holds
_ADDRESS_QUERY = re.compile(rb"((?:^|&)(?:email=|[^=&]*=)(?=[^&]*(?:@|%40)|(?<=email=)))[^&]*",
                            re.IGNORECASE)  # fmt: skip
_ADDRESS_PATH = re.compile(rb"[^/]*(?:@|%40)[^/]*", re.IGNORECASE)


def redact(query: bytes) -> bytes:
    """A query string without access tokens or addresses."""
    return _ADDRESS_QUERY.sub(rb"\1[redacted]", _SECRET_QUERY.sub(rb"\1[redacted]", query))


def redact_path(path: bytes) -> bytes:
    """A path without the segments that hold an address."""
    return _ADDRESS_PATH.sub(b"[redacted]", path)


def line(scope: Scope, status: int) -> None:
    """Log `scope`'s request and the status it was answered with."""
    if not log.isEnabledFor(logging.INFO):
        return
    client = scope.get("client")
    peer = f"{client[0]}:{client[1]}" if client else "-"
    target = redact_path(scope.get("raw_path") or scope["path"].encode())
    if scope.get("query_string"):
        target += b"?" + redact(scope["query_string"])
    log.info(
        '%s - "%s %s HTTP/%s" %d',
        peer,
        scope["method"],
        target.decode("latin-1"),
        scope.get("http_version", "1.1"),
        status,
    )
