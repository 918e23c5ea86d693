"""What the sending pipeline reports in bulk: NDJSON events, or raw DSN/ARF report emails."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from mailstats import ingest
from mailstats.errors import InvalidParameter
from mailstats.web import context


async def bulk(request: Request) -> Response:
    """POST ms/events: NDJSON, one {"kind", "destination", ...} per line; all or nothing."""
    account = await context.account(request)
    raw = await context.body(request)
    st = context.state(request)
    tz = st.zone(account.timezone)

    def load() -> int:
        events = ingest.events_from_ndjson(st.store, account, raw.splitlines(), tz)
        if not events:
            raise InvalidParameter("Request body holds no events")
        st.store.insert_events(events)
        return len(events)

    count = await context.run(load)
    return Response(b"", status_code=201, headers={"X-Created": str(count)})


async def report_mail(request: Request) -> Response:
    """POST ms/reports: one bounce (DSN) or complaint (ARF) email as message/rfc822."""
    account = await context.account(request)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in ("message/rfc822", "application/octet-stream", "text/plain"):
        raise InvalidParameter("Request body must be message/rfc822")
    raw = await context.body(request)
    st = context.state(request)
    count = await context.run(ingest.ingest_report, st.store, account, raw)
    return Response(b"", status_code=201, headers={"X-Created": str(count)})
