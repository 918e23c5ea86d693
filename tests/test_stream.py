"""Capture on a NATS JetStream stream: a real cluster of three, a real `mailstats serve`.

Clicks that got their redirect land in the API exactly once, whatever the cluster does
meanwhile: the stream's leader killed, or every node down for a few seconds (the spool
takes over and is replayed into the stream).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from mailstats.errors import InvalidParameter
from mailstats.settings import load
from mailstats.store.stream import STREAM
from tests import server
from tests.nats import Cluster, cluster
from tests.test_durability import Load, _assert_exactly_once, _tracked_links, _wait_for_all

pytestmark = pytest.mark.backends("postgres")


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[Cluster]:
    with cluster(tmp_path / "nats") as c:
        yield c


# Seconds a test waits for every redirected click to be listed: after a fault the cluster
# elects its leaders again and the spool replays, which on a loaded machine takes a while
# (a deadline so that a broken build fails rather than hangs, not a speed to meet).
SETTLE = 120.0


def _env(c: Cluster, tmp_path: Path) -> dict[str, str]:
    return {"MAILSTATS_CAPTURE": c.urls, "MAILSTATS_SPOOL": str(tmp_path / "spool")}


def _backlog(db: str, env: dict[str, str], wait: float = 20) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "mailstats", "backlog", "--db", db, "--wait", str(wait), "--json",
         "--capture", env["MAILSTATS_CAPTURE"]],
        capture_output=True, text=True, env={**os.environ, "MAILSTATS_DB": ""}, timeout=wait + 30,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    report: dict[str, object] = orjson.loads(out.stdout)
    return report


def _serve_refused(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailstats", "serve", "--port", "0", *args],
        capture_output=True, text=True, timeout=60, env={**os.environ, "MAILSTATS_DB": ""},
    )  # fmt: skip


@pytest.mark.backends("sqlite")
def test_capture_on_nats_with_sqlite_is_refused_in_one_line(db_url: str) -> None:
    out = _serve_refused("--db", db_url, "--capture", "nats://127.0.0.1:4222")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "Error: capture on NATS needs PostgreSQL: db must be a postgresql:// URL, not a SQLite file"
    ]


def test_an_unknown_capture_scheme_is_refused_in_one_line(db_url: str) -> None:
    out = _serve_refused("--db", db_url, "--capture", "kafka://127.0.0.1:9092")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr
    assert "capture must be empty" in lines[0] and "nats://host:port" in lines[0]
    assert "kafka://127.0.0.1:9092" in lines[0]


def test_clicks_captured_on_nats_land_once_and_the_backlog_drains(
    db_url: str, tmp_path: Path, nats: Cluster
) -> None:
    env = _env(nats, tmp_path)
    token = server.make_token(db_url)
    with server.running(db_url, env=env) as srv:
        links = _tracked_links(srv.url, token, 20)
        with Load(links, threads=4) as load:
            time.sleep(1.5)
        report = _backlog(db_url, env)
        assert report["messages"] == 0 and report["events"] == 0
        _assert_exactly_once(_wait_for_all(db_url, load.redirected, SETTLE), load.redirected)
        assert len(load.redirected) > 50
        # nothing went to the spool: every group commit was acknowledged by the stream
        assert not list((tmp_path / "spool").glob("*.spool"))
        assert srv.stop() == 0
    leader = nats.stream_leader(STREAM)
    stream = _stream_config(nats, leader)
    assert stream["num_replicas"] == 3 and stream["storage"] == "file"


def _stream_config(c: Cluster, node: object) -> dict[str, object]:
    for account in c.jsz(node).get("account_details") or []:  # type: ignore[arg-type, attr-defined]
        for s in account.get("stream_detail") or []:
            if s["name"] == STREAM:
                config: dict[str, object] = s["config"]
                return config
    raise AssertionError("no stream")


def test_the_stream_leader_killed_under_load_loses_nothing(
    db_url: str, tmp_path: Path, nats: Cluster
) -> None:
    env = _env(nats, tmp_path)
    token = server.make_token(db_url)
    with server.running(db_url, env=env) as srv:
        links = _tracked_links(srv.url, token, 20)
        with Load(links, threads=4) as load:
            time.sleep(1.0)
            leader = nats.stream_leader(STREAM)
            nats.kill(leader)
            before = len(load.redirected)
            time.sleep(2.0)
            during = len(load.redirected) - before
            nats.start(leader)
            time.sleep(1.0)
        assert during > 10, "redirects stopped while the stream elected a leader"
        assert load.failed == 0 and load.statuses == {302}  # every click redirected
        _assert_exactly_once(_wait_for_all(db_url, load.redirected, SETTLE), load.redirected)
        assert srv.stop() == 0


def test_the_whole_cluster_down_spools_then_replays(
    db_url: str, tmp_path: Path, nats: Cluster
) -> None:
    env = _env(nats, tmp_path)
    token = server.make_token(db_url)
    with server.running(db_url, env=env) as srv:
        links = _tracked_links(srv.url, token, 20)
        with Load(links, threads=4) as load:
            time.sleep(1.0)
            nats.stop_all()
            before = len(load.redirected)
            time.sleep(3.0)
            during = len(load.redirected) - before
            spooled = list((tmp_path / "spool").glob("*.spool"))
            nats.start_all()
            time.sleep(1.0)
        assert during > 10, "redirects stopped while the cluster was down"
        assert spooled, "nothing was spooled while the cluster was down"
        assert load.failed == 0 and load.statuses == {302}  # every click redirected
        _assert_exactly_once(_wait_for_all(db_url, load.redirected, SETTLE), load.redirected)
        _backlog(db_url, env)
        assert srv.stop() == 0


def test_a_node_started_before_its_cluster_serves_and_spools(
    db_url: str, tmp_path: Path, nats: Cluster
) -> None:
    env = _env(nats, tmp_path)
    token = server.make_token(db_url)
    nats.stop_all()
    with server.running(db_url, env=env) as srv:
        links = _tracked_links(srv.url, token, 5)
        with Load(links, threads=2) as load:
            time.sleep(1.0)
            before_cluster = set(load.redirected)
            nats.start_all()
            time.sleep(1.0)
        assert len(before_cluster) > 10 and load.statuses == {302}
        _assert_exactly_once(_wait_for_all(db_url, load.redirected, SETTLE), load.redirected)
        assert srv.stop() == 0


def test_a_tracking_node_killed_under_load_loses_nothing(
    db_url: str, tmp_path: Path, nats: Cluster
) -> None:
    env = _env(nats, tmp_path)
    token = server.make_token(db_url)
    srv = server.start(db_url, env=env)
    links = _tracked_links(srv.url, token, 20)
    with Load(links, threads=4) as load:
        time.sleep(1.0)
        srv.stop(signal.SIGKILL)
        srv = server.start(db_url, port=srv.port, env=env)
        time.sleep(1.0)
    try:
        assert len(load.redirected) > 50
        _assert_exactly_once(_wait_for_all(db_url, load.redirected, SETTLE), load.redirected)
    finally:
        assert srv.stop() == 0


@pytest.mark.backends("sqlite")
def test_the_capture_settings_accept_nats_urls_only(db_url: str) -> None:
    pg = "postgresql://u@pg-1:5432,pg-2:5432/m?target_session_attrs=read-write"
    got = load(environ={"MAILSTATS_CAPTURE": "nats://n1:4222,nats://n2:4222"}, db=pg)
    assert got.capture == "nats://n1:4222,nats://n2:4222" and got.capture_replicas == 3
    assert load(environ={}, db=db_url).capture == ""  # the default: the database
    for capture, words in [
        ("nats://n1:4222,redis://n2:6379", "redis://n2:6379"),
        ("nats://", "capture must be empty"),
    ]:
        with pytest.raises(InvalidParameter, match=words):
            load(environ={}, db=pg, capture=capture)
    with pytest.raises(InvalidParameter, match="capture_replicas must be 1 to 5"):
        load(environ={}, db=pg, capture="nats://n1:4222", capture_replicas=0)
    with pytest.raises(InvalidParameter, match="read_db must be a postgresql:// URL"):
        load(environ={}, db=pg, read_db=db_url)


@pytest.mark.backends("sqlite")
def test_a_single_nats_server_gets_a_stream_of_one_replica_and_the_log_says_so(
    db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from mailstats.store.stream import StreamCapture
    from tests.nats import NATS_SERVER

    if not os.path.exists(NATS_SERVER):
        pytest.skip("nats-server is not installed")
    port = server.free_port()
    args = [NATS_SERVER, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(tmp_path)]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    capture = StreamCapture(f"nats://127.0.0.1:{port}", replicas=3)
    try:
        with caplog.at_level(logging.WARNING, logger="mailstats.stream"):
            assert capture.wait_ready(20)
        assert capture.made_replicas == 1
        assert "made with 1 replicas, not 3: the NATS cluster has fewer nodes" in caplog.text
        assert capture.backlog().messages == 0
    finally:
        capture.close()
        process.kill()
        process.wait(10)


def test_events_delivered_twice_by_the_stream_are_stored_once(db_url: str, nats: Cluster) -> None:
    from mailstats.kinds import CLICKS
    from mailstats.store import Event, Filter, Scope, open_store
    from tests.helpers import setup_mailing

    store = open_store(db_url, capture=nats.urls, capture_timeout=5.0)
    try:
        account, _, dests, link = setup_mailing(store)
        now = int(time.time())
        hits = [Event(CLICKS, os.urandom(16), now - n, 0, 0, dests[n % 3], link, ("192.0.2.1", f"ua/{n}"))
                for n in range(300)]  # fmt: skip
        capture = store.backend.capture
        assert capture.wait_ready(20)
        capture.append(hits)
        capture.append(hits[100:])  # as a spool replays a group the stream took after all
        assert capture.backlog().messages == 2
        while store.derive().taken:
            pass
        assert capture.backlog().messages == 0  # acknowledged once stored
        rows = list(store.stream_events(CLICKS, Scope(account), Filter()))
        assert sorted(row[5] for row in rows) == sorted(f"ua/{n}" for n in range(300))
        ids = [int(row[0]) for row in rows]
        assert ids == sorted(ids) and len(set(ids)) == 300
    finally:
        store.close()
