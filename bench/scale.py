"""How big a run is: the data set and the time given to each measurement."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scale:
    name: str
    clicks: int  # clicks in the data set; every other kind is sized from this
    days: int = 365
    batch: int = 50_000  # events per Store.insert_events call while building
    warmup_seconds: int = 1  # wrk, unmeasured, before each measured run
    wrk_seconds: int = 10
    connections: int = 64
    tokens: int = 10_000  # distinct /c/ tokens wrk cycles through
    deep_start: int | None = 5_000_000  # None: 80% of the rows
    runs: int = 5  # median of this many timed requests (after one warm-up)
    budget_seconds: float = 90.0  # per timed measurement; at least 3 runs are always made
    export_runs: int = 1
    import_events: int = 100_000
    import_batch: int = 10_000  # NDJSON lines per POST, rows per ceiling transaction
    index_events: int = 500_000  # clicks the indexer derives from the capture log


FULL = Scale("full", clicks=10_000_000)
QUICK = Scale(
    "quick",
    clicks=300_000,
    batch=20_000,
    wrk_seconds=3,
    deep_start=None,
    runs=7,
    budget_seconds=20.0,
    export_runs=3,
    import_events=10_000,
    import_batch=5_000,
    index_events=100_000,
)
