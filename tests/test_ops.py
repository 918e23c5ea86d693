"""/healthz, /readyz (a stopped database, a full spool) and /metrics (who may read it, and
what it counts)."""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from starlette.testclient import TestClient

from mailstats.settings import Settings
from mailstats.store.postgres import INDEXER_LOCK
from mailstats.web.app import App, create_app
from tests.conftest import PUBLIC
from tests.helpers import Mailing, click_paths
from tests.proxy import Proxy


def client(app: App, host: str = "127.0.0.1") -> TestClient:
    return TestClient(app, base_url=PUBLIC, follow_redirects=False, client=(host, 40000))


def test_healthz_and_readyz_answer_when_all_is_well(http: TestClient) -> None:
    assert http.get("/healthz").text == "ok\n"
    r = http.get("/readyz")
    assert (r.status_code, r.text) == (200, "ready\n")


def test_readyz_is_503_with_the_reason_when_the_spool_is_over_its_threshold(
    settings: Settings,
) -> None:
    app = create_app(settings.replace(ready_spool_bytes=10))
    try:
        app.state.writer.spool.folder.mkdir(parents=True, exist_ok=True)
        (app.state.writer.spool.folder / "waiting.ndjson").write_bytes(b"x" * 11)
        with client(app) as http:
            r = http.get("/readyz")
        assert r.status_code == 503
        assert r.text == "not ready: spool holds 11 bytes (threshold 10)\n"
    finally:
        app.close()


@pytest.fixture
def proxied(db_url: str) -> Iterator[tuple[Proxy, str]]:
    """The test's PostgreSQL database reached through a forwarder that the test can cut."""
    parts = urlsplit(db_url)
    proxy = Proxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    proxy.start()
    netloc = f"{parts.username}@127.0.0.1:{proxy.port}"
    yield proxy, urlunsplit(parts._replace(netloc=netloc))
    proxy.stop()


@pytest.mark.backends("postgres")
def test_readyz_under_a_stopped_database(
    proxied: tuple[Proxy, str], settings: Settings, tmp_path: Path
) -> None:
    proxy, url = proxied
    app = create_app(settings.replace(db=url, ready_timeout=1.0))
    try:
        with client(app) as http:
            assert http.get("/readyz").status_code == 200
            proxy.stop()  # the database is gone: refused, and open connections cut
            r = http.get("/readyz")
            assert r.status_code == 503 and r.text.startswith("not ready: database unreachable")
            assert http.get("/healthz").status_code == 200  # the process itself is fine
            proxy.start()
            # the pool reconnects in the background; ready again once it has
            deadline = time.monotonic() + 30
            while http.get("/readyz").status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert http.get("/readyz").text == "ready\n"
    finally:
        app.close()


def test_metrics_answer_loopback_only_by_default(app: App, http: TestClient) -> None:
    assert http.get("/metrics").status_code == 404  # the fixture's client is 203.0.113.7
    with client(app) as local:
        r = local.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")


def test_metrics_for_a_configured_network_or_bearer_token(settings: Settings) -> None:
    app = create_app(settings.replace(metrics_allow="198.51.100.0/24", metrics_token="s3cret-m"))
    try:
        with client(app, "198.51.100.9") as allowed, client(app, "203.0.113.7") as other:
            assert allowed.get("/metrics").status_code == 200
            assert other.get("/metrics").status_code == 404
            wrong = other.get("/metrics", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 404
            right = other.get("/metrics", headers={"Authorization": "Bearer s3cret-m"})
            assert right.status_code == 200
    finally:
        app.close()


def sample(text: str, name: str) -> float:
    """The value of one series (name with its labels) in Prometheus' text format."""
    for line in text.splitlines():
        series, _, value = line.rpartition(" ")
        if series == name:
            return float(value)
    return 0.0


def test_metrics_count_requests_by_route_and_status_and_time_redirects(
    app: App, http: TestClient, token: str, m: Mailing
) -> None:
    path = click_paths(http, token, m.destinations[0])[0]
    for _ in range(3):
        assert http.get(path).status_code == 302
    assert http.get("/c/not-a-token").status_code == 404
    http.get(f"/v2/ms/emailing/{m.id}/statistics", params={"access_token": token})
    http.get("/v2/ms/emailing/1/statistics", params={"access_token": "wrong"})
    with client(app) as local:
        text = local.get("/metrics").text
    counted = 'mailstats_http_requests_total{route="%s",status="%s"}'
    assert sample(text, counted % ("/c/{token}", "302")) == 3
    assert sample(text, counted % ("/c/{token}", "404")) == 1
    assert sample(text, counted % ("/v2/ms/emailing/{id}/statistics", "200")) == 1
    assert sample(text, counted % ("/v2/ms/emailing/{id}/statistics", "400")) == 1
    assert sample(text, "mailstats_redirect_seconds_count") == 4
    assert sample(text, 'mailstats_redirect_seconds_bucket{le="+Inf"}') == 4
    assert sample(text, "mailstats_db_pool_size") >= 1
    assert "mailstats_spool_bytes 0.0" in text


@contextmanager
def indexer_role_held_elsewhere(settings: Settings) -> Iterator[None]:
    """Another process's indexer holds the database's role (and derives nothing)."""
    if settings.db.startswith("postgresql://"):
        with psycopg.connect(settings.db, autocommit=True) as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (INDEXER_LOCK,))
            yield
        return
    with open(settings.db + ".indexer", "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def test_readyz_and_metrics_report_a_derive_backlog(settings: Settings) -> None:
    with indexer_role_held_elsewhere(settings):
        app = create_app(settings.replace(ready_backlog_seconds=0.5))
        try:
            with client(app) as http:
                token = app.store.create_token("acme", "UTC")
                [path] = click_paths(http, token, _one_destination(http, token))[:1]
                assert http.get(path).status_code == 302
                assert http.get("/readyz").status_code == 200  # waiting, not for long yet
                time.sleep(0.6)
                r = http.get("/readyz")
                assert r.status_code == 503
                assert r.text.startswith("not ready: derive backlog of 1 events, the oldest ")
                assert r.text.endswith(" s old (threshold 0.5 s)\n")
                metrics = http.get("/metrics").text
                assert "mailstats_derive_backlog_events 1.0" in metrics
                assert "mailstats_derived_events_total 0.0" in metrics
        finally:
            app.close()
    # the role is free again: a server's indexer derives it, and all is well
    app = create_app(settings.replace(ready_backlog_seconds=0.5))
    try:
        assert app.indexer.drain()
        with client(app) as http:
            assert http.get("/readyz").status_code == 200
            assert "mailstats_derive_backlog_events 0.0" in http.get("/metrics").text
            assert "mailstats_derived_events_total 1.0" in http.get("/metrics").text
    finally:
        app.close()


def _one_destination(http: TestClient, token: str) -> int:
    from tests.helpers import add_destinations, make_emailing

    emailing = make_emailing(http, token, '<a href="https://shop.example/x">x</a>')
    return add_destinations(http, token, emailing)[0]
