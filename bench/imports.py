"""Measurement 7: bulk NDJSON import (POST ms/events) against the database's own bulk path.

The ceiling writes the same rows (as Store.insert_events would make them, with keys of their
own) into `events` itself, in transactions of the same size as the POSTs: PostgreSQL COPY, or
SQLite executemany; then deletes them again. It skips what the import does besides: the
`first` flags, idempotency, the counters. The table is the real one, with its millions of
rows: random keys and destinations land in indexes far larger than any cache, which an empty
scratch table would hide.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Iterator, Sequence
from typing import Any

import orjson
from api import Api
from dataset import DataSet, local
from flows import DAY
from results import Goal, Result
from scale import Scale

from mailstats.ingest import event_key
from mailstats.kinds import KINDS
from mailstats.store import Event, Store
from mailstats.store.events import INSERT_COLUMNS, event_row

GOAL = 0.50
# as the store's own connections have them
_SQLITE_PRAGMAS = ("journal_mode = WAL", "synchronous = FULL", "busy_timeout = 10000",
                   "cache_size = -65536")  # fmt: skip
HARD_BOUNCE = (
    "5.1.1", "550", "550 5.1.1 <r@example.com>: Recipient address rejected", "hard", "userunknown",
)  # fmt: skip


def _item(data: DataSet, rng: random.Random, n: int, run: str) -> tuple[dict[str, Any], Event]:
    """One reported event as an NDJSON object and as the Event the server should make of it."""
    flow = rng.choice(data.flows[1:])
    dest = flow.first_dest + rng.randrange(flow.dests)
    ts = data.start + data.days * DAY - rng.randrange(30 * DAY)
    item: dict[str, Any] = {"destination": dest, "timestamp": local(ts), "key": f"{run}-{n}"}
    if n % 5 == 4:
        kind, values = KINDS["errors"], HARD_BOUNCE
        fields = ("status", "errorcode", "description", "errortype", "reason")
        item.update(zip(fields, values, strict=True))
    else:
        kind, values = KINDS["deliveries"], (1 + n % 7 // 6,)
        item["attempts"] = values[0]
    item["kind"] = kind.name
    key = event_key(data.account_id, item["key"])
    return item, Event(kind, key, ts, data.account_id, flow.emailing_id, dest, 0, values)


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for at in range(0, len(items), size):
        yield items[at : at + size]


def _post_all(api: Api, lines: list[bytes], size: int) -> tuple[int, float]:
    created = 0
    t0 = time.perf_counter()
    for batch in _batches(lines, size):
        response = api.client.post("/events", content=b"\n".join(batch))
        if response.status_code != 201:
            raise RuntimeError(f"POST ms/events: {response.status_code} {response.text[:300]}")
        created += int(response.headers["x-created"])
    return created, time.perf_counter() - t0


def _copy_postgres(store: Store, rows: list[tuple], size: int) -> float:
    columns = ", ".join(INSERT_COLUMNS)
    with store.backend.pool.connection() as conn:  # type: ignore[attr-defined]
        last = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
        try:
            t0 = time.perf_counter()
            for batch in _batches(rows, size):
                with (
                    conn.transaction(),
                    conn.cursor().copy(f"COPY events ({columns}) FROM STDIN") as copy,
                ):
                    for row in batch:
                        copy.write_row(row)
            return time.perf_counter() - t0
        finally:
            with conn.transaction():
                conn.execute("DELETE FROM events WHERE id > %s", (last,))


def _insert_sqlite(path: str, rows: list[tuple], size: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    sql = (f"INSERT INTO events ({', '.join(INSERT_COLUMNS)})"
           f" VALUES ({', '.join('?' for _ in INSERT_COLUMNS)})")  # fmt: skip
    try:
        for pragma in _SQLITE_PRAGMAS:
            conn.execute(f"PRAGMA {pragma}")
        last = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
        try:
            t0 = time.perf_counter()
            for batch in _batches(rows, size):
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(sql, batch)
                conn.execute("COMMIT")
            return time.perf_counter() - t0
        finally:
            conn.execute("DELETE FROM events WHERE id > ?", (last,))
    finally:
        conn.close()


def measure(api: Api, store: Store, data: DataSet, scale: Scale, backend: str) -> list[Result]:
    run = f"import-{time.time_ns()}"
    rng = random.Random(11)
    pairs = [_item(data, rng, n, run) for n in range(scale.import_events)]
    lines = [orjson.dumps(item) for item, _ in pairs]
    # the same events with keys of their own: the imported ones hold theirs now
    rng = random.Random(11)
    again = [_item(data, rng, n, f"{run}-ceiling") for n in range(len(lines))]
    rows = [event_row(event, 0) for _, event in again]
    # An unmeasured first pass, like every other measurement's warm-up call: it reads the
    # pages these destinations need from disk, which would otherwise fall to whichever of
    # the import and the ceiling runs first.
    rng = random.Random(11)
    warm = [orjson.dumps(_item(data, rng, n, f"{run}-warm")[0]) for n in range(len(lines))]
    _, cold = _post_all(api, warm, scale.import_batch)
    created, seconds = _post_all(api, lines, scale.import_batch)
    if backend == "postgres":
        ceiling = _copy_postgres(store, rows, scale.import_batch)
    else:
        ceiling = _insert_sqlite(store.backend.path, rows, scale.import_batch)  # type: ignore[attr-defined]
    how = "COPY" if backend == "postgres" else "executemany"
    note = (
        f"{len(lines):,} deliveries and errors, {scale.import_batch:,} per POST, {created:,}"
        f" created; ceiling: {how} of the same rows into events, transactions of the same size;"
        f" the unmeasured first pass (pages read from disk): {len(warm) / cold:,.0f} events/s"
    )
    return [Result("import_ndjson", backend, len(lines) / seconds, "events/s",
                   len(rows) / ceiling, Goal("ratio", ">=", GOAL), note)]  # fmt: skip
