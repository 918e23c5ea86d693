"""A Python client for Copernica's REST API v2, and so for mailstats, which speaks the same API.

It imports nothing else from mailstats: only httpx and the standard library, so that it works
unchanged against https://api.copernica.com. It behaves like Copernica's own PHP class: the
token goes in the `access_token` query parameter and parameters are encoded as PHP does.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Literal, Protocol, Self, runtime_checkable

import httpx

__all__ = ["ApiError", "Client", "HTTPResponse", "HTTPSession"]

COPERNICA = "https://api.copernica.com"
MAX_BATCH = 1000  # the largest page both Copernica and mailstats serve

QueryPairs = tuple[tuple[str, str], ...]
_STREAM_TYPES = {"ndjson": "application/x-ndjson", "csv": "text/csv"}


class ApiError(Exception):
    """An error answer: `message` is the API's own text, `status` the HTTP status.

    Copernica answers every error with status 400 and `{"error": {"message": ...}}`;
    `retry_after` holds the seconds to wait when the answer says so (a 429 does).

    >>> try:
    ...     api.get("ms/emailing/0")  # doctest: +SKIP
    ... except ApiError as exc:
    ...     print(exc.message)
    No entity with supplied ID
    """

    def __init__(self, message: str, status: int, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after


@runtime_checkable
class HTTPResponse(Protocol):
    """What the client reads from an answer (an httpx Response has all of it)."""

    @property
    def status_code(self) -> int: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def content(self) -> bytes: ...


@runtime_checkable
class HTTPSession(Protocol):
    """What the client needs to send a request: satisfied by `httpx.Client` and by
    Starlette's `TestClient`, which runs an ASGI app in-process."""

    def request(
        self,
        method: str,
        url: str,
        *,
        params: QueryPairs | None = ...,
        json: Any = ...,
        content: bytes | None = ...,
        headers: Mapping[str, str] | None = ...,
    ) -> HTTPResponse: ...


class _StreamedResponse(Protocol):
    @property
    def status_code(self) -> int: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    def read(self) -> bytes: ...
    def iter_bytes(self) -> Iterator[bytes]: ...


@runtime_checkable
class _StreamingSession(HTTPSession, Protocol):
    """A session that can also stream an answer (httpx's `stream()`); `export` uses it."""

    def stream(
        self, method: str, url: str, *, params: QueryPairs | None = ...
    ) -> AbstractContextManager[_StreamedResponse]: ...


