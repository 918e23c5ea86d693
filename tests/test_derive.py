"""Capture first, derive after (issue 11): the capture log and the indexer, on both backends.

Whatever order batches are captured and derived in, the result equals storing the same
events at once: the same rows, `first` flags, counters, statistics and pages. A crash
between capture and derive loses nothing and stores nothing twice; several processes
share one database with one indexer among them; the backlog is reported.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from starlette.testclient import TestClient

from mailstats.kinds import CLICKS, DELIVERIES, IMPRESSIONS, UNSUBSCRIBES
from mailstats.store import Event, Filter, Scope, Store, open_store
from mailstats.tracking.tokens import Purpose
from mailstats.web.app import App
from tests import server
from tests.conftest import TEST_BLOCK_BITS
from tests.helpers import Mailing, click_paths, setup_mailing, utc
from tests.test_blocks import COUNTERS, counters_match
from tests.test_durability import _stored_agents, _tracked_links

T0 = utc(2026, 11, 1)
ROWS = """
SELECT id, kind, key, ts, account_id, emailing_id, destination_id, link_id, first,
    ip, useragent, device, attempts FROM events ORDER BY id
"""


def _random_batches(rng: random.Random, store: Store, count: int) -> list[list[Event]]:
    """Batches as the tracking endpoints and the API make them: hits with account 0,
    reported deliveries with their account; times out of order, some keys replayed."""
    mailings = [setup_mailing(store, 4, name) for name in ("acme", "acme", "other")]
    sent: list[Event] = []
    batches = []
    for _ in range(count):
        batch = []
        for _ in range(rng.randint(1, 20)):
            if sent and rng.random() < 0.08:
                batch.append(rng.choice(sent))  # a spool replay or an API retry
                continue
            account, emailing, dests, link = rng.choice(mailings)
            kind = rng.choice([CLICKS, CLICKS, IMPRESSIONS, UNSUBSCRIBES, DELIVERIES])
            dest = rng.choice(dests)
            ts = T0 + rng.randint(0, 600)  # narrow: earlier events keep arriving late
            if kind is DELIVERIES:
                event = Event(kind, os.urandom(16), ts, account, emailing, dest, 0, (2,))
            else:
                values: tuple[Any, ...] = ("192.0.2.9", "UA")
                if kind is IMPRESSIONS:
                    values = ("192.0.2.9", "UA", "desktop")
                link_id = link if kind is CLICKS else 0
                event = Event(kind, os.urandom(16), ts, 0, 0, dest, link_id, values)
            batch.append(event)
            sent.append(event)
        batches.append(batch)
    return batches


def _owned(store: Store, event: Event) -> Event:
    """A hit as the API would report it: with its destination's account and emailing."""
    if event.account_id:
        return event
    found = store.tracking_destination(event.destination_id)
    assert found is not None
    return dataclasses.replace(event, account_id=found[0], emailing_id=found[1])


def _state(store: Store) -> tuple[Any, ...]:
    rows = [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r)
            for r in store.backend.fetch(ROWS)]  # fmt: skip
    counters = [tuple(r) for r in store.backend.fetch(COUNTERS)]
    stats = []
    for (emailing,) in store.backend.fetch("SELECT id FROM emailings ORDER BY id"):
        account = store.backend.fetch(f"SELECT account_id FROM emailings WHERE id = {emailing}")
        stats.append(store.statistics(Scope(account[0][0], emailing), None, None))
    pages = []
    for account in {r[4] for r in rows}:
        for kind in (CLICKS, IMPRESSIONS, DELIVERIES):
            for unique in (False, True):
                page = store.events(kind, Scope(account), Filter(unique=unique), start=2,
                                    limit=5, total=True)  # fmt: skip
                pages.append(([tuple(r) for r in page.rows], page.total))
    return rows, counters, stats, pages


