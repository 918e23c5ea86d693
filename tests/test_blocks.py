"""The event_blocks counters (issue 6): always equal to a recount of the events, and every
page, total and statistic read through them equal to counting the rows one by one.

The test databases count in blocks of 4 IDs, so a few hundred events fill many blocks;
timestamps run mostly with the IDs but not always (late reports, replayed spools), so
blocks straddle time bounds, as they do in production.
"""

from __future__ import annotations

import dataclasses
import os
import random
from typing import Any

import pytest

from mailstats.kinds import CLICKS, DELIVERIES, ERRORS, IMPRESSIONS
from mailstats.settings import Settings
from mailstats.store import Event, Filter, Scope, Store, open_store
from mailstats.store import events as ev
from mailstats.store.base import Row
from tests.conftest import TEST_BLOCK_BITS
from tests.helpers import setup_mailing, utc

T0 = utc(2024, 5, 1)
HOUR = 3600
RETRY = "kind = 3 AND attempts > 1"  # a delivery after more than one attempt
RECOUNT = f"""
SELECT account_id, kind, id >> {{bits}}, emailing_id, count(*), sum(first), min(ts), max(ts),
    sum(CASE WHEN {RETRY} THEN 1 ELSE 0 END),
    sum(CASE WHEN id IN (SELECT min(id) FROM events WHERE {RETRY} GROUP BY destination_id)
        THEN 1 ELSE 0 END)
FROM events GROUP BY account_id, kind, id >> {{bits}}, emailing_id ORDER BY 1, 2, 3, 4
"""
COUNTERS = """
SELECT account_id, kind, block, emailing_id, n, firsts, min_ts, max_ts, retries, retried
FROM event_blocks ORDER BY 1, 2, 3, 4
"""

# The dashboard's counters (slots, links, clients, recipients who clicked): each table as
# kept, and the same counted from the events.
FACETS = {
    "slots": (
        "SELECT account_id, emailing_id, kind, slot, n, firsts FROM slot_counts"
        " ORDER BY 1, 2, 3, 4",
        "SELECT account_id, emailing_id, kind, ts / 900, count(*), sum(first) FROM events"
        " GROUP BY account_id, emailing_id, kind, ts / 900 ORDER BY 1, 2, 3, 4",
    ),
    "links": (
        "SELECT account_id, link_id, emailing_id, n, firsts FROM link_counts ORDER BY 1, 2",
        "SELECT account_id, link_id, emailing_id, count(*), sum(first) FROM events"
        " WHERE kind = 1 GROUP BY account_id, link_id, emailing_id ORDER BY 1, 2",
    ),
    "clients": (
        "SELECT account_id, emailing_id, device, client, os, n, firsts FROM client_counts"
        " ORDER BY 1, 2, 3, 4, 5",
        "SELECT account_id, emailing_id, coalesce(device, ''), coalesce(client, ''),"
        " coalesce(os, ''), count(*), sum(first) FROM events WHERE kind = 2"
        " GROUP BY account_id, emailing_id, coalesce(device, ''), coalesce(client, ''),"
        " coalesce(os, '') ORDER BY 1, 2, 3, 4, 5",
    ),
    "bounces": (
        "SELECT account_id, emailing_id, errortype, errorcode, n, destinations FROM bounce_counts"
        " ORDER BY 1, 2, 3, 4",
        "SELECT account_id, emailing_id, coalesce(errortype, ''), coalesce(errorcode, ''),"
        " count(*), count(DISTINCT destination_id) FROM events WHERE kind = 4"
        " GROUP BY account_id, emailing_id, coalesce(errortype, ''), coalesce(errorcode, '')"
        " ORDER BY 1, 2, 3, 4",
    ),
    "countries": (
        "SELECT account_id, emailing_id, kind, country, n, firsts FROM country_counts"
        " ORDER BY 1, 2, 3, 4",
        "SELECT account_id, emailing_id, kind, coalesce(country, ''), count(*), sum(first)"
        " FROM events GROUP BY account_id, emailing_id, kind, coalesce(country, '')"
        " ORDER BY 1, 2, 3, 4",
    ),
    "clickers": (
        "SELECT account_id, emailing_id, kind, n FROM reach_counts ORDER BY 1, 2, 3",
        "SELECT account_id, emailing_id, 1, count(DISTINCT destination_id) FROM events"
        " WHERE kind = 1 GROUP BY account_id, emailing_id ORDER BY 1, 2, 3",
    ),
}


def counters_match(store: Store) -> None:
    bits = store.backend.block_bits()
    recount = [tuple(r) for r in store.backend.fetch(RECOUNT.format(bits=bits))]
    assert [tuple(r) for r in store.backend.fetch(COUNTERS)] == recount
    assert recount  # something was counted
    for name, (kept, counted) in FACETS.items():
        want = [tuple(r) for r in store.backend.fetch(counted)]
        assert [tuple(r) for r in store.backend.fetch(kept)] == want, name


