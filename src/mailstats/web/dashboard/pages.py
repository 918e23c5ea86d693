"""The dashboard's pages: the account's emailings, one emailing, one recipient, and exports.

Each page gathers its figures from the store in one thread hop and renders a template; the
charts' data is embedded as JSON (the same objects the chart API answers), and every figure
is also in a table, so the pages work without JavaScript.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from mailstats.errors import InvalidParameter, NotFound
from mailstats.kinds import ABUSES, CLICKS, ERRORS, IMPRESSIONS, KINDS, UNSUBSCRIBES
from mailstats.serialize import csv_chunks
from mailstats.store import Account, Filter, Scope, Store
from mailstats.store.charts import edges
from mailstats.web import charts, context, params
from mailstats.web.dashboard import auth, clickmap
from mailstats.web.dashboard.render import page

PAGE_SIZE = 20
SORTS = ("created", "subject", "recipients")
_CODES = {kind.code: kind.name for kind in KINDS.values()}


def _int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        raise InvalidParameter(f"Invalid value for parameter '{name}': a whole number")
    return int(raw)


def _figures(
    store: Store, scope: Scope, begin: int | None, end: int | None, people: bool = False
) -> dict[str, Any]:
    """Recipients with an event of each kind (deliveries: their total), and totals; with
    `people`, of settled human events only (`bots=exclude`). `machines` is the share of
    opens and clicks that are settled machine events (from the counters)."""
    bots = "exclude" if people else "include"
    stats = store.statistics(scope, begin, end, bots)["counts"]
    out: dict[str, Any] = {name: pair[1] for name, pair in stats.items()}
    out["deliveries"] = stats["deliveries"][0]
    out["clicks"] = store.charts.recipients(scope, CLICKS, begin, end, people)
    out["totals"] = {name: pair[0] for name, pair in stats.items()}
    every = stats if not people else store.statistics(scope, begin, end)["counts"]
    machines = store.statistics(scope, begin, end, "only", uniques=False)["counts"]
    out["machines"] = {
        name: round(machines[name][0] / every[name][0], 4) if every[name][0] else 0.0
        for name in ("impressions", "clicks")
    }
    return out


def _countries(
    store: Store, scope: Scope, begin: int | None, end: int | None, people: bool = False
) -> list[dict[str, Any]]:
    """Clicks and opens per country of origin, with each country's share of both (over
    all time and every event: from the counters)."""
    rows = []
    if begin is None and end is None and not people:
        found = store.charts.countries(scope, (CLICKS, IMPRESSIONS))
        per = {c: (k.get(CLICKS.code, (0, 0)), k.get(IMPRESSIONS.code, (0, 0))) for c, k in found}
    else:
        bots = "exclude" if people else "include"
        grouped = store.statistics_by_country(scope, begin, end, bots=bots)
        per = {c: (f["counts"]["clicks"], f["counts"]["impressions"]) for c, f in grouped.items()}
    for country, ((clicks, unique), (opens, _)) in per.items():
        if clicks or opens:
            rows.append({"country": country, "clicks": clicks, "unique": unique, "opens": opens})
    return sorted(rows, key=lambda r: (r["country"] == "", -r["clicks"] - r["opens"]))


def _sparkline(store: Store, scope: Scope, created: int, tz: ZoneInfo) -> str:
    """SVG points of opens plus clicks per day over the emailing's first seven days."""
    first = datetime.fromtimestamp(created, tz).date()
    bounds = edges(first, first + timedelta(days=6), "day", tz)
    days = [0] * 7
    for name in ("impressions", "clicks"):
        for i, (n, _) in enumerate(store.charts.buckets(scope, KINDS[name], bounds)):
            days[i] += n
    top = max(days) or 1
    return " ".join(f"{i * 10},{20 - 18 * n / top:.1f}" for i, n in enumerate(days))


