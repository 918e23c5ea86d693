"""No click that got its redirect is lost or counted twice: SIGKILL mid-load, database outages."""

from __future__ import annotations

import re
import signal
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from mailstats.kinds import CLICKS
from mailstats.store import Filter, Scope, open_store
from tests import server
from tests.proxy import Proxy


def _tracked_links(base: str, token: str, count: int) -> list[str]:
    """Register an emailing with `count` destinations over HTTP; return one click URL each."""
    html = '<html><body><a href="https://shop.example/a">a</a></body></html>'
    emailing = {"subject": "s", "from_address": {"email": "n@shop.example"}, "html": html}
    with httpx.Client(base_url=base, params={"access_token": token}, timeout=10) as api:
        r = api.post("/v2/ms/emailings", json=emailing)
        recipients = [{"email": f"r{i}@x.test"} for i in range(count)]
        r = api.post(f"/v2/ms/emailing/{r.headers['x-created']}/destinations", json=recipients)
        links = []
        for dest in r.headers["x-created"].split(", "):
            body = api.get(f"/v2/ms/destination/{dest}/body/html").text
            links.append(re.findall(r'href="(http://[^"]+/c/[^"]+)"', body)[0])
    return links


class Load:
    """Threads clicking until stopped; each request has its own user agent, so it is traceable."""

    def __init__(self, links: list[str], threads: int = 8) -> None:
        self.links = links
        self.redirected: set[str] = set()
        self.failed = 0
        self.statuses: set[int] = set()  # every status answered
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(n,)) for n in range(threads)]

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()

    def _run(self, n: int) -> None:
        with httpx.Client(timeout=5) as http:
            i = 0
            while not self._stop.is_set() and i < 100_000:
                ua = f"load/{n}/{i}"
                i += 1
                try:
                    r = http.get(self.links[i % len(self.links)], headers={"user-agent": ua})
                except httpx.TransportError:
                    with self._lock:
                        self.failed += 1
                    time.sleep(0.02)
                    continue
                with self._lock:
                    self.statuses.add(r.status_code)
                    if r.status_code == 302:
                        self.redirected.add(ua)


def _stored_agents(db: str) -> list[str]:
    store = open_store(db)
    try:
        account = store.account("acme")
        return [row[5] for row in store.stream_events(CLICKS, Scope(account.id), Filter())]
    finally:
        store.close()


def _wait_for_all(db: str, wanted: set[str], seconds: float = 30) -> list[str]:
    deadline = time.monotonic() + seconds
    while True:
        agents = _stored_agents(db)
        if wanted <= set(agents) or time.monotonic() > deadline:
            return agents
        time.sleep(0.3)


def _assert_exactly_once(agents: list[str], redirected: set[str]) -> None:
    assert len(agents) == len(set(agents)), "a click was stored twice"
    missing = redirected - set(agents)
    assert not missing, f"{len(missing)} redirected clicks were lost"


def test_sigkill_under_load_loses_no_redirected_click(db_url: str, tmp_path: Path) -> None:
    env = {"MAILSTATS_SPOOL": str(tmp_path / "spool")}
    token = server.make_token(db_url)
    srv = server.start(db_url, env=env)
    links = _tracked_links(srv.url, token, 20)
    with Load(links) as load:
        time.sleep(1.5)
        srv.stop(signal.SIGKILL)
        time.sleep(0.3)
        srv = server.start(db_url, port=srv.port, env=env)
        time.sleep(1.0)
    try:
        assert len(load.redirected) > 50
        _assert_exactly_once(_wait_for_all(db_url, load.redirected), load.redirected)
    finally:
        assert srv.stop() == 0


@pytest.mark.backends("postgres")
def test_database_outage_mid_load_keeps_redirecting(db_url: str, tmp_path: Path) -> None:
    parts = urlsplit(db_url)
    proxy = Proxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    proxy.start()
    via_proxy = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    env = {"MAILSTATS_SPOOL": str(tmp_path / "spool")}
    token = server.make_token(db_url)
    with server.running(via_proxy, env=env) as srv:
        links = _tracked_links(srv.url, token, 20)
        with Load(links) as load:
            time.sleep(1.0)
            before = len(load.redirected)
            proxy.stop()
            time.sleep(2.0)
            during = len(load.redirected) - before
            proxy.start()
            time.sleep(1.0)
        assert during > 20, "redirects stopped while the database was unreachable"
        assert load.failed == 0
        _assert_exactly_once(_wait_for_all(db_url, load.redirected), load.redirected)
        assert srv.stop() == 0
    proxy.stop()
