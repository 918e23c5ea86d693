"""ms/emailing/$id/statistics and ms/destination/$id/statistics: totals and uniques per kind."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from mailstats.web import context, params


async def get(request: Request) -> Response:
    account = await context.account(request)
    st = context.state(request)
    tz = st.zone(account.timezone)
    query = context.query(request)
    bounds: list[int | None] = []
    for name in ("begintime", "endtime"):
        raw = params.scalar(query, name)
        upper = name == "endtime"
        bounds.append(None if raw is None else params.parse_time(raw, tz, name, upper=upper))
    scope = context.scope(request, account.id)

    extended = params.extended(query)
    bots = params.bots(query)
    # implied opens count rows: only asked for with mailstats' own fields (extended=true)
    implied = extended

    def load() -> tuple[int, dict[str, Any], dict[str, int], int]:
        st.store.check_scope(scope)
        reasons = st.store.error_reasons(scope, *bounds) if extended else {}
        opens = st.store.implied_opens(scope, *bounds) if implied else 0
        stats = st.store.statistics(scope, bounds[0], bounds[1], bots)
        return st.store.destination_count(scope), stats, reasons, opens

    destinations, stats, reasons, opens = await context.run(load)
    counts = stats["counts"]

    def pair(name: str) -> dict[str, int]:
        total, unique = counts[name]
        return {"total": total, "unique": unique}

    retries_total, retries_unique = stats["retries"]
    return context.json(
        {
            "destinations": str(destinations),
            "abuses": pair("abuses"),
            "clicks": pair("clicks"),
            "deliveries": {"total": counts["deliveries"][0]},
            "errors": {**pair("errors"), "reasons": reasons} if extended else pair("errors"),
            "impressions": {**pair("impressions"), "implied": opens}
            if implied
            else pair("impressions"),
            "retries": {"total": retries_total, "unique": retries_unique},
            "unsubscribes": pair("unsubscribes"),
        }
    )