@dataclasses.dataclass
class World:
    accounts: list[int]
    scopes: list[Scope]
    sent: list[Event]


def _event(rng: random.Random, mailing: tuple[int, int, list[int], int], ts: int) -> Event:
    account, emailing, dests, link = mailing
    kind = rng.choice([CLICKS, CLICKS, IMPRESSIONS, DELIVERIES, ERRORS])
    values: tuple[Any, ...] = {
        CLICKS.name: ("192.0.2.1", "UA"),
        IMPRESSIONS.name: ("192.0.2.1", "UA", "desktop"),
        DELIVERIES.name: (rng.choice([1, 1, 2, 3]),),
        ERRORS.name: ("soft", "450", "try later", "soft", "undefined"),
    }[kind.name]
    link_id = link if kind is CLICKS else 0
    return Event(kind, os.urandom(12), ts, account, emailing, rng.choice(dests), link_id, values)


def fill(store: Store, seed: int, batches: int = 30) -> World:
    """Two accounts with two emailings each; events mostly in time order, some late."""
    rng = random.Random(seed)
    mailings = [setup_mailing(store, 4, name) for name in ("acme", "acme", "other", "other")]
    sent: list[Event] = []
    clock = T0
    for _ in range(batches):
        batch = []
        for _ in range(rng.randint(1, 25)):
            if sent and rng.random() < 0.05:
                batch.append(rng.choice(sent))  # a replay: stored once
                continue
            clock += rng.randint(0, 2 * HOUR)
            late = rng.random() < 0.1  # a report or a spool arriving late
            ts = clock - rng.randint(HOUR, 30 * 24 * HOUR) if late else clock
            event = _event(rng, rng.choice(mailings), ts)
            batch.append(event)
            sent.append(event)
        store.insert_events(batch)
    accounts = sorted({m[0] for m in mailings})
    scopes = [Scope(a) for a in accounts] + [Scope(m[0], m[1]) for m in mailings]
    return World(accounts, scopes, sent)


def test_counters_equal_a_recount_after_every_batch(store: Store) -> None:
    assert store.backend.block_bits() == TEST_BLOCK_BITS
    rng = random.Random(3)
    mailing = setup_mailing(store, 3)
    sent: list[Event] = []
    for _ in range(25):
        batch = []
        for _ in range(rng.randint(1, 12)):
            if sent and rng.random() < 0.2:
                batch.append(rng.choice(sent))
                continue
            # a narrow time window: earlier events keep arriving after later ones
            event = _event(rng, mailing, T0 + rng.randint(0, 50))
            batch.append(event)
            sent.append(event)
        store.insert_events(batch)
        counters_match(store)
    firsts = store.backend.fetch("SELECT sum(firsts) FROM event_blocks")[0][0]
    groups = {(e.kind.code, e.destination_id, e.link_id) for e in sent}
    assert firsts == len(groups)  # one first per (kind, destination, link), however it moved


def reference(store: Store, kind: Any, scope: Scope, flt: Filter, start: int) -> tuple[Any, ...]:
    """The page and total by plain SQL: OFFSET over the rows, count(*) over the rows."""
    q = ev.where(kind, scope, flt, store.backend.placeholder, store.backend.like)
    rows = store.backend.fetch(ev.list_sql(kind, q), [*q.args, 7, start])
    total = store.backend.fetch(ev.count_sql(kind, q), q.args)[0][0]
    return [tuple(r) for r in rows], int(total)