async def overview(request: Request) -> Response:
    account = await auth.account(request)
    st = context.state(request)
    tz = st.zone(account.timezone)
    sort = request.query_params.get("sort", "created")
    if sort not in SORTS:
        raise InvalidParameter("Invalid value for parameter 'sort': created, subject or recipients")
    descending = request.query_params.get("order", "desc") != "asc"
    number = max(1, _int(request, "page", 1))

    def load() -> tuple[list[dict[str, Any]], int]:
        rows, total = st.read.charts.emailings(
            account.id,
            sort=sort,
            descending=descending,
            start=(number - 1) * PAGE_SIZE,
            limit=PAGE_SIZE,
        )
        items = []
        for emailing_id, created, subject, recipients in rows:
            scope = Scope(account.id, emailing_id=emailing_id)
            items.append(
                {
                    "id": emailing_id,
                    "created": created,
                    "subject": subject,
                    "recipients": recipients,
                    "figures": _figures(st.read, scope, None, None),
                    "spark": _sparkline(st.read, scope, created, tz),
                }
            )
        return items, total

    items, total = await context.run(load)
    hooks = await context.run(st.store.webhooks.all, account.id, 0, 50)
    pages = max(1, -(-total // PAGE_SIZE))
    return page(
        request,
        "overview.html",
        account=account,
        tz=tz,
        items=items,
        webhooks=hooks.rows,
        total=total,
        number=number,
        pages=pages,
        sort=sort,
        order="desc" if descending else "asc",
    )


def _emailing_page(
    store: Store, account: Account, emailing_id: int, tz: ZoneInfo, query: dict[str, list[str]],
    recipients_page: int,
) -> dict[str, Any]:  # fmt: skip
    scope = Scope(account.id, emailing_id=emailing_id)
    emailing = store.emailing(account.id, emailing_id)
    rng = charts.resolve_range(store, scope, emailing, tz, query)
    people = params.bots(query) == "exclude"  # the human-only switch
    begin, end = charts.window(rng)
    links = charts.links(store, scope, rng, people)
    per_link = {int(item["ID"]): int(item["total"]) for item in links["data"]}
    dests = store.destinations(
        account.id, emailing_id, start=recipients_page * PAGE_SIZE, limit=PAGE_SIZE, total=False
    )
    return {
        "emailing": emailing,
        "range": rng,
        "people": people,
        "figures": _figures(store, scope, begin, None if end is None else end - 1, people),
        "timeline": charts.timeline(store, scope, rng, tz, people),
        "links": links,
        "clickmap": clickmap.render(emailing.html, store.links(emailing_id), per_link),
        "clients": charts.clients(store, scope, rng, people),
        "countries": _countries(store, scope, begin, None if end is None else end - 1, people),
        "bounces": charts.bounces(store, scope, rng),
        "recent": {
            "errors": store.charts.recent(scope, ERRORS, "errorcode", begin, end),
            "abuses": store.charts.recent(scope, ABUSES, None, begin, end),
            "unsubscribes": store.charts.recent(scope, UNSUBSCRIBES, None, begin, end),
        },
        "destinations": dests.rows,
        "recipients_page": recipients_page,
        "presets": ["all", *charts.PRESETS],
    }


async def emailing(request: Request) -> Response:
    account = await auth.account(request)
    st = context.state(request)
    tz = st.zone(account.timezone)
    emailing_id = context.path_id(request)
    query = {k: request.query_params.getlist(k) for k in request.query_params}
    query = {k: v for k, v in query.items() if v and v[-1] != ""}
    rpage = _int(request, "rpage", 0)
    data = await context.run(_emailing_page, st.read, account, emailing_id, tz, query, rpage)
    return page(request, "emailing.html", account=account, tz=tz, **data)


async def destination(request: Request) -> Response:
    account = await auth.account(request)
    st = context.state(request)
    tz = st.zone(account.timezone)
    destination_id = context.path_id(request)

    def load() -> dict[str, Any]:
        dest = st.read.destination(account.id, destination_id)
        emailing = st.read.emailing(account.id, dest.emailing_id)
        rows = st.read.charts.timeline(Scope(account.id, destination_id=destination_id))
        events = [
            {
                "id": r[0], "kind": _CODES.get(int(r[1]), "?"), "ts": r[2], "url": r[3],
                "ip": r[4], "useragent": r[5], "device": r[6], "attempts": r[7],
                "status": r[8], "errorcode": r[9], "description": r[10], "errortype": r[11],
            }
            for r in rows
        ]  # fmt: skip
        return {"destination": dest, "emailing": emailing, "events": events}

    data = await context.run(load)
    return page(request, "destination.html", account=account, tz=tz, **data)


async def export(request: Request) -> Response:
    """One kind of the emailing's events over the page's range, as the streaming CSV export."""
    account = await auth.account(request)
    st = context.state(request)
    tz = st.zone(account.timezone)
    emailing_id = context.path_id(request)
    kind = KINDS.get(request.path_params["kind"])
    if kind is None:
        raise NotFound()
    query = {k: request.query_params.getlist(k) for k in request.query_params}
    query = {k: v for k, v in query.items() if v and v[-1] != ""}
    scope = Scope(account.id, emailing_id=emailing_id)

    def prepare() -> charts.Range:
        found = st.read.emailing(account.id, emailing_id)
        return charts.resolve_range(st.read, scope, found, tz, query)

    rng = await context.run(prepare)
    rows = st.read.stream_events(kind, scope, Filter(rng.begin, rng.end - 1))
    name = f"emailing-{emailing_id}-{kind.name}-{rng.first}-{rng.last}.csv"
    return StreamingResponse(
        csv_chunks(kind, rows, tz),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
