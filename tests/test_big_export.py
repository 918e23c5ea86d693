"""Exporting a multi-million-row range streams in bounded memory, over HTTP and from the CLI.

Rows go straight into the store in large batches; the export is counted as it streams,
never held. The figures (rows, seconds, rows/s, peak RSS) are printed with the result.
MAILSTATS_BIG_EXPORT_ROWS overrides the row count (1,000,000 on SQLite, 300,000 on
PostgreSQL, whose insert and export run at a fraction of SQLite's rate), so that each
backend stays near 90 s; the timeout leaves room for 2,000,000 rows on request.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest

from mailstats.kinds import CLICKS
from mailstats.store import Event, open_store
from tests import server
from tests.helpers import utc
from tests.test_soak import rss_kb

ROWS = {"sqlite": 1_000_000, "postgres": 300_000}
BATCH = 20_000
MAX_RSS_MB = 250
_ID = re.compile(rb'^\{"ID":"(\d+)"')


def seed(db: str, rows: int) -> float:
    """`rows` clicks of one emailing over 100 destinations and 3 links; the insert seconds."""
    store = open_store(db)
    try:
        account = store.account("acme").id
        links = [(0, 1, f"https://shop.example/{n}") for n in range(3)]
        emailing = store.create_emailing(
            account, subject="Big", from_name="Shop", from_email="news@shop.example",
            html="<html></html>", text=None, tags=[], type="mass", links=links,
        )  # fmt: skip
        items: list[dict[str, Any]] = [{"email": f"r{n}@example.org", "profile": f"P{n}", "subprofile": None,
                  "fields": {}} for n in range(100)]  # fmt: skip
        destinations = store.create_destinations(account, emailing, items)
        link_ids = [k.id for k in store.links(emailing)]
        values = ("192.0.2.1", "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0")
        base = utc(2024, 1, 1)
        began = time.monotonic()
        for at in range(0, rows, BATCH):
            store.insert_events(
                [
                    Event(CLICKS, n.to_bytes(16, "big"), base + n, account, emailing,
                          destinations[n % 100], link_ids[n % 3], values)
                    for n in range(at, min(rows, at + BATCH))
                ]
            )  # fmt: skip
        return time.monotonic() - began
    finally:
        store.close()


def count_ordered(lines: Iterable[bytes]) -> int:
    """How many NDJSON rows, checking that their IDs strictly increase."""
    count, last = 0, 0
    for line in lines:
        if not line:
            continue
        found = _ID.match(line)
        assert found is not None, line[:200]
        current = int(found[1])
        assert current > last, (last, current)
        count, last = count + 1, current
    return count


def report(capsys: pytest.CaptureFixture[str], record: Callable[[str, object], None],
           what: str, figures: dict[str, object]) -> None:  # fmt: skip
    for name, value in figures.items():
        record(f"{what}_{name}", value)
    line = f"big export {what} " + " ".join(f"{k}={v}" for k, v in figures.items())
    print(line)
    with capsys.disabled():
        print("\n" + line)


@pytest.mark.timeout(600)
def test_big_export_streams_in_bounded_memory(
    backend: str,
    db_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    record_property: Callable[[str, object], None],
) -> None:
    rows = int(os.environ.get("MAILSTATS_BIG_EXPORT_ROWS", ROWS[backend]))
    token = server.make_token(db_url)
    inserted = seed(db_url, rows)
    report(capsys, record_property, "insert", {
        "backend": backend, "rows": rows, "seconds": round(inserted, 1),
        "rows_per_s": round(rows / inserted),
    })  # fmt: skip

    with server.running(db_url, env={"MAILSTATS_SPOOL": str(tmp_path / "spool")}) as srv:
        began = time.monotonic()
        with httpx.stream(
            "GET",
            f"{srv.url}/v2/ms/clicks",
            params={"access_token": token, "format": "ndjson"},
            timeout=120,
        ) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("application/x-ndjson")
            exported = count_ordered(line.encode() for line in r.iter_lines())
        seconds = time.monotonic() - began
        peak_mb = rss_kb(srv.process.pid)[1] / 1024
        assert srv.stop() == 0
    report(capsys, record_property, "http", {
        "backend": backend, "rows": exported, "seconds": round(seconds, 1),
        "rows_per_s": round(exported / seconds), "peak_rss_mb": round(peak_mb, 1),
    })  # fmt: skip
    assert exported == rows
    assert peak_mb < MAX_RSS_MB

    out = tmp_path / "clicks.ndjson"
    began = time.monotonic()
    cli_peak_mb = run_measured(
        [sys.executable, "-m", "mailstats", "export", "clicks", "--account", "acme",
         "--db", db_url, "--format", "ndjson", "-o", str(out)]
    )  # fmt: skip
    seconds = time.monotonic() - began
    with out.open("rb") as f:
        written = count_ordered(line.rstrip(b"\n") for line in f)
    report(capsys, record_property, "cli", {
        "backend": backend, "rows": written, "seconds": round(seconds, 1),
        "rows_per_s": round(written / seconds), "peak_rss_mb": round(cli_peak_mb, 1),
    })  # fmt: skip
    assert written == rows
    assert cli_peak_mb < MAX_RSS_MB


# A fresh Python in between, so that RUSAGE_CHILDREN covers the export alone and not the
# server or any other child this test process has waited for.
_MEASURE = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, env={**__import__("os").environ, "MAILSTATS_DB": ""})
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def run_measured(args: list[str]) -> float:
    """Run a command to completion; its peak RSS in MB (ru_maxrss is in kB on Linux)."""
    assert resource.RUSAGE_CHILDREN  # Linux semantics
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, *args], check=True, capture_output=True, text=True
    )
    return int(done.stdout.strip().splitlines()[-1]) / 1024