@pytest.mark.parametrize("seed", [1, 2])
def test_capture_then_derive_equals_storing_at_once(
    store: Store, tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    batches = _random_batches(rng, store, 40)
    for batch in batches:
        store.capture_events(batch)
        if rng.random() < 0.3:  # the indexer catches up now and then, in odd-sized steps
            store.derive(rng.randint(1, 60))
    assert store.backlog().events > 0
    while store.derive(rng.randint(1, 60)).taken:
        pass
    assert store.backlog().events == 0
    counters_match(store)

    at_once = open_store(str(tmp_path / "at-once.db"), block_bits=TEST_BLOCK_BITS)
    try:
        _random_batches(random.Random(seed), at_once, 0)  # the same accounts, emailings, IDs
        for batch in batches:
            at_once.insert_events([_owned(at_once, e) for e in batch])
        assert _state(store) == _state(at_once)
    finally:
        at_once.close()
    groups = {(e.kind.code, e.destination_id, e.link_id) for b in batches for e in b}
    flags = store.backend.fetch("SELECT count(*) FROM events WHERE first = 1")[0][0]
    assert flags == len(groups)  # one earliest event per (kind, destination, link)


def test_an_event_is_visible_once_derived(store: Store) -> None:
    account, _, dests, link = setup_mailing(store, 1)
    store.capture_events([Event(CLICKS, os.urandom(16), T0, 0, 0, dests[0], link, ("ip", "ua"))])
    page = store.events(CLICKS, Scope(account), Filter(), start=0, limit=10, total=True)
    assert page.total == 0 and store.backlog().events == 1
    assert store.derive().stored == 1
    page = store.events(CLICKS, Scope(account), Filter(), start=0, limit=10, total=True)
    assert page.total == 1 and store.backlog().events == 0


def test_a_derive_interrupted_before_it_ends_stores_each_event_once(store: Store) -> None:
    _, _, dests, link = setup_mailing(store, 2)
    events = [Event(CLICKS, os.urandom(16), T0 + n, 0, 0, dests[n % 2], link, ("ip", "ua"))
              for n in range(30)]  # fmt: skip
    store.capture_events(events[:20])
    store.capture_events(events[20:])
    backend = store.backend
    if backend.dialect == "sqlite":
        # derived and committed, then the process died before the batches left the log
        assert backend.derive(1000, trim=False).stored == 30  # type: ignore[call-arg]
    else:
        # the derive transaction fails half-way (another session holds `events`, the lock
        # wait times out): it rolls back, and the events stay in the log
        with psycopg.connect(store.backend.pool.conninfo) as other:  # type: ignore[attr-defined]
            other.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(psycopg.errors.LockNotAvailable):
                backend.derive(1000)
            other.rollback()
    assert store.backlog().events == 30
    while store.derive().taken:
        pass
    assert store.backlog().events == 0
    rows = backend.fetch("SELECT count(*), count(DISTINCT key), sum(first) FROM events")
    assert tuple(rows[0]) == (30, 30, 2)
    counters_match(store)


def test_hits_of_unknown_destinations_are_answered_then_dropped(
    app: App, http: TestClient, token: str, m: Mailing
) -> None:
    # a token signed with the server's own secret for a destination it does not have
    fake = app.state.signer.sign(Purpose.CLICK, 10**9, m.links[1])
    real = click_paths(http, token, m.destinations[0])[1]
    assert http.get(f"/c/{fake}").status_code == 302
    assert http.get(real).status_code == 302
    r = http.get("/v2/ms/clicks", params={"access_token": token})
    assert [item["destination"] for item in r.json()["data"]] == [str(m.destinations[0])]
    assert app.indexer.dropped == 1


def test_a_plain_link_is_redirected_without_its_destination(
    app: App, http: TestClient, token: str, m: Mailing
) -> None:
    paths = click_paths(http, token, m.destinations[1])
    assert http.get(paths[1]).headers["location"] == "https://shop.example/b"
    assert http.get(paths[0]).headers["location"] == "https://shop.example/a?id=c1"
    tracker = app.tracker
    assert m.destinations[1] in tracker._dests  # the personalised link read it ...
    tracker._dests.clear()
    assert http.get(paths[1]).status_code == 302
    assert m.destinations[1] not in tracker._dests  # ... the plain one did not


def _mailstats(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mailstats", *args], capture_output=True,
                          text=True, env={**os.environ, "MAILSTATS_DB": ""}, timeout=60)  # fmt: skip


def test_the_backlog_command_reports_and_derives(store: Store, db_url: str) -> None:
    account, _, dests, link = setup_mailing(store, 1)
    hits = [Event(CLICKS, os.urandom(16), T0, 0, 0, dests[0], link, ("ip", "ua")) for _ in range(5)]
    store.capture_events(hits[:3])
    store.capture_events(hits[3:])
    out = _mailstats("backlog", "--db", db_url, "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert (report["events"], report["spool_files"]) == (5, 0)
    assert report["oldest_age_s"] >= 0
    assert _mailstats("backlog", "--db", db_url, "--wait", "0.2").returncode == 1
    out = _mailstats("backlog", "--db", db_url, "--derive", "--wait", "10")
    assert out.returncode == 0, out.stderr
    assert "captured, not derived yet: 0 events" in out.stdout
    page = store.events(CLICKS, Scope(account), Filter(), start=0, limit=10, total=True)
    assert page.total == 5


def _click_all(links: list[str], tag: str) -> set[str]:
    agents = set()
    with httpx.Client(timeout=10) as http:
        for n, link in enumerate(links):
            ua = f"{tag}/{n}"
            assert http.get(link, headers={"user-agent": ua}).status_code == 302
            agents.add(ua)
    return agents


def test_two_processes_share_one_database_and_one_indexer(db_url: str, tmp_path: Path) -> None:
    token = server.make_token(db_url)
    first = server.start(db_url, env={"MAILSTATS_SPOOL": str(tmp_path / "spool1")})
    time.sleep(0.5)  # the first server takes the indexer role
    second = server.start(db_url, env={"MAILSTATS_SPOOL": str(tmp_path / "spool2")})
    try:
        links = _tracked_links(first.url, token, 10)
        on_second = [link.replace(first.url, second.url) for link in links]
        clicked = _click_all(links, "one") | _click_all(on_second, "two")
        assert _mailstats("backlog", "--db", db_url, "--wait", "20").returncode == 0
        agents = _stored_agents(db_url)
        assert sorted(agents) == sorted(clicked)
        # the indexer's process dies; the other one takes the role over and derives
        first.stop(signal.SIGKILL)
        clicked |= _click_all(on_second, "after")
        out = _mailstats("backlog", "--db", db_url, "--wait", "20")
        assert out.returncode == 0, out.stdout
        agents = _stored_agents(db_url)
        assert sorted(agents) == sorted(clicked)  # every click once
    finally:
        first.stop(signal.SIGKILL)
        assert second.stop() == 0


def test_a_node_without_the_indexer_captures_and_leaves_deriving_to_another(
    db_url: str, tmp_path: Path
) -> None:
    token = server.make_token(db_url)
    tracking = server.start(db_url, env={"MAILSTATS_SPOOL": str(tmp_path / "spool1"),
                                         "MAILSTATS_INDEXER": "false"})  # fmt: skip
    indexing = None
    try:
        links = _tracked_links(tracking.url, token, 5)
        clicked = _click_all(links, "tracked")
        time.sleep(1.5)  # longer than the indexer's interval and role retry: nothing derives
        out = _mailstats("backlog", "--db", db_url, "--json")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["events"] == len(links)
        assert _stored_agents(db_url) == []
        # a process that may index (an API node) takes the role and derives what waited
        indexing = server.start(db_url, env={"MAILSTATS_SPOOL": str(tmp_path / "spool2")})
        clicked |= _click_all(links, "more")  # the tracking node keeps capturing
        assert _mailstats("backlog", "--db", db_url, "--wait", "20").returncode == 0
        assert sorted(_stored_agents(db_url)) == sorted(clicked)
    finally:
        assert tracking.stop() == 0
        if indexing is not None:
            assert indexing.stop() == 0
