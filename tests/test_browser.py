"""The dashboard as a person uses it: Debian's chromium, driven by Playwright, against a real
`mailstats serve`. Each page's screenshot is written to build/test-artifacts/ (or to
$MAILSTATS_TEST_ARTIFACTS) for a person to look at."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mailstats.kinds import KINDS
from mailstats.store import Event, open_store
from mailstats.tracking.devices import hit_values
from tests import server
from tests.helpers import utc

playwright = pytest.importorskip("playwright.sync_api")

HTML = (
    '<html><head><title>Autumn</title></head><body style="font-family:sans-serif">'
    '<h1>Autumn sale</h1><p><a href="https://shop.example/sale">Shop the sale</a></p>'
    '<p><a href="https://shop.example/jackets">Jackets</a> and '
    '<a href="https://shop.example/boots">boots</a></p></body></html>'
)
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "chromium is not installed (scripts/test installs it with apt-get)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture
def artifacts(backend: str) -> Path:
    root = Path(os.environ.get("MAILSTATS_TEST_ARTIFACTS", "build/test-artifacts"))
    folder = root / f"dashboard-{backend}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def seed(db_url: str) -> dict[str, Any]:
    """Two accounts; acme's emailing has recipients, every kind of event, over three days."""
    store = open_store(db_url)
    try:
        acme = store.ensure_account("acme", "Europe/Amsterdam")
        links = [(m, m + len(u), u) for u in ("https://shop.example/sale",
                 "https://shop.example/jackets", "https://shop.example/boots")
                 for m in [HTML.index(u)]]  # fmt: skip
        emailing = store.create_emailing(
            acme.id, subject="Autumn sale", from_name="Shop", from_email="news@shop.example",
            html=HTML, text=None, tags=[], type="mass", links=links,
        )  # fmt: skip
        link_ids = [link.id for link in store.links(emailing)]
        dests = store.create_destinations(
            acme.id, emailing, [{"email": f"r{n}@example.org"} for n in range(8)]
        )
        start = utc(2026, 10, 24, 8)
        events = []

        def add(kind: str, dest: int, ts: int, values: tuple[Any, ...], link: int = 0) -> None:
            events.append(Event(KINDS[kind], secrets.token_bytes(16), ts, acme.id, emailing,
                                dest, link, values))  # fmt: skip

        for n, dest in enumerate(dests):
            add("deliveries", dest, start + n, (1,))
            for k in range(n % 3 + 1):
                ua = IPHONE if n % 2 else FIREFOX  # as captured: with its parsed names
                add("impressions", dest, start + 600 + n * 3000 + k * 40000,
                    hit_values("192.0.2.1", ua))  # fmt: skip
            for k in range(n % 4):
                add("clicks", dest, start + 900 + n * 3100 + k * 50000,
                    hit_values("192.0.2.1", FIREFOX), link_ids[(n + k) % 3])  # fmt: skip
        add("errors", dests[7], start + 50, ("5.1.1", "550", "no such user", "hard", "userunknown"))
        add("abuses", dests[6], start + 90000, ('{"type": "abuse"}',))
        add("unsubscribes", dests[5], start + 100000, hit_values("192.0.2.1", FIREFOX))
        store.insert_events(events)
        other = store.ensure_account("other", "Europe/Amsterdam")
        theirs = store.create_emailing(
            other.id, subject="Not yours", from_name="O", from_email="o@example.org",
            html="<p>x</p>", text=None, tags=[], type="mass", links=[],
        )  # fmt: skip
        return {
            "token": store.create_token("acme", "Europe/Amsterdam"),
            "emailing": emailing,
            "links": link_ids,
            "destinations": dests,
            "theirs": theirs,
        }
    finally:
        store.close()


@pytest.fixture
def served(db_url: str) -> Iterator[tuple[server.Server, dict[str, Any]]]:
    data = seed(db_url)
    with server.running(db_url) as srv:
        yield srv, data


def api(srv: server.Server, token: str, path: str, **params: str) -> httpx.Response:
    r = httpx.get(f"{srv.url}/v2/ms/{path}", params={"access_token": token, **params})
    assert r.status_code == 200, r.text
    return r


