"""What only PostgreSQL has: month partitions, pruning, several writers, concurrent migrations."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import random
import re
import socket
import threading
import time
from collections.abc import Iterator
from importlib import resources

import psycopg
import pytest

from mailstats.kinds import CLICKS, DELIVERIES
from mailstats.store import Event, Filter, Scope, Store, open_store, postgres
from mailstats.store import events as ev
from mailstats.store.partitions import month_of, month_start, partition_name
from mailstats.store.postgres import PostgresBackend
from mailstats.web.params import Condition
from tests.conftest import PG_URL
from tests.helpers import setup_mailing
from tests.pg import fresh_database

pytestmark = pytest.mark.postgres

NOW = int(time.time())
JULY = 2024 * 12 + 6  # month numbers: year * 12 + month - 1


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.config.getoption("--backend") == "sqlite":
        pytest.skip("PostgreSQL only")
    with fresh_database(PG_URL, "pg_" + re.sub(r"\W+", "_", request.node.name)[-30:]) as url:
        yield url


@pytest.fixture
def pg(pg_url: str) -> Iterator[Store]:
    store = open_store(pg_url)
    yield store
    store.close()


def backend(store: Store) -> PostgresBackend:
    assert isinstance(store.backend, PostgresBackend)
    return store.backend


def clicks(account: int, emailing: int, dest: int, link: int, *stamps: int) -> list[Event]:
    return [
        Event(CLICKS, os.urandom(16), ts, account, emailing, dest, link, ("192.0.2.1", "UA"))
        for ts in stamps
    ]


def partitions_of(store: Store) -> dict[str, str]:
    rows = store.backend.fetch(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
        " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'events'::regclass"
    )
    return dict(rows)


def where_stored(store: Store) -> list[tuple[int, int, str]]:
    return [
        tuple(row)
        for row in store.backend.fetch(
            "SELECT id, ts, tableoid::regclass::text FROM events ORDER BY id"
        )
    ]


# -- partitions -------------------------------------------------------------------------


def test_migrate_makes_partitions_from_three_months_back_to_three_ahead(pg: Store) -> None:
    found = partitions_of(pg)
    now = month_of(NOW)
    for month in range(now - 3, now + 4):
        bound = f"FOR VALUES FROM ('{month_start(month)}') TO ('{month_start(month + 1)}')"
        assert found[partition_name(month)] == bound
    assert found["events_default"] == "DEFAULT"


def test_month_bounds_are_utc_month_starts() -> None:
    assert month_start(JULY) == 1719792000  # 2024-07-01 00:00:00 UTC
    assert month_start(JULY + 6) == 1735689600  # 2025-01-01
    assert month_of(1719792000 - 1) == JULY - 1 and month_of(1719792000) == JULY
    assert partition_name(JULY) == "events_2024_07"


def test_maintain_and_migrate_again_change_nothing(pg: Store) -> None:
    before = partitions_of(pg)
    assert backend(pg).migrate() == []
    pg.backend.maintain()
    assert partitions_of(pg) == before


def test_insert_makes_the_partition_a_batch_needs(pg: Store) -> None:
    account, emailing, dests, link = setup_mailing(pg)
    old = month_start(JULY) + 3600
    assert pg.insert_events(clicks(account, emailing, dests[0], link, old, NOW)) == 2
    assert [table for _, _, table in where_stored(pg)] == [
        "events_2024_07",
        partition_name(month_of(NOW)),
    ]


def test_insert_into_a_partition_another_node_made(pg_url: str, pg: Store) -> None:
    account, emailing, dests, link = setup_mailing(pg)
    other = open_store(pg_url, migrate=False)
    try:
        other.insert_events(clicks(account, emailing, dests[0], link, month_start(JULY)))
    finally:
        other.close()
    # this node's cache does not know the partition yet; making it again is a no-op
    assert pg.insert_events(clicks(account, emailing, dests[1], link, month_start(JULY))) == 1
    assert [table for _, _, table in where_stored(pg)] == ["events_2024_07"] * 2


def test_default_partition_is_a_fallback_emptied_when_the_month_is_made(pg: Store) -> None:
    account, emailing, dests, link = setup_mailing(pg)
    ancient = month_start(1990 * 12) + 5  # outside the window insert_events makes tables for
    assert pg.insert_events(clicks(account, emailing, dests[0], link, ancient)) == 1
    [(event_id, _, table)] = where_stored(pg)
    assert table == "events_default"
    backend(pg).partitions.create(1990 * 12)
    assert where_stored(pg) == [(event_id, ancient, "events_1990_01")]
    # the moved row is still the same event: a replay inserts nothing
    page = pg.events(CLICKS, Scope(account), Filter(), start=0, limit=10, total=True)
    assert page.total == 1 and page.rows[0][0] == event_id


def test_a_time_range_reads_only_its_months_partition(pg: Store) -> None:
    account, emailing, dests, link = setup_mailing(pg)
    stamps = [month_start(m) + 86400 for m in (JULY - 1, JULY, JULY + 1)]
    pg.insert_events(clicks(account, emailing, dests[0], link, *stamps))
    july = Filter(begin=month_start(JULY), end=month_start(JULY + 1) - 1)
    q = ev.where(CLICKS, Scope(account, emailing), july, "%s", "ILIKE")
    plans = {
        "list": pg.backend.fetch("EXPLAIN " + ev.list_sql(CLICKS, q), [*q.args, 100, 0]),
        "count": pg.backend.fetch("EXPLAIN " + ev.count_sql(CLICKS, q), q.args),
        "stream": pg.backend.fetch("EXPLAIN " + ev.stream_sql(CLICKS, q), [*q.args, 0, 100]),
    }
    for name, rows in plans.items():
        plan = "\n".join(row[0] for row in rows)
        touched = set(re.findall(r"\bon (events_\w+)", plan))
        assert touched == {"events_2024_07"}, (name, plan)
    page = pg.events(CLICKS, Scope(account, emailing), july, start=0, limit=10, total=True)
    assert page.total == 1 and page.rows[0][3] == stamps[1]


def test_a_prepared_generic_plan_prunes_when_it_runs(pg: Store) -> None:
    """After a few runs psycopg prepares the statement; its generic plan prunes at start-up."""
    account, emailing, dests, link = setup_mailing(pg)
    pg.insert_events(clicks(account, emailing, dests[0], link, month_start(JULY) + 1))
    july = Filter(begin=month_start(JULY), end=month_start(JULY + 1) - 1)
    q = ev.where(CLICKS, Scope(account), july, "%s", "ILIKE")
    args = [*q.args, 100, 0]
    numbered = iter(range(1, len(args) + 1))
    sql = re.sub("%s", lambda _: f"${next(numbered)}", ev.list_sql(CLICKS, q))
    values = ", ".join(str(int(arg)) for arg in args)  # EXECUTE takes no parameters
    with backend(pg).pool.connection() as conn:
        conn.execute("SET plan_cache_mode = force_generic_plan")
        conn.execute("PREPARE july AS " + sql)
        rows = conn.execute(
            f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE july({values})"
        ).fetchall()
        conn.execute("DEALLOCATE july")
        conn.execute("RESET plan_cache_mode")
    plan = "\n".join(row[0] for row in rows)
    assert "Subplans Removed" in plan
    assert set(re.findall(r"\bon (events_\w+)", plan)) == {"events_2024_07"}, plan


# -- first flags: the same as SQLite -----------------------------------------------------


@pytest.fixture
def twins(pg: Store, tmp_path: os.PathLike[str]) -> Iterator[tuple[Store, Store]]:
    """The same mailing on SQLite and on PostgreSQL, to compare what each stores."""
    lite = open_store(os.path.join(tmp_path, "twin.db"))
    try:
        assert setup_mailing(lite) == setup_mailing(pg)
        yield lite, pg
    finally:
        lite.close()


def same_events(lite: Store, pg: Store) -> list[tuple[int, int, int, int]]:
    """(kind, destination, ts, first) in ID order, checked equal on both backends.

    IDs themselves may differ: a sequence value drawn by a transaction that rolled back is
    not given back, where SQLite would hand out the same ID again.
    """
    sql = "SELECT kind, destination_id, ts, first FROM events ORDER BY id"
    rows = lite.backend.fetch(sql)
    assert [tuple(r) for r in pg.backend.fetch(sql)] == rows
    return rows


def test_first_flags_and_counts_match_sqlite(twins: tuple[Store, Store]) -> None:
    lite, pg = twins
    account, emailing, (d0, d1, d2), link = 1, 1, (1, 2, 3), 1
    a = clicks(account, emailing, d0, link, NOW, NOW + 1)  # one group twice
    b = clicks(account, emailing, d1, link, NOW + 2)
    c = [Event(DELIVERIES, os.urandom(16), NOW, account, emailing, d0, 0, (2,))]
    later = clicks(account, emailing, d0, link, NOW + 9)  # the group has its first already
    d = clicks(account, emailing, d2, link, NOW + 3)
    batches = [a + b, a + c, [*later, b[0], *d], d + d, c]
    counts = [[s.insert_events(batch) for batch in batches] for s in (lite, pg)]
    assert counts[0] == counts[1] == [3, 1, 2, 0, 0]
    assert [first for *_, first in same_events(lite, pg)] == [1, 0, 1, 1, 0, 1]
    stats = [s.statistics(Scope(account), None, None) for s in (lite, pg)]
    assert stats[0] == stats[1]


def test_an_earlier_event_arriving_late_takes_the_flag(twins: tuple[Store, Store]) -> None:
    lite, pg = twins
    batches = [
        clicks(1, 1, 1, 1, NOW + 10, NOW + 5),  # in one batch: the later-stored is earlier
        clicks(1, 1, 1, 1, NOW + 7, NOW + 3, NOW + 3),  # from a spool: earlier still, a tie
        clicks(1, 1, 1, 1, NOW + 3),  # a tie with the holder: the holder keeps it
    ]
    for store in (lite, pg):
        assert [store.insert_events(batch) for batch in batches] == [2, 3, 1]
    assert [first for *_, first in same_events(lite, pg)] == [0, 0, 0, 1, 0, 0]


def test_a_key_seen_before_at_another_time_is_a_replay(twins: tuple[Store, Store]) -> None:
    lite, pg = twins
    [event] = clicks(1, 1, 1, 1, NOW)
    later = dataclasses.replace(event, ts=NOW + 40 * 86400)  # even in another month
    for store in (lite, pg):
        assert [store.insert_events([event]), store.insert_events([later, later])] == [1, 0]
    assert same_events(lite, pg) == [(1, 1, NOW, 1)]


def test_random_batches_store_the_same_on_both(twins: tuple[Store, Store]) -> None:
    rng = random.Random(7)
    lite, pg = twins
    sent: list[Event] = []
    for _ in range(40):
        batch = []
        for _ in range(rng.randint(1, 30)):
            if sent and rng.random() < 0.2:
                replay = rng.choice(sent)  # maybe of this very batch
                if rng.random() < 0.5:  # an idempotency key retried at another time
                    replay = dataclasses.replace(replay, ts=replay.ts + rng.randint(-5, 5))
                batch.append(replay)
                continue
            kind = rng.choice([CLICKS, DELIVERIES])
            values = ("192.0.2.1", "UA") if kind is CLICKS else (rng.randint(1, 3),)
            link = rng.randint(1, 2) if kind is CLICKS else 0
            event = Event(kind, os.urandom(8), NOW + rng.randint(0, 20), 1, 1,
                          rng.randint(1, 3), link, values)  # fmt: skip
            batch.append(event)
            sent.append(event)
        assert lite.insert_events(batch) == pg.insert_events(batch)
    rows = same_events(lite, pg)
    assert len(rows) == len({e.key for e in sent})
    stats = [s.statistics(Scope(1), None, None) for s in (lite, pg)]
    assert stats[0] == stats[1]


def test_text_with_nul_is_stored_not_refused(pg: Store) -> None:
    """SQLite keeps NUL in TEXT; PostgreSQL cannot, so it becomes U+FFFD, never an error."""
    account, emailing, dests, link = setup_mailing(pg)
    events = clicks(account, emailing, dests[0], link, NOW)
    events[0].values = ("192.0.2.1", "bad\x00agent")
    assert pg.insert_events(events) == 1
    assert pg.backend.fetch("SELECT useragent FROM events") == [("bad\ufffdagent",)]
    [dest] = pg.create_destinations(account, emailing, [{"email": "a\x00@example.org"}])
    assert pg.destination(account, dest).email == "a\ufffd@example.org"
    search = Filter(conditions=[Condition("useragent", "=", "bad\x00agent")])
    assert pg.events(CLICKS, Scope(account), search, start=0, limit=5, total=True).total == 1


# -- several writers, one reader ----------------------------------------------------------


def _writer(url: str, ids: tuple[int, int, list[int], int], rounds: int, seed: int) -> int:
    account, emailing, dests, link = ids
    rng = random.Random(seed)
    store = open_store(url, migrate=False, pool_size=2)
    written = 0
    try:
        for _ in range(rounds):
            batch = [
                Event(CLICKS, os.urandom(16), NOW, account, emailing, rng.choice(dests), link,
                      ("192.0.2.1", "UA"))
                for _ in range(rng.randint(1, 20))
            ]  # fmt: skip
            written += store.insert_events(batch)
    finally:
        store.close()
    return written


def test_concurrent_writers_never_hide_a_row_from_id_sync(pg_url: str, pg: Store) -> None:
    """A reader paging with ID > last sees every row, though writers commit concurrently."""
    ids = setup_mailing(pg, destinations=20)
    account = ids[0]
    done = threading.Event()
    seen: list[int] = []

    def sync() -> None:
        last = 0
        while True:
            finished = done.is_set()  # read before the page, so the last page is complete
            page = pg.events(
                CLICKS, Scope(account), Filter(conditions=[Condition("ID", ">", last)]),
                start=0, limit=1000, total=False,
            )  # fmt: skip
            if page.rows:
                seen.extend(row[0] for row in page.rows)
                last = page.rows[-1][0]
            elif finished:
                return

    reader = threading.Thread(target=sync, daemon=True)
    reader.start()
    spawn = multiprocessing.get_context("spawn")
    try:
        with spawn.Pool(3) as procs:
            parts = [procs.apply_async(_writer, (pg_url, ids, 150, n)) for n in range(3)]
            # and writer threads in this process, each with its own pool
            threads = [
                threading.Thread(target=_writer, args=(pg_url, ids, 100, 10 + n)) for n in range(2)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            written = sum(p.get(timeout=60) for p in parts)
    finally:
        done.set()
    reader.join(timeout=30)
    assert not reader.is_alive()
    stored = [row[0] for row in pg.backend.fetch("SELECT id FROM events ORDER BY id")]
    assert written > 0 and len(stored) >= written
    assert seen == sorted(set(seen)), "the sync went backwards or saw a row twice"
    assert seen == stored, f"missed {len(set(stored) - set(seen))} rows"


# -- migrations and connections ------------------------------------------------------------


def test_migrations_run_concurrently_apply_once(pg_url: str) -> None:
    start = threading.Barrier(4)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def migrate() -> None:
        store = open_store(pg_url, migrate=False, pool_size=2)
        try:
            start.wait()
            results.append(store.backend.migrate())
        except BaseException as exc:
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    folder = resources.files("mailstats.store") / "migrations" / "postgres"
    names = sorted(e.name for e in folder.iterdir() if e.name.endswith(".sql"))
    assert names[:2] == ["0001_init.sql", "0002_event_blocks.sql"]
    assert sorted(name for applied in results for name in applied) == names  # each once
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT name FROM schema_migrations ORDER BY name").fetchall()
        assert rows == [(name,) for name in names]
        layout = conn.execute("SELECT value FROM meta WHERE key = 'block_bits'").fetchall()
        assert layout == [("13",)]
        again = open_store(pg_url)
        try:
            assert again.backend.migrate() == []
        finally:
            again.close()


def test_a_silent_server_fails_fast() -> None:
    """A server that accepts and never answers: calls fail within seconds, never hang."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        store = PostgresBackend(f"postgresql://postgres@127.0.0.1:{port}/x", timeout=1.5)
        try:
            began = time.monotonic()
            with pytest.raises(psycopg.OperationalError):
                store.fetch("SELECT 1")
            assert time.monotonic() - began < 5
        finally:
            store.close()


def test_a_connection_idle_for_a_while_is_checked_before_use(
    pg: Store, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres, "RECENTLY_USED", 0.3)
    assert pg.backend.fetch("SELECT 1") == [(1,)]
    with psycopg.connect(pg_url, autocommit=True) as admin:  # as a server restart would
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    time.sleep(0.5)
    assert pg.backend.fetch("SELECT 1") == [(1,)]  # the check found it dead and replaced it
