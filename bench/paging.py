"""Measurements 3 to 5: deep pages, `fields[]=ID>n` pages and unique pages of ms/clicks.

Each figure is the median time of a GET over a keep-alive connection, answer read in full.
Deep and ID pages ask `total=false`, so that the count does not hide the cost of the page.
"""

from __future__ import annotations

from api import Api
from dataset import DataSet, local
from flows import DAY
from results import Goal, Result
from scale import Scale

from mailstats.kinds import CLICKS
from mailstats.store import Filter, Scope, Store

PAGE = {"limit": 100, "total": "false"}


def _deep_start(scale: Scale, rows: int) -> int:
    if scale.deep_start is not None and scale.deep_start + 100 <= rows:
        return scale.deep_start
    return int(rows * 0.8)


def _deep(api: Api, scale: Scale, backend: str, name: str, extra: dict[str, str]) -> Result:
    rows = api.total("/clicks", extra)
    start = _deep_start(scale, rows)
    first = ("/clicks", {**PAGE, **extra})
    (first_ms, deep_ms), runs = api.medians(scale, first, ("/clicks", {**first[1], "start": start}))
    where = f" from {extra['begintime']} to {extra['endtime']}" if extra else ""
    note = f"start={start:,} of {rows:,} clicks{where}; median of {runs}; ceiling: start=0"
    return Result(name, backend, deep_ms, "ms", first_ms, Goal("ratio", "<=", 3), note)


def measure_deep(api: Api, store: Store, data: DataSet, scale: Scale, backend: str) -> list[Result]:
    end = data.start + data.days * 3 // 4 * DAY - 1  # the first nine months
    window = {"begintime": local(data.start), "endtime": local(end)}
    return [
        _deep(api, scale, backend, "page_deep", {}),
        _deep(api, scale, backend, "page_deep_timerange", window),
    ]


def _id_at(store: Store, data: DataSet, position: int) -> int:
    page = store.events(CLICKS, Scope(data.account_id), Filter(), start=position, limit=1,
                        total=False)  # fmt: skip
    return int(page.rows[0][0])


def measure_ids(api: Api, store: Store, data: DataSet, scale: Scale, backend: str) -> list[Result]:
    rows = api.total("/clicks")
    where = {"middle": rows // 2, "end": rows - 101}
    ids = {name: _id_at(store, data, position) for name, position in where.items()}
    pages = [("/clicks", {**PAGE, "fields[]": f"ID>{n}"}) for n in ids.values()]
    (first, *times), runs = api.medians(scale, ("/clicks", PAGE), *pages)
    return [
        Result(f"page_id_{name}", backend, ms, "ms", first, Goal("ratio", "<=", 1.5),
               f"ID>{ids[name]} (click {where[name]:,} of {rows:,}); median of {runs};"
               " ceiling: the first page")
        for name, ms in zip(where, times, strict=True)
    ]  # fmt: skip


def measure_unique(api: Api, store: Store, data: DataSet, scale: Scale,
                   backend: str) -> list[Result]:  # fmt: skip
    plain = ("/clicks", {"limit": 100})
    (plain_ms, unique_ms), runs = api.medians(
        scale, plain, ("/clicks", {**plain[1], "unique": "true"})
    )
    totals = api.total("/clicks"), api.total("/clicks", {"unique": "true"})
    note = (f"{totals[1]:,} unique of {totals[0]:,} clicks; both with total; median of {runs};"
            " ceiling: the plain page")  # fmt: skip
    return [Result("page_unique", backend, unique_ms, "ms", plain_ms, Goal("ratio", "<=", 2), note)]
