"""GET ms/emailing/$id/charts/{timeline,links,clients,bounces}: the dashboard's figures as
JSON for any client (beyond Copernica). Ranges and buckets are described in web/charts.py."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from mailstats.errors import InvalidMethod
from mailstats.store import Scope
from mailstats.web import charts, context

_NAMES = ("timeline", "links", "clients", "bounces")


async def get(request: Request) -> Response:
    name = request.path_params["chart"]
    if name not in _NAMES:
        raise InvalidMethod()
    account = await context.account(request)
    st = context.state(request)
    tz = st.zone(account.timezone)
    scope = Scope(account.id, emailing_id=context.path_id(request))
    query = context.query(request)

    def load() -> dict[str, object]:
        emailing = st.read.emailing(account.id, scope.emailing_id or 0)
        rng = charts.resolve_range(st.read, scope, emailing, tz, query)
        if name == "timeline":
            return charts.timeline(st.read, scope, rng, tz)
        ranged = rng if any(query.get(n) for n in ("range", "begin", "end")) else None
        if name == "links":
            return charts.links(st.read, scope, ranged)
        if name == "clients":
            return charts.clients(st.read, scope, ranged)
        return charts.bounces(st.read, scope, ranged)

    return context.json(await context.run(load))
