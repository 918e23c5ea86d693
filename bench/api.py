"""Timed calls to the v2 API over one keep-alive connection."""

from __future__ import annotations

import statistics
import time
from typing import Any

import httpx
from scale import Scale

V2 = "/v2/ms"


class Api:
    def __init__(self, base_url: str, token: str) -> None:
        self.client = httpx.Client(
            base_url=base_url + V2,
            params={"access_token": token},
            timeout=httpx.Timeout(300, connect=10),
        )

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        response = self.client.get(path, params=params)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path} {params}: {response.status_code} {response.text[:300]}")
        return response.json()

    def medians(self, scale: Scale, *calls: tuple[str, dict[str, Any]]) -> tuple[list[float], int]:
        """Median milliseconds of each GET (answer read in full) and how many runs each had.

        One unmeasured warm-up call each, then the calls in turns, so that load from others
        on a shared machine falls on all of them alike.
        """
        for path, params in calls:
            self.get(path, params)
        times: list[list[float]] = [[] for _ in calls]
        deadline = time.monotonic() + scale.budget_seconds
        while len(times[0]) < scale.runs and (len(times[0]) < 3 or time.monotonic() < deadline):
            for (path, params), out in zip(calls, times, strict=True):
                t0 = time.perf_counter()
                self.get(path, params)
                out.append((time.perf_counter() - t0) * 1000)
        return [statistics.median(t) for t in times], len(times[0])

    def total(self, path: str, params: dict[str, Any] | None = None) -> int:
        return int(self.get(path, {**(params or {}), "limit": 0, "total": "true"})["total"])

    def stream(self, path: str, params: dict[str, Any]) -> tuple[int, int, float]:
        """(rows, bytes, seconds) of a streamed NDJSON answer."""
        rows = size = 0
        t0 = time.perf_counter()
        with self.client.stream("GET", path, params=params) as response:
            if response.status_code != 200:
                raise RuntimeError(f"GET {path}: {response.status_code}")
            for chunk in response.iter_raw(1 << 16):
                rows += chunk.count(b"\n")
                size += len(chunk)
        return rows, size, time.perf_counter() - t0
