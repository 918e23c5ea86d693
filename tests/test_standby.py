"""Reads from a hot standby, and a failover, on a real primary and streaming standby.

A read node (`read_db`) answers lists, statistics and exports with the primary down, token
checks included; what needs the primary answers 503 with Copernica's error body and
Retry-After, never 500. With `db` a multi-host URL, the writers and the indexer follow a
promoted standby by themselves, and no redirected click is lost or stored twice.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mailstats.client import Client
from mailstats.store import open_store
from tests import server
from tests.standby import Pair, pair
from tests.test_durability import Load, _assert_exactly_once, _tracked_links, _wait_for_all

pytestmark = pytest.mark.postgres
CSRF = re.compile(r'name="csrf" value="([^"]+)"')

HTML = (
    "<html><body>"
    '<a href="https://shop.example/a?id={$profile.customerid}">A</a>'
    '<a href="https://shop.example/b">B</a>'
    "</body></html>"
)


@pytest.fixture
def pg() -> Iterator[Pair]:
    with pair() as p:
        yield p


def _clicks(api: httpx.Client, wanted: int, seconds: float = 30) -> dict[str, object]:
    """The clicks list once it holds `wanted` items (derived, replayed to the standby)."""
    deadline = time.monotonic() + seconds
    while True:
        r = api.get("/v2/ms/clicks", params={"limit": 100})
        assert r.status_code == 200, r.text
        body: dict[str, object] = r.json()
        if body["count"] == wanted or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


def test_a_read_node_answers_with_the_primary_down(pg: Pair, tmp_path: Path) -> None:
    primary, standby = pg.primary.url("mailstats"), pg.standby.url("mailstats")
    open_store(primary).close()
    token = server.make_token(primary)
    env = {"MAILSTATS_READ_DB": standby, "MAILSTATS_SPOOL": str(tmp_path / "spool")}
    with (
        server.running(primary, env=env) as srv,
        httpx.Client(base_url=srv.url, params={"access_token": token}, timeout=20) as api,
    ):
        emailing = {"subject": "s", "from_address": {"email": "n@shop.example"}, "html": HTML}
        r = api.post("/v2/ms/emailings", json=emailing)
        assert r.status_code == 201, r.text
        emailing_id = r.headers["x-created"]
        people = [{"email": f"r{n}@x.test", "fields": {"customerid": f"c{n}"}} for n in range(3)]
        r = api.post(f"/v2/ms/emailing/{emailing_id}/destinations", json=people)
        dests = r.headers["x-created"].split(", ")
        pg.replayed("mailstats")
        links = []
        for dest in dests:
            body = api.get(f"/v2/ms/destination/{dest}/body/html").text
            links.append(re.findall(r'href="(http://[^"]+/c/[^"]+)"', body))
        with httpx.Client(timeout=20) as visitor:
            assert visitor.get(links[0][0]).status_code == 302  # personalised: dest 0 cached
            assert visitor.get(links[0][1]).status_code == 302  # plain: link cached
            assert len(_clicks(api, 2)["data"]) == 2  # type: ignore[arg-type]

            pg.stop(pg.primary)
            # reads: the standby answers, token checks included
            assert _clicks(api, 2)["count"] == 2
            r = api.get(f"/v2/ms/emailing/{emailing_id}/statistics")
            assert r.status_code == 200 and r.json()["clicks"]["total"] == 2, r.text
            r = api.get("/v2/ms/clicks", params={"format": "csv"})
            assert r.status_code == 200 and len(r.text.strip().splitlines()) == 3
            r = api.get(f"/v2/ms/emailing/{emailing_id}/destinations")
            assert r.status_code == 200 and r.json()["count"] == 3
            # the dashboard: signed in with the token, its pages read from the standby
            with httpx.Client(base_url=srv.url, timeout=20) as browser:
                form = CSRF.findall(browser.get("/dashboard/login").text)[0]
                r = browser.post("/dashboard/login", data={"csrf": form, "token": token})
                assert r.status_code == 303, r.text
                r = browser.get(f"/dashboard/emailing/{emailing_id}")
                assert r.status_code == 200 and "https://shop.example/b" in r.text
                r = browser.get(f"/dashboard/emailing/{emailing_id}/export/clicks.csv")
                assert r.status_code == 200 and len(r.text.strip().splitlines()) == 3
            # a write needs the primary: 503 with Copernica's body, never 500
            r = api.post("/v2/ms/emailings", json=emailing)
            assert r.status_code == 503 and r.headers["retry-after"].isdigit()
            assert r.json() == {"error": {"message": r.json()["error"]["message"]}}
            # tracking: a cached plain link redirects; a personalised link whose destination
            # is not cached is captured and answered 503 with Retry-After
            assert visitor.get(links[1][1]).status_code == 302
            r = visitor.get(links[2][0])
            assert r.status_code == 503 and r.headers["retry-after"].isdigit()

            pg.start(pg.primary)
            # the spooled clicks are replayed and derived once the primary is back
            body = _clicks(api, 4)
        assert body["count"] == 4
        got = {(c["destination"], c["link"]) for c in body["data"]}  # type: ignore[attr-defined]
        assert (dests[2], "https://shop.example/a?id={$profile.customerid}") in got
        assert (dests[1], "https://shop.example/b") in got
        assert srv.stop() == 0


class Sync:
    """A client syncing with `fields[]=ID>last` as the API's users do, through the fault
    (a failed request is tried again)."""

    def __init__(self, base: str, token: str) -> None:
        self.api = httpx.Client(base_url=base, params={"access_token": token}, timeout=10)
        self.ids: list[int] = []
        self.statuses: set[int] = set()  # of the requests not answered 200
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def step(self) -> int:
        last = self.ids[-1] if self.ids else 0
        r = self.api.get("/v2/ms/clicks", params={"fields[]": f"ID>{last}", "limit": 1000})
        if r.status_code != 200:
            self.statuses.add(r.status_code)
            return 0
        items = [int(item["ID"]) for item in r.json()["data"]]
        self.ids.extend(items)
        return len(items)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            with contextlib.suppress(httpx.TransportError):
                self.step()

    def __enter__(self) -> Sync:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_writers_and_the_indexer_follow_a_promoted_standby(pg: Pair, tmp_path: Path) -> None:
    db = pg.failover_url("mailstats")
    open_store(db).close()
    token = server.make_token(db)
    env = {"MAILSTATS_SPOOL": str(tmp_path / "spool")}
    with server.running(db, env=env) as srv:
        links = _tracked_links(srv.url, token, 20)
        pg.replayed("mailstats")
        with Sync(srv.url, token) as sync, Load(links, threads=4) as load:
            time.sleep(1.0)
            pg.stop(pg.primary)
            before = len(load.redirected)
            time.sleep(0.5)
            pg.promote()
            time.sleep(2.0)
            during = len(load.redirected) - before
        assert during > 10, "redirects stopped during the failover"
        assert load.failed == 0 and load.statuses == {302}  # every click redirected
        _assert_exactly_once(_wait_for_all(db, load.redirected), load.redirected)
        try:
            while sync.step():
                pass
        finally:
            sync.api.close()
        # the client that synced by ID through the failover saw every click, in order
        with Client(srv.url, token) as api:
            every = [int(item["ID"]) for item in api.iterate("ms/clicks")]
        assert len(every) == len(load.redirected) and sync.ids == sorted(every)
        assert sync.statuses <= {503}  # the database away: 503, never a 500
        # the API reads from the promoted standby
        r = httpx.get(f"{srv.url}/v2/ms/clicks", params={"access_token": token, "total": "true"})
        assert r.status_code == 200 and r.json()["total"] == len(load.redirected)
        assert srv.stop() == 0


def test_capture_on_nats_drains_into_the_promoted_standby(pg: Pair, tmp_path: Path) -> None:
    from tests.nats import cluster

    db = pg.failover_url("mailstats")
    open_store(db).close()
    token = server.make_token(db)
    with cluster(tmp_path / "nats") as nats:
        env = {"MAILSTATS_SPOOL": str(tmp_path / "spool"), "MAILSTATS_CAPTURE": nats.urls}
        with server.running(db, env=env) as srv:
            links = _tracked_links(srv.url, token, 20)
            pg.replayed("mailstats")
            with Load(links, threads=4) as load:
                time.sleep(1.0)
                pg.stop(pg.primary)
                before = len(load.redirected)
                time.sleep(1.0)
                during = len(load.redirected) - before
                pg.promote()
                time.sleep(1.0)
            # plain links need no database: the stream takes every click meanwhile
            assert during > 10, "redirects stopped while the primary was down"
            assert load.failed == 0 and load.statuses == {302}  # every click redirected
            assert not list((tmp_path / "spool").glob("*.spool"))
            _assert_exactly_once(_wait_for_all(db, load.redirected), load.redirected)
            assert srv.stop() == 0
