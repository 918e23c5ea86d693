"""ms/emailing/$id/statistics and ms/destination/$id/statistics: totals and uniques per kind,
or per country of origin with `groupby=country`."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from mailstats.errors import InvalidParameter
from mailstats.web import context, params

GROUPINGS = ("country",)  # what `groupby` may name


async def get(request: Request) -> Response:
    account = await context.account(request)
    st = context.state(request)
    tz = st.zone(account.timezone)
    query = context.query(request)
    bounds = []
    for name in ("begintime", "endtime"):
        raw = params.scalar(query, name)
        upper = name == "endtime"
        bounds.append(None if raw is None else params.parse_time(raw, tz, name, upper=upper))
    scope = context.scope(request, account.id)
    extended = params.extended(query)
    groupby = params.scalar(query, "groupby")
    if groupby is not None and groupby not in GROUPINGS:
        raise InvalidParameter(f"Invalid value for parameter 'groupby': {groupby!r}, use country")

    if groupby == "country":

        def grouped() -> dict[str, dict[str, Any]]:
            st.store.check_scope(scope)
            return st.store.statistics_by_country(scope, *bounds, reasons=extended)

        groups = await context.run(grouped)
        return context.json(
            {
                "groups": [
                    {"country": country, **_figures(found, found["reasons"], extended)}
                    for country, found in groups.items()
                ]
            }
        )

    def load() -> tuple[int, dict[str, Any], dict[str, int]]:
        st.read.check_scope(scope)
        reasons = st.read.error_reasons(scope, *bounds) if extended else {}
        return st.read.destination_count(scope), st.read.statistics(scope, *bounds), reasons

    destinations, stats, reasons = await context.run(load)
    return context.json({"destinations": str(destinations), **_figures(stats, reasons, extended)})


def _figures(stats: dict[str, Any], reasons: dict[str, int], extended: bool) -> dict[str, Any]:
    """A statistics object's figures, keys in Copernica's order."""
    counts = stats["counts"]

    def pair(name: str) -> dict[str, int]:
        total, unique = counts[name]
        return {"total": total, "unique": unique}

    retries_total, retries_unique = stats["retries"]
    return {
        "abuses": pair("abuses"),
        "clicks": pair("clicks"),
        "deliveries": {"total": counts["deliveries"][0]},
        "errors": {**pair("errors"), "reasons": reasons} if extended else pair("errors"),
        "impressions": pair("impressions"),
        "retries": {"total": retries_total, "unique": retries_unique},
        "unsubscribes": pair("unsubscribes"),
    }