class Client:
    """A connection to the API of Copernica (the default) or of a mailstats server.

    >>> with Client("http://127.0.0.1:8000", token) as api:  # doctest: +SKIP
    ...     api.get("ms/clicks", {"limit": 10})["count"]
    10

    `http` swaps the transport: any `HTTPSession`, such as a `httpx.Client` you configured
    or Starlette's `TestClient(app)`. Without it the client makes its own `httpx.Client`
    (with `timeout`) and closes it in `close()`.
    """

    def __init__(
        self,
        base_url: str = COPERNICA,
        token: str = "",
        *,
        version: int = 2,
        http: HTTPSession | None = None,
        timeout: float = 30.0,
    ) -> None:
        if not token:
            raise ValueError("Client needs an access token")
        self.base_url = base_url.rstrip("/")
        self.version = version
        self._token = token
        self._own: httpx.Client | None = None
        self._http: HTTPSession
        if http is None:
            self._own = self._http = httpx.Client(timeout=timeout)
        else:
            self._http = http

    def __repr__(self) -> str:  # never the token
        return f"Client({self.base_url!r}, version={self.version})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP client this object made; a session passed as `http` stays open."""
        if self._own is not None:
            self._own.close()

    def url(self, resource: str) -> str:
        """The full URL of a resource, without its query.

        >>> Client(token="t").url("ms/clicks")
        'https://api.copernica.com/v2/ms/clicks'
        """
        return f"{self.base_url}/v{self.version}/{resource.lstrip('/')}"

    def get(self, resource: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET a resource: its decoded JSON, or the text of a non-JSON answer (body/html).

        >>> api.get("ms/clicks", {"unique": True, "fields": ["ID>1000"]})  # doctest: +SKIP
        {'start': 0, 'limit': 100, 'count': 2, 'data': [...], 'total': 2}
        """
        response = self._http.request("GET", self.url(resource), params=self._query(params))
        return _answer(response.status_code, response.headers, response.content)

    def post(self, resource: str, data: Any) -> int | list[int] | None:
        """POST `data` as JSON; the ID the API created (X-Created), a list when it made several.

        >>> api.post("ms/emailings", {"subject": "Hi", "html": html,  # doctest: +SKIP
        ...     "from_address": {"name": "Shop", "email": "news@shop.example"}})
        17
        >>> api.post("ms/emailing/17/destinations", [{"email": "a@x.org"},  # doctest: +SKIP
        ...     {"email": "b@x.org"}])
        [41, 42]
        """
        response = self._http.request(
            "POST", self.url(resource), params=self._query(None), json=data
        )
        _answer(response.status_code, response.headers, response.content)
        return _created(_header(response.headers, "x-created"))

    def iterate(
        self, resource: str, params: Mapping[str, Any] | None = None, *, batch: int = MAX_BATCH
    ) -> Iterator[dict[str, Any]]:
        """Every item of a list, fetched `batch` at a time while `start + count < total`.

        A `start` in `params` is where to begin; `limit` and `total` are the client's.

        >>> for click in api.iterate("ms/clicks", {"fields": ["ID>1000"]}):  # doctest: +SKIP
        ...     print(click["ID"], click["link"])
        """
        if batch < 1:
            raise ValueError("batch must be at least 1")
        query = {k: v for k, v in (params or {}).items() if k not in ("start", "limit", "total")}
        start = int((params or {}).get("start") or 0)
        while True:
            page = self.get(resource, {**query, "start": start, "limit": batch, "total": True})
            items = _items(page, resource)
            yield from items
            start += len(items)
            total = page.get("total")
            if not items or (isinstance(total, int) and start >= total):
                return
            if total is None and len(items) < page.get("limit", batch):  # no total: a short page
                return

    def export(
        self,
        resource: str,
        params: Mapping[str, Any] | None = None,
        *,
        format: Literal["ndjson", "csv"] = "ndjson",
    ) -> Iterator[dict[str, Any]]:
        """Stream a whole list in one answer, item by item (a mailstats extension).

        mailstats answers `format=ndjson` (or `csv`) with the whole selection, no page cap;
        NDJSON items are the same dicts `iterate` yields, CSV rows are dicts of strings.
        Copernica has no such format: there this raises ApiError; use `iterate`.

        >>> for click in api.export("ms/emailing/17/clicks", {"unique": True}):  # doctest: +SKIP
        ...     print(click["ID"])
        """
        if format not in _STREAM_TYPES:
            raise ValueError("format must be 'ndjson' or 'csv'")
        url, query = self.url(resource), self._query({**(params or {}), "format": format})
        if isinstance(self._http, _StreamingSession):
            with self._http.stream("GET", url, params=query) as streamed:
                if not _is_stream(streamed.status_code, streamed.headers, format):
                    _not_a_stream(streamed.status_code, streamed.headers, streamed.read(), format)
                yield from _records(_lines(streamed.iter_bytes()), format)
            return
        response = self._http.request("GET", url, params=query)
        if not _is_stream(response.status_code, response.headers, format):
            _not_a_stream(response.status_code, response.headers, response.content, format)
        yield from _records(_lines(iter([response.content])), format)

    def _query(self, params: Mapping[str, Any] | None) -> QueryPairs:
        return (("access_token", self._token), *_encode(params))


def _encode(params: Mapping[str, Any] | None) -> QueryPairs:
    """Parameters as PHP's http_build_query sends them: booleans 1/0, lists as `name[]`.

    >>> _encode({"unique": True, "fields": ["ID>3", "ID<9"], "limit": 5, "skip": None})
    (('unique', '1'), ('fields[]', 'ID>3'), ('fields[]', 'ID<9'), ('limit', '5'))
    """
    pairs: list[tuple[str, str]] = []
    for name, value in (params or {}).items():
        if isinstance(value, list | tuple):
            pairs.extend((f"{name}[]", _scalar(v)) for v in value if v is not None)
        elif value is not None:  # PHP leaves nulls out too
            pairs.append((name, _scalar(value)))
    return tuple(pairs)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, datetime):  # the API's format, read in the account's time zone
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # a plain dict from a custom session may keep the server's case
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value


def _media_type(headers: Mapping[str, str]) -> str:
    return (_header(headers, "content-type") or "").split(";")[0].strip().lower()


def _charset(headers: Mapping[str, str]) -> str:
    for part in (_header(headers, "content-type") or "").split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"')
    return "utf-8"


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = _header(headers, "retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:  # the other form: an HTTP date
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _answer(status: int, headers: Mapping[str, str], content: bytes) -> Any:
    """The decoded answer, or ApiError when it is an error (by its body or its status)."""
    media = _media_type(headers)
    is_json = media == "application/json" or media.endswith("+json")
    body: Any = None
    if content.strip() and (is_json or status >= 300):
        try:
            body = json.loads(content)
        except ValueError:
            if status < 300:
                raise ApiError("The answer is not valid JSON", status) from None
    if isinstance(body, dict) and isinstance(body.get("error"), dict | str):
        error = body["error"]
        message = error.get("message") if isinstance(error, dict) else error
        if isinstance(message, str):
            raise ApiError(message, status, _retry_after(headers))
    if status >= 300:
        text = content.decode(_charset(headers), "replace").strip()[:200]
        message = f"HTTP {status}: {text}" if text else f"HTTP {status}"
        raise ApiError(message, status, _retry_after(headers))
    if is_json:
        return body
    return content.decode(_charset(headers), "replace")


def _created(value: str | None) -> int | list[int] | None:
    if not value or not value.strip():
        return None
    try:
        ids = [int(part) for part in value.split(",")]
    except ValueError:
        raise ApiError(f"Unexpected X-Created header: {value!r}", 201) from None
    return ids[0] if len(ids) == 1 else ids


def _items(page: Any, resource: str) -> list[dict[str, Any]]:
    if not isinstance(page, dict) or not isinstance(page.get("data"), list):
        raise ApiError(f"{resource} did not answer with a list", 200)
    items: list[dict[str, Any]] = page["data"]
    return items


def _is_stream(status: int, headers: Mapping[str, str], format: str) -> bool:
    return status < 300 and _media_type(headers) == _STREAM_TYPES[format]


def _not_a_stream(status: int, headers: Mapping[str, str], content: bytes, format: str) -> None:
    """Raise the API's error, or say that this server cannot export."""
    _answer(status, headers, content)
    raise ApiError(
        f"The server answered {_media_type(headers) or 'without a content type'}, not"
        f" {_STREAM_TYPES[format]}: format={format} is a mailstats extension, use iterate()",
        status,
    )


def _lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Lines with their endings, so that CSV keeps line breaks inside quoted cells."""
    rest = b""
    for chunk in chunks:
        rest += chunk
        *lines, rest = rest.split(b"\n")
        for line in lines:
            yield line + b"\n"
    if rest:
        yield rest


def _records(lines: Iterator[bytes], format: str) -> Iterator[dict[str, Any]]:
    if format == "csv":
        yield from csv.DictReader(line.decode("utf-8") for line in lines)
        return
    for line in lines:
        if line.strip():
            yield json.loads(line)
