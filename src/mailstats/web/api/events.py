"""The six statistics lists in their three scopes, their streaming form, and reported events."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from mailstats import ingest
from mailstats.errors import InvalidMethod, InvalidParameter
from mailstats.kinds import KINDS, Kind, filterable
from mailstats.serialize import csv_chunks, item_maker, ndjson_chunks
from mailstats.store import Filter, Scope
from mailstats.web import context, params


def _kind(request: Request) -> Kind:
    kind = KINDS.get(request.path_params["kind"])
    if kind is None:
        raise InvalidMethod()
    return kind


async def list_events(request: Request) -> Response:
    """GET ms/<kind>, ms/emailing/$id/<kind>, ms/destination/$id/<kind>."""
    kind = _kind(request)
    account = await context.account(request)
    st = context.state(request)
    tz = st.zone(account.timezone)
    query = context.query(request)
    if params.extended(query):
        kind = kind.extended()
    lp = params.parse_list_params(query, tz, filterable(kind))
    fmt = params.scalar(query, "format")
    scope = context.scope(request, account.id)
    await context.run(st.read.check_scope, scope)
    flt = Filter(lp.begin, lp.end, lp.unique, lp.conditions, params.bots(query))
    if fmt is not None:
        return _stream(st, kind, scope, flt, tz, fmt)
    page = lp.paging
    found = await context.run(
        lambda: st.read.events(
            kind, scope, flt, start=page.start, limit=page.limit, total=page.total
        )
    )
    make = item_maker(kind, tz)
    return context.envelope(page, [make(row) for row in found.rows], found.total)


def _stream(
    st: context.State, kind: Kind, scope: Scope, flt: Filter, tz: Any, fmt: str
) -> Response:
    """The whole selection, no page cap, as NDJSON or CSV, in bounded memory."""
    if fmt not in ("ndjson", "csv"):
        raise InvalidParameter("Invalid value for parameter 'format': use ndjson or csv")
    rows = st.read.stream_events(kind, scope, flt)
    if fmt == "ndjson":
        chunks = ndjson_chunks(kind, rows, tz)
        return StreamingResponse(chunks, media_type="application/x-ndjson")
    return StreamingResponse(csv_chunks(kind, rows, tz), media_type="text/csv; charset=utf-8")


async def report_event(request: Request) -> Response:
    """POST ms/destination/$id/{deliveries,errors,abuses}: the pipeline reports one event."""
    kind = _kind(request)
    if kind.name not in ingest.REPORTED:
        raise InvalidMethod()
    account = await context.account(request)
    destination_id = context.path_id(request)
    data = await context.json_body(request)
    st = context.state(request)
    tz = st.zone(account.timezone)
    event = await context.run(
        ingest.event_from_json, st.store, account, kind, destination_id, data, tz
    )

    def store() -> int | None:
        st.store.insert_events([event])
        return st.store.event_id(event.key)

    event_id = await context.run(store)
    assert event_id is not None
    return context.created([event_id])
