"""Measurement 6: ms/emailing/$id/statistics of the big emailing against a primary-key lookup."""

from __future__ import annotations

from api import Api
from dataset import DataSet
from results import Goal, Result
from scale import Scale

from mailstats.store import Store


def measure(api: Api, store: Store, data: DataSet, scale: Scale, backend: str) -> list[Result]:
    path = f"/emailing/{data.big.emailing_id}"
    answer = api.get(path + "/statistics")
    events = sum(v["total"] for k, v in answer.items() if k not in ("destinations", "retries"))
    (lookup, stats, human), runs = api.medians(
        scale, (path, {}), (path + "/statistics", {}), (path + "/statistics", {"bots": "exclude"})
    )
    note = (f"emailing {data.big.emailing_id}: {events:,} events; median of {runs};"
            " ceiling GET ms/emailing/$id")  # fmt: skip
    return [
        Result("statistics", backend, stats, "ms", lookup, Goal("ratio", "<=", 20), note),
        Result("statistics_ms", backend, stats, "ms", None, Goal("value", "<", 20, "ms")),
        # settled human events only (issue 12): the per-verdict counters of event_blocks
        Result(
            "statistics_bots_exclude_ms",
            backend,
            human,
            "ms",
            None,
            Goal("value", "<", 20, "ms"),
            note,
        ),
    ]
