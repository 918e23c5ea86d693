"""The suppression list: addresses the relay refuses (hard bounces, complaints, unsubscribes,
and those put on by hand), listed and taken off again."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from mailstats.errors import NotFound
from mailstats.store import suppressions
from mailstats.timefmt import format_time
from mailstats.web import context, params


async def list_all(request: Request) -> Response:
    """GET ms/suppressions (paged): email, reason, timestamp, destination; oldest first."""
    account = await context.account(request)
    paging = params.parse_paging(context.query(request))
    st = context.state(request)
    tz = st.zone(account.timezone)
    found = await context.run(suppressions.list_all, st.read, account.id)
    rows = found[paging.start : paging.start + paging.limit] if paging.start >= 0 else []
    if paging.limit < 0:
        rows = []
    data = [
        {
            "email": s.email,
            "reason": s.reason,
            "timestamp": format_time(s.ts, tz),
            "destination": None if s.destination_id is None else str(s.destination_id),
        }
        for s in rows
    ]
    return context.envelope(paging, data, len(found))


async def delete(request: Request) -> Response:
    """DELETE ms/suppressions/{email}: the address may be sent to again (204)."""
    account = await context.account(request)
    email = request.path_params["email"]
    st = context.state(request)
    if (
        len(email) > 320
        or "\x00" in email  # no address, and no text a database column can hold
        or not await context.run(suppressions.remove, st.store, account.id, email)
    ):
        raise NotFound()
    return Response(b"", status_code=204)
