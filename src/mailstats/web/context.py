"""What every API handler needs: the shared state, the caller's account, parameters, bodies."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import orjson
from anyio import to_thread
from starlette.requests import Request
from starlette.responses import Response

from mailstats.errors import InvalidParameter, InvalidToken, NotFound, TooLarge
from mailstats.settings import Settings
from mailstats.store import Account, Scope, Store
from mailstats.store.derive import Indexer
from mailstats.store.writer import Writer
from mailstats.tracking.tokens import Signer
from mailstats.web import params
from mailstats.web.errors import JSON
from mailstats.web.limits import RateLimiter

T = TypeVar("T")


@dataclass
class State:
    """Everything the app holds for its lifetime."""

    settings: Settings
    store: Store
    signer: Signer
    writer: Writer
    limiter: RateLimiter
    indexer: Indexer | None = None  # None where this app runs none (it always does in serve)
    reads: Store | None = None  # a hot standby (read_db), when there is one
    zones: dict[str, ZoneInfo] = field(default_factory=dict)

    @property
    def read(self) -> Store:
        """Where list, statistics, export and dashboard reads go: the standby, or `store`.
        Nothing called on it writes."""
        return self.reads or self.store

    def zone(self, name: str) -> ZoneInfo:
        zone = self.zones.get(name)
        if zone is None:
            zone = self.zones[name] = ZoneInfo(name)
        return zone


def state(request: Request) -> State:
    result: State = request.app.state.mailstats
    return result


async def run(func: Callable[..., T], *args: Any) -> T:
    """Run a blocking store call off the event loop."""
    return await to_thread.run_sync(func, *args)


def query(request: Request) -> params.Query:
    cached: params.Query | None = request.scope.get("mailstats.query")
    if cached is None:
        cached = request.scope["mailstats.query"] = params.parse_query(
            request.scope["query_string"]
        )
    return cached


def _token(request: Request) -> str | None:
    values = query(request).get("access_token")
    if values:
        return values[-1]
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


async def account(request: Request) -> Account:
    """The caller's account, from `access_token` or `Authorization: Bearer`."""
    token = _token(request)
    if not token or len(token) > 256:
        raise InvalidToken()
    st = state(request)
    # a read checks its token where it reads (a standby answers with the primary down); a
    # write checks it on the primary
    found = await run((st.read if request.method == "GET" else st.store).authenticate, token)
    if found is None:
        raise InvalidToken()
    st.limiter.check(found.id)
    return found


def path_id(request: Request, name: str = "id") -> int:
    """An ID from the path; anything but a positive integer names no entity."""
    raw = request.path_params[name]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18 or int(raw) < 1:
        raise NotFound()
    return int(raw)


def json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type=JSON)


def created(ids: list[int]) -> Response:
    """Copernica's answer to a write: 201, the new ID in X-Created, an empty body."""
    return Response(b"", status_code=201, headers={"X-Created": ", ".join(str(i) for i in ids)})


async def body(request: Request) -> bytes:
    """The request body, refused once it passes the configured size."""
    limit = state(request).settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise TooLarge(f"Request body larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"Request body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def json_body(request: Request) -> Any:
    """A JSON request body; the content type may be JSON or absent."""
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if ctype not in ("application/json", ""):
        raise InvalidParameter("Request body must be application/json")
    raw = await body(request)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidParameter(f"Request body is not valid JSON: {exc.msg}") from None
    return data


def envelope(paging: params.Paging, data: list[Any], total: int | None) -> Response:
    """Copernica's list answer: start, limit, count, data, and total only when asked."""
    out: dict[str, Any] = {
        "start": paging.start,
        "limit": paging.limit,
        "count": len(data),
        "data": data,
    }
    if paging.total:
        out["total"] = total
    return json(out)


_SCOPE_COLUMNS = {
    "emailing": "emailing_id",
    "destination": "destination_id",
    "message": "destination_id",
}


def scope(request: Request, account_id: int) -> Scope:
    """The account, or the emailing or destination named in the path (/v2/ms/<word>/<id>/...)."""
    if "id" not in request.path_params:
        return Scope(account_id)
    word = request.scope["path"].split("/")[3]
    return Scope(account_id, **{_SCOPE_COLUMNS[word]: path_id(request)})
