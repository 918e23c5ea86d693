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
    bounds: list[int | None] = []
    for name in ("begintime", "endtime"):
        raw = params.scalar(query, name)
        upper = name == "endtime"
        bounds.append(None if raw is None else params.parse_time(raw, tz, name, upper=upper))
    scope = context.scope(request, account.id)
    extended = params.extended(query)
    bots = params.bots(query)
    groupby = params.scalar(query, "groupby")
    if groupby is not None and groupby not in GROUPINGS:
        raise InvalidParameter(f"Invalid value for parameter 'groupby': {groupby!r}, use country")

    if groupby == "country":

        def grouped() -> dict[str, dict[str, Any]]:
            st.read.check_scope(scope)
            return st.read.statistics_by_country(scope, *bounds, reasons=extended, bots=bots)

        groups = await context.run(grouped)
        return context.json(
            {
                "groups": [
                    {"country": country, **_figures(found, found["reasons"], extended)}
                    for country, found in groups.items()
                ]
            }
        )

    # implied opens count rows: only asked for with mailstats' own fields (extended=true)
    implied = extended

    def load() -> tuple[int, dict[str, Any], dict[str, int], int | None]:
        st.read.check_scope(scope)
        reasons = st.read.error_reasons(scope, *bounds) if extended else {}
        opens = st.read.implied_opens(scope, *bounds) if implied else None
        stats = st.read.statistics(scope, bounds[0], bounds[1], bots)
        return st.read.destination_count(scope), stats, reasons, opens

    destinations, stats, reasons, opens = await context.run(load)
    return context.json(
        {"destinations": str(destinations), **_figures(stats, reasons, extended, opens)}
    )


def _figures(
    stats: dict[str, Any], reasons: dict[str, int], extended: bool, implied: int | None = None
) -> dict[str, Any]:
    """A statistics object's figures, keys in Copernica's order (implied opens: given with
    `extended=true`)."""
    counts = stats["counts"]

    def pair(name: str) -> dict[str, int]:
        total, unique = counts[name]
        return {"total": total, "unique": unique}

    retries_total, retries_unique = stats["retries"]
    impressions = pair("impressions")
    return {
        "abuses": pair("abuses"),
        "clicks": pair("clicks"),
        "deliveries": {"total": counts["deliveries"][0]},
        "errors": {**pair("errors"), "reasons": reasons} if extended else pair("errors"),
        "impressions": impressions if implied is None else {**impressions, "implied": implied},
        "retries": {"total": retries_total, "unique": retries_unique},
        "unsubscribes": pair("unsubscribes"),
    }