def test_pages_and_totals_by_blocks_equal_plain_counting(store: Store) -> None:
    world = fill(store, seed=11, batches=60)
    counters_match(store)
    rng = random.Random(5)
    stamps = sorted(e.ts for e in world.sent)
    checked = 0
    for _ in range(150):
        scope = rng.choice(world.scopes)
        kind = rng.choice([CLICKS, IMPRESSIONS, DELIVERIES])
        begin = rng.choice([None, rng.choice(stamps), rng.choice(stamps) + 1])
        end = rng.choice([None, rng.choice(stamps), rng.choice(stamps) - 1, T0 - 1])
        flt = Filter(begin=begin, end=end, unique=rng.random() < 0.4)
        _, want_total = reference(store, kind, scope, flt, 0)
        for start in {0, 1, 3, want_total // 2, max(0, want_total - 2), want_total, want_total + 5}:
            page = store.events(kind, scope, flt, start=start, limit=7, total=True)
            want = reference(store, kind, scope, flt, start)
            assert ([tuple(r) for r in page.rows], page.total) == want, (scope, kind, flt, start)
            checked += bool(page.rows)
    assert checked > 300  # most of the pages had rows to compare


def plain_statistics(store: Store, scope: Scope, begin: int | None, end: int | None) -> Any:
    """(kind code -> (events, firsts), (retries, retried destinations)) by counting rows."""
    mark = store.backend.placeholder
    sql = f"FROM events WHERE account_id = {mark}"
    args: list[Any] = [scope.account_id]
    if scope.emailing_id is not None:
        sql += f" AND emailing_id = {mark}"
        args.append(scope.emailing_id)
    if begin is not None:
        sql += f" AND ts >= {mark}"
        args.append(begin)
    if end is not None:
        sql += f" AND ts <= {mark}"
        args.append(end)
    rows: list[Row] = store.backend.fetch(
        f"SELECT kind, count(*), sum(first) {sql} GROUP BY kind", args
    )
    retry = f"SELECT count(*), count(DISTINCT destination_id) {sql} AND {RETRY}"
    retries = tuple(int(v) for v in store.backend.fetch(retry, args)[0])
    return {int(k): (int(n), int(f)) for k, n, f in rows}, retries


def test_statistics_between_any_bounds_equal_a_recount(store: Store) -> None:
    world = fill(store, seed=19)
    rng = random.Random(23)
    stamps = sorted(e.ts for e in world.sent)
    retried = 0
    for _ in range(80):
        scope = rng.choice([s for s in world.scopes if s.emailing_id is not None])
        begin = rng.choice([None, rng.choice(stamps), rng.choice(stamps) + 1])
        end = rng.choice([None, rng.choice(stamps), rng.choice(stamps) - 1])
        got = store.statistics(scope, begin, end)
        want, retries = plain_statistics(store, scope, begin, end)
        kinds = (CLICKS, IMPRESSIONS, DELIVERIES, ERRORS)
        assert {k.code: got["counts"][k.name] for k in kinds} == {
            k.code: want.get(k.code, (0, 0)) for k in kinds
        }, (scope, begin, end)
        assert got["retries"] == retries, (scope, begin, end)
        retried += retries[1] > 0
    assert retried > 20  # most answers had retried destinations to count


def test_a_database_without_counters_gets_them_from_its_events(
    store: Store, settings: Settings
) -> None:
    fill(store, seed=29, batches=10)
    # as a database from before the counters: the table empty, no layout recorded
    with store.backend.transaction() as cur:
        cur.execute("DELETE FROM event_blocks")
        cur.execute("DELETE FROM meta WHERE key = 'block_bits'")
    again = open_store(settings.db, block_bits=3)
    try:
        assert again.backend.block_bits() == 3
        counters_match(again)
        scope = Scope(again.account("acme").id)
        for start in (0, 5, 40):
            page = again.events(CLICKS, scope, Filter(), start=start, limit=7, total=True)
            want = reference(again, CLICKS, scope, Filter(), start)
            assert ([tuple(r) for r in page.rows], page.total) == want
    finally:
        # the PostgreSQL test database is shared: give it back its layout (emptied next)
        with again.backend.transaction() as cur:
            cur.execute(f"UPDATE meta SET value = '{TEST_BLOCK_BITS}' WHERE key = 'block_bits'")
        again.close()


def test_a_database_from_before_the_dashboard_counters_gets_them_from_its_events(
    store: Store, settings: Settings
) -> None:
    fill(store, seed=31, batches=12)
    with store.backend.transaction() as cur:
        for table in (
            "slot_counts", "link_counts", "client_counts", "clickers", "reach_counts",
            "bounce_counts", "bouncers", "country_counts",
        ):  # fmt: skip
            cur.execute(f"DROP TABLE {table}")
        cur.execute("DELETE FROM schema_migrations WHERE name LIKE '0012%'")
    store.close()
    again = open_store(settings.db, block_bits=settings.block_bits)
    try:
        counters_match(again)
        assert again.backend.fetch("SELECT count(*) FROM reach_counts")[0][0] > 0
    finally:
        again.close()


def test_the_block_size_of_a_database_never_changes(store: Store, settings: Settings) -> None:
    fill(store, seed=31, batches=3)
    other = open_store(settings.db, block_bits=9)
    try:
        assert other.backend.block_bits() == TEST_BLOCK_BITS
        counters_match(other)
    finally:
        other.close()


@pytest.mark.parametrize("bits", [-1, 41])
def test_a_block_size_out_of_range_is_refused(bits: int, tmp_path: os.PathLike[str]) -> None:
    with pytest.raises(ValueError, match="block_bits must be 0 to 40"):
        open_store(os.path.join(tmp_path, "x.db"), block_bits=bits)
