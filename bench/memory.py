"""Measurement 8: the server's peak RSS (VmHWM) while it exports every click as NDJSON."""

from __future__ import annotations

from api import Api
from databases import Database
from dataset import DataSet
from results import Goal, Result
from servers import Mailstats, vm_kb

LIMIT_MB = 150


def measure(db: Database, data: DataSet) -> list[Result]:
    with Mailstats(db, workers=1) as server, Api(server.url, data.token) as api:
        start_kb = vm_kb(server.pid, "VmHWM")
        rows, size, seconds = api.stream("/clicks", {"format": "ndjson"})
        peak_kb = vm_kb(server.pid, "VmHWM")
    note = (
        f"{rows:,} rows, {size / 1e6:,.0f} MB in {seconds:.1f} s ({rows / seconds:,.0f} rows/s);"
        f" {start_kb / 1024:.0f} MB after start-up"
    )
    return [Result("export_memory", db.backend, peak_kb / 1024, "MB", None,
                   Goal("value", "<", LIMIT_MB, "MB"), note)]  # fmt: skip
