"""Measurement 2: a month of clicks as NDJSON over HTTP, against the same bytes made in-process."""

from __future__ import annotations

import calendar
import statistics
import time
from collections import Counter
from datetime import datetime, timedelta

from api import Api
from dataset import ZONE, DataSet, local
from flows import DAY
from results import Goal, Result
from scale import Scale

from mailstats.kinds import CLICKS
from mailstats.serialize import ndjson_chunks
from mailstats.store import Filter, Scope, Store

GOAL = 0.60


def busiest_month(data: DataSet) -> tuple[int, int]:
    """(first, last second) of the whole calendar month, in the account's zone, with most clicks."""
    clicks: Counter[tuple[int, int]] = Counter()
    days: Counter[tuple[int, int]] = Counter()
    for day, count in enumerate(data.clicks_per_day):
        noon = datetime.fromtimestamp(data.start + day * DAY + DAY // 2, ZONE)
        clicks[noon.year, noon.month] += count
        days[noon.year, noon.month] += 1
    whole = [m for m in clicks if days[m] == calendar.monthrange(*m)[1]]
    year, month = max(whole, key=lambda m: clicks[m])
    first = datetime(year, month, 1, tzinfo=ZONE)
    after = (first + timedelta(days=32)).replace(day=1)
    return int(first.timestamp()), int(after.timestamp()) - 1


def in_process(store: Store, data: DataSet, begin: int, end: int) -> tuple[int, int, float]:
    """(rows, bytes, seconds): Store.stream_events through the API's own NDJSON serialiser."""
    rows = size = 0
    t0 = time.perf_counter()
    events = store.stream_events(CLICKS, Scope(data.account_id), Filter(begin, end))
    for chunk in ndjson_chunks(CLICKS, events, ZONE):
        rows += chunk.count(b"\n")
        size += len(chunk)
    return rows, size, time.perf_counter() - t0


def measure(api: Api, store: Store, data: DataSet, scale: Scale, backend: str) -> list[Result]:
    begin, end = busiest_month(data)
    params = {"format": "ndjson", "begintime": local(begin), "endtime": local(end)}
    in_process(store, data, begin, end)  # warm the caches for both
    http, local_runs = [], []
    for _ in range(scale.export_runs):  # in turns, as Api.medians does
        http.append(api.stream("/clicks", params))
        local_runs.append(in_process(store, data, begin, end))
    rows, size = http[0][:2]
    same = (rows, size) == local_runs[0][:2]
    rate = statistics.median(r / s for r, _, s in http)
    ceiling = statistics.median(r / s for r, _, s in local_runs)
    note = (
        f"{params['begintime'][:7]}: {rows:,} rows, {size / 1e6:.1f} MB, median of"
        f" {scale.export_runs}; ceiling Store.stream_events + serialize.ndjson_chunks in one"
        f" process ({'same bytes' if same else 'DIFFERENT output: ' + str(local_runs[0][:2])})"
    )
    return [Result("export_month", backend, rate, "rows/s", ceiling, Goal("ratio", ">=", GOAL),
                   note)]  # fmt: skip
