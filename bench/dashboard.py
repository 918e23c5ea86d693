"""Measurement: the dashboard's emailing page of the big emailing, signed in, and the chart
JSON behind it, against GET ms/emailing/$id (a primary-key lookup) as the ceiling."""

from __future__ import annotations

import re
import statistics
import time

import httpx
from api import V2, Api
from dataset import DataSet
from results import Goal, Result
from scale import Scale

from mailstats.store import Store

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def _signed_in(base_url: str, token: str) -> httpx.Client:
    client = httpx.Client(base_url=base_url, timeout=httpx.Timeout(300, connect=10))
    page = client.get("/dashboard/login")
    found = _CSRF.search(page.text)
    assert found is not None, page.text[:300]
    answer = client.post("/dashboard/login", data={"csrf": found.group(1), "token": token})
    if answer.status_code != 303:
        raise RuntimeError(f"dashboard sign-in: {answer.status_code}")
    return client


def _median_ms(client: httpx.Client, path: str, scale: Scale) -> tuple[float, int]:
    client.get(path)  # warm-up, unmeasured
    times: list[float] = []
    deadline = time.monotonic() + scale.budget_seconds
    while len(times) < scale.runs and (len(times) < 3 or time.monotonic() < deadline):
        t0 = time.perf_counter()
        response = client.get(path)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}: {response.status_code}")
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), len(times)


def measure(api: Api, store: Store, data: DataSet, scale: Scale, backend: str) -> list[Result]:
    emailing = data.big.emailing_id
    path = f"/emailing/{emailing}"
    (lookup, timeline), runs = api.medians(scale, (path, {}), (path + "/charts/timeline", {}))
    answer = api.get(path + "/statistics")
    events = sum(v["total"] for k, v in answer.items() if k not in ("destinations", "retries"))
    base = str(api.client.base_url).rstrip("/").removesuffix(V2)
    client = _signed_in(base, data.token)
    try:
        page, page_runs = _median_ms(client, f"/dashboard/emailing/{emailing}", scale)
    finally:
        client.close()
    note = f"emailing {emailing}: {events:,} events; median of {runs}; ceiling GET ms/emailing/$id"
    page_note = (f"emailing {emailing}: {events:,} events; median of {page_runs}; the whole"
                 " page: funnel, chart, links, click map, clients, bounces, lists")  # fmt: skip
    return [
        Result("chart_timeline", backend, timeline, "ms", lookup, None, note),
        Result(
            "dashboard_page", backend, page, "ms", lookup, Goal("value", "<", 200, "ms"), page_note
        ),
    ]
