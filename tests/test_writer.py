"""The group-commit writer and its spool, on each backend, with real lock-outs as faults."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from mailstats.kinds import CLICKS
from mailstats.settings import Settings
from mailstats.store import Event, Filter, Scope, Store
from mailstats.store.writer import Writer


@pytest.fixture
def dest(store: Store) -> tuple[int, int, int]:
    account = store.ensure_account("acme", "UTC")
    emailing = store.create_emailing(
        account.id, subject="s", from_name="", from_email="a@b.c", html="<a href='http://x.test'>x</a>",
        text=None, tags=[], type="mass", links=[(15, 28, "http://x.test")],
    )  # fmt: skip
    [destination] = store.create_destinations(account.id, emailing, [{"email": "r@x.test"}])
    return account.id, emailing, destination


def click(dest: tuple[int, int, int], ua: str) -> Event:
    account, emailing, destination = dest
    return Event(
        CLICKS,
        secrets.token_bytes(16),
        int(time.time()),
        account,
        emailing,
        destination,
        1,
        ("192.0.2.1", ua),
    )


def stored_user_agents(store: Store, account: int) -> list[str]:
    rows = store.stream_events(CLICKS, Scope(account), Filter())
    return [row[5] for row in rows]


@contextmanager
def writes_blocked(settings: Settings) -> Iterator[None]:
    """Another connection holds the write lock: commits wait, as in an overloaded database."""
    if settings.db.startswith("postgresql://"):
        with psycopg.connect(settings.db) as conn:
            conn.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
            yield
            conn.rollback()
    else:
        conn = sqlite3.connect(settings.db, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()


def make_writer(store: Store, tmp_path: Path, **kwargs: float) -> Writer:
    return Writer(store.insert_events, tmp_path / "spool", replay_every=3600, **kwargs)  # type: ignore[arg-type]


async def write_all(writer: Writer, events: list[Event]) -> None:
    await asyncio.gather(*(writer.write(e) for e in events))


def batch_sizes(
    store: Store, dest: tuple[int, int, int], spool: Path, n: int, **options: float
) -> list[int]:
    """Write n clicks at once through a Writer; the sizes of the batches it committed.

    The deadline is one no commit misses on a busy machine: these tests are about
    grouping, not spooling.
    """
    batches: list[int] = []

    def counting(events: list[Event]) -> int:
        batches.append(len(events))
        return store.insert_events(events)

    writer = Writer(counting, spool, deadline=60, replay_every=3600, **options)  # type: ignore[arg-type]
    try:
        asyncio.run(write_all(writer, [click(dest, f"ua-{i}") for i in range(n)]))
    finally:
        writer.close()
    return batches


def test_concurrent_writes_are_committed_in_batches(
    store: Store, dest: tuple[int, int, int], tmp_path: Path
) -> None:
    batches = batch_sizes(store, dest, tmp_path / "spool", 300, batch_wait=0.01)
    assert sorted(stored_user_agents(store, dest[0])) == sorted(f"ua-{i}" for i in range(300))
    assert sum(batches) == 300
    assert len(batches) < 300 / 5  # grouped, not one commit per event


def test_write_returns_only_after_commit(
    store: Store, dest: tuple[int, int, int], tmp_path: Path
) -> None:
    writer = make_writer(store, tmp_path)
    try:
        asyncio.run(writer.write(click(dest, "only")))
        assert stored_user_agents(store, dest[0]) == ["only"]
    finally:
        writer.close()


def test_blocked_database_spools_and_replays_exactly_once(
    store: Store, settings: Settings, dest: tuple[int, int, int], tmp_path: Path
) -> None:
    writer = make_writer(store, tmp_path, deadline=0.1)
    events = [click(dest, f"ua-{i}") for i in range(40)]
    try:
        with writes_blocked(settings):
            started = time.monotonic()
            asyncio.run(write_all(writer, events))
            waited = time.monotonic() - started
            assert writer.spool.pending()
        assert waited < 5  # the visitors were answered while the database was locked
        deadline = time.monotonic() + 30
        while sorted(stored_user_agents(store, dest[0])) != sorted(e.values[1] for e in events):
            writer.replay_now()
            assert time.monotonic() < deadline, "spooled events never reached the database"
            time.sleep(0.1)
    finally:
        writer.close()
    assert len(stored_user_agents(store, dest[0])) == 40
    assert not writer.spool.pending()


def test_replaying_a_spool_twice_stores_once(
    store: Store, dest: tuple[int, int, int], tmp_path: Path
) -> None:
    writer = make_writer(store, tmp_path)
    writer.close()
    spool = writer.spool
    events = [click(dest, f"ua-{i}") for i in range(10)]
    spool.append(events)
    copy = (tmp_path / "copy").write_bytes(
        b"".join(p.read_bytes() for p in spool.folder.glob("*.spool"))
    )
    assert copy > 0
    spool.rotate()
    assert spool.replay(store.insert_events) == 10
    # A crash after the commit but before the file was removed: the same file comes back.
    (spool.folder / "ready-again.spool").write_bytes((tmp_path / "copy").read_bytes())
    assert spool.replay(store.insert_events) == 10
    assert len(stored_user_agents(store, dest[0])) == 10


def test_torn_last_line_is_ignored(
    store: Store, dest: tuple[int, int, int], tmp_path: Path
) -> None:
    writer = make_writer(store, tmp_path)
    writer.close()
    writer.spool.append([click(dest, "whole")])
    writer.spool.rotate()
    [path] = writer.spool.folder.glob("*.spool")
    with open(path, "ab") as fh:
        fh.write(b'[1, "abc')  # a write cut short by a crash: never acknowledged
    assert writer.spool.replay(store.insert_events) == 1
    assert stored_user_agents(store, dest[0]) == ["whole"]


def test_close_on_the_loop_drains_the_open_batch(
    store: Store, dest: tuple[int, int, int], tmp_path: Path
) -> None:
    """The app closes the writer on its event loop: batches still open are committed."""
    writer = make_writer(store, tmp_path, batch_wait=60)

    async def main() -> None:
        tasks = [asyncio.ensure_future(writer.write(click(dest, f"ua-{i}"))) for i in range(50)]
        await asyncio.sleep(0)  # every write has joined the open batch
        writer.close()
        await asyncio.gather(*tasks)

    asyncio.run(main())
    assert len(stored_user_agents(store, dest[0])) == 50


def test_a_cancelled_request_leaves_its_batch_alone(
    store: Store, dest: tuple[int, int, int], tmp_path: Path
) -> None:
    writer = make_writer(store, tmp_path, batch_wait=0.05, deadline=60)

    async def main() -> list[object]:
        tasks = [asyncio.ensure_future(writer.write(click(dest, f"ua-{i}"))) for i in range(10)]
        await asyncio.sleep(0)
        tasks[3].cancel()
        return await asyncio.gather(*tasks, return_exceptions=True)

    try:
        outcomes = asyncio.run(main())
    finally:
        writer.close()
    assert isinstance(outcomes[3], asyncio.CancelledError)
    assert outcomes[:3] + outcomes[4:] == [None] * 9
    # the cancelled request's click was in the batch and is stored with the rest
    assert sorted(stored_user_agents(store, dest[0])) == sorted(f"ua-{i}" for i in range(10))


def test_commits_hold_at_most_batch_max_events(
    store: Store, dest: tuple[int, int, int], tmp_path: Path
) -> None:
    batches = batch_sizes(store, dest, tmp_path / "spool", 95, batch_max=10)
    assert sum(batches) == 95 and max(batches) <= 10
    assert len(stored_user_agents(store, dest[0])) == 95


def test_writes_from_several_event_loops(
    store: Store, dest: tuple[int, int, int], tmp_path: Path
) -> None:
    writer = make_writer(store, tmp_path, deadline=60)
    agents = [[f"loop-{n}-{i}" for i in range(50)] for n in range(3)]
    threads = [
        threading.Thread(
            target=lambda names: asyncio.run(write_all(writer, [click(dest, a) for a in names])),
            args=(names,),
        )
        for names in agents
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        writer.close()
    assert sorted(stored_user_agents(store, dest[0])) == sorted(
        a for names in agents for a in names
    )


def test_a_failing_commit_spools_the_batch(
    store: Store, dest: tuple[int, int, int], tmp_path: Path
) -> None:
    def unreachable(events: list[Event]) -> int:
        raise OSError("the database is unreachable")

    writer = Writer(unreachable, tmp_path / "spool", deadline=60, replay_every=3600)  # type: ignore[arg-type]
    events = [click(dest, f"ua-{i}") for i in range(20)]
    try:
        asyncio.run(write_all(writer, events))  # answered: the events are in the spool
        writer.write_sync(click(dest, "sync"))
    finally:
        writer.close()
    assert stored_user_agents(store, dest[0]) == []
    writer.spool.rotate()
    assert writer.spool.replay(store.insert_events) == 21
    assert sorted(stored_user_agents(store, dest[0])) == sorted(
        [*(f"ua-{i}" for i in range(20)), "sync"]
    )


def test_write_sync_commits(store: Store, dest: tuple[int, int, int], tmp_path: Path) -> None:
    writer = make_writer(store, tmp_path)
    try:
        writer.write_sync(click(dest, "sync"))
        assert stored_user_agents(store, dest[0]) == ["sync"]
    finally:
        writer.close()