def test_the_dashboard_in_a_browser(
    served: tuple[server.Server, dict[str, Any]], chromium: str, artifacts: Path
) -> None:
    srv, data = served
    token, emailing = data["token"], data["emailing"]
    stats = api(srv, token, f"emailing/{emailing}/statistics").json()
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900},
                                          accept_downloads=True)  # fmt: skip
            page = context.new_page()

            def shot(name: str) -> None:
                page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)

            # not signed in: the sign-in page; a wrong token is refused
            page.goto(f"{srv.url}/dashboard/")
            assert page.url.startswith(f"{srv.url}/dashboard/login")
            shot("login")
            page.fill("#token", "not-the-token")
            page.click("#sign-in")
            assert "Unknown access token" in page.inner_text("[role=alert]")
            shot("login-refused")

            # signed in: the account's emailings, and nothing of the other account
            page.fill("#token", token)
            page.click("#sign-in")
            page.wait_for_selector("#emailings")
            rows = page.locator("#emailings tbody tr")
            assert rows.count() == 1 and "Autumn sale" in rows.first.inner_text()
            assert "Not yours" not in page.content()
            shot("overview")

            # one emailing: one chart point per bucket, totals equal the statistics
            page.click("text=Autumn sale")
            page.wait_for_selector("#chart canvas")
            timeline = api(srv, token, f"emailing/{emailing}/charts/timeline").json()
            chart = page.evaluate("window.mailstatsChart.data")
            # two local days in hours, the second with 25 of them (the clocks go back)
            assert timeline["interval"] == "hour"
            assert len(chart[0]) == len(timeline["buckets"]) == 24 + 25
            assert page.get_attribute("#chart", "data-points") == "49"
            assert sum(chart[1]) == stats["impressions"]["total"]
            assert sum(chart[2]) == stats["impressions"]["unique"]
            assert sum(chart[3]) == stats["clicks"]["total"]
            assert sum(chart[4]) == stats["clicks"]["unique"]
            clickers = api(srv, token, f"emailing/{emailing}/clicks", unique="true").json()
            recipients = len({item["destination"] for item in clickers["data"]})
            assert page.inner_text("[data-step=clicked] .num") == str(recipients) == "6"

            # the click map marks every link with its clicks
            links = api(srv, token, f"emailing/{emailing}/charts/links").json()["data"]
            frame = page.frame_locator("#clickmap-frame")
            for link in links:
                marked = frame.locator(f'[data-ms-link="{link["ID"]}"]')
                assert marked.get_attribute("data-ms-clicks") == str(link["total"])
                assert marked.get_attribute("data-ms-label").startswith(f"{link['total']} · ")
            assert sum(link["total"] for link in links) == stats["clicks"]["total"] > 0
            shot("emailing")

            # export: the file holds the API's rows
            with page.expect_download() as download:
                page.click('[data-export="clicks"]')
            exported = Path(download.value.path()).read_bytes()
            expected = api(srv, token, f"emailing/{emailing}/clicks", format="csv").content
            assert (
                exported == expected and len(exported.splitlines()) == stats["clicks"]["total"] + 1
            )

            # another range: the first day in hours
            page.select_option("#range", "1d")
            page.select_option("#interval", "hour")
            page.click("#apply")
            page.wait_for_selector("#chart canvas")
            assert "range=1d" in page.url and "interval=hour" in page.url
            first_day = api(srv, token, f"emailing/{emailing}/charts/timeline",
                            range="1d", interval="hour").json()  # fmt: skip
            chart = page.evaluate("window.mailstatsChart.data")
            assert len(chart[0]) == len(first_day["buckets"]) == 24
            assert sum(chart[3]) == first_day["totals"]["clicks"]["total"]
            assert first_day["totals"]["clicks"]["total"] < stats["clicks"]["total"]
            # the complaint came on the second day: neither counted nor listed on the first
            assert page.inner_text("#abuses h2") == "Complaints 0"
            assert page.locator("#abuses a").count() == 0
            shot("emailing-first-day")

            # dates of one's own: picking one selects a custom range
            page.fill("input[name=begin]", "2026-10-25")
            page.fill("input[name=end]", "2026-10-25")
            assert page.input_value("#range") == "custom"
            page.click("#apply")
            page.wait_for_selector("#chart canvas")
            assert "range=custom" in page.url
            chart = page.evaluate("window.mailstatsChart.data")
            assert len(chart[0]) == 25  # the day the clocks go back
            shot("emailing-custom-day")

            # a recipient's timeline
            page.click("[data-preset=all]")
            page.wait_for_selector("#chart canvas")
            page.click("#unsubscribes a")
            page.wait_for_selector("#events")
            assert page.locator('[data-kind="unsubscribes"]').count() == 1
            shot("recipient")

            # another account's emailing is not found
            response = page.goto(f"{srv.url}/dashboard/emailing/{data['theirs']}")
            assert response is not None and response.status == 404
            assert "There is no such page" in page.content()
            shot("not-found")

            # on a phone screen
            page.set_viewport_size({"width": 390, "height": 844})
            page.goto(f"{srv.url}/dashboard/emailing/{emailing}")
            page.wait_for_selector("#chart canvas")
            frame.locator("[data-ms-link]").first.wait_for()
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390  # nothing wider than the screen
            shot("emailing-phone")
            # a full-page capture leaves frames below the first screen unpainted: the map alone
            page.locator("#clickmap-frame").scroll_into_view_if_needed()
            page.locator("#clickmap").screenshot(path=str(artifacts / "clickmap-phone.png"))

            # sign out: back to the sign-in page, and the pages are closed again
            page.set_viewport_size({"width": 1280, "height": 900})
            page.click("#sign-out")
            page.wait_for_selector("#sign-in")
            page.goto(f"{srv.url}/dashboard/")
            assert page.url.startswith(f"{srv.url}/dashboard/login")
        finally:
            browser.close()
    for name in ("login", "overview", "emailing", "emailing-first-day", "recipient",
                 "not-found", "emailing-phone"):  # fmt: skip
        assert (artifacts / f"{name}.png").stat().st_size > 1000
