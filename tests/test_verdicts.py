"""Machine clicks and opens: verdicts and reasons, settling, bots=, extended=, implied
opens, the trap link and rescore (issue 12), on both backends."""

from __future__ import annotations

import csv
import io
import secrets
import time
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from mailstats.cli import cli
from mailstats.kinds import CLICKS, KINDS
from mailstats.settings import Settings
from mailstats.store import Event
from mailstats.tracking.devices import hit_values
from mailstats.web.app import App
from tests.helpers import (
    CLICK_FIELDS,
    PUBLIC,
    TRAP,
    TWO_LINKS,
    UA,
    body_html,
    error,
    get,
    make_emailing,
    page,
    utc,
)

SENT = utc(2026, 3, 2, 9)  # when the messages went out
HOUR = 3600
PERSON = "192.0.2.10"
MICROSOFT = "40.107.3.4"  # Exchange Online Protection (Safe Links)
APPLE = "17.58.100.1"  # Apple Mail Privacy Protection's proxies
SLACK = "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15"


@dataclass
class Sent:
    emailing: int
    destinations: list[int]
    links: list[int]  # A, B
    trap: int


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # the mailings here have two links: two of them followed within a second make a burst
    # (the default asks for three, see test_verdicts_corpus)
    return settings.replace(verdict_burst_links=2)


def sent(app: App, http: TestClient, token: str, n: int = 3, at: int = SENT) -> Sent:
    """An emailing of two links sent to `n` recipients at `at`."""
    emailing = make_emailing(http, token, TWO_LINKS)
    account = app.store.account("acme")
    items = [{"email": f"r{i}@example.org", "profile": f"P{i}", "timestamp": at} for i in range(n)]
    dests = app.store.create_destinations(account.id, emailing, items)
    trap = app.store.trap_link(emailing)
    assert trap is not None
    return Sent(emailing, dests, [k.id for k in app.store.links(emailing)], trap.id)


def event(app: App, kind: str, dest: int, ts: int, ip: str = PERSON, ua: str = UA,
          link: int = 0, reasons: int = 0) -> Event:  # fmt: skip
    found = app.store.tracking_destination(dest)
    assert found is not None
    values: tuple[Any, ...] = hit_values(ip, ua)  # as the tracking endpoints capture them
    if kind == "deliveries":
        values = (1,)
    return Event(KINDS[kind], secrets.token_bytes(16), ts, found[0], found[1], dest, link,
                 values, reasons)  # fmt: skip


def store(app: App, *events: Event) -> None:
    app.store.insert_events(list(events))


def verdicts(http: TestClient, token: str, dest: int, kind: str = "clicks") -> list[Any]:
    """(verdict, reasons) of a destination's events, in ID order."""
    items = page(http, token, f"ms/destination/{dest}/{kind}", "extended=true")["data"]
    return [(item["verdict"], item["reasons"]) for item in items]


def ids(http: TestClient, token: str, resource: str, qs: str = "") -> list[int]:
    return [int(item["ID"]) for item in page(http, token, resource, qs)["data"]]


# --- each reason on its own -----------------------------------------------------------------


def test_a_person_is_human_and_listed_with_bots_exclude(
    app: App, http: TestClient, token: str
) -> None:
    s = sent(app, http, token)
    store(app, event(app, "clicks", s.destinations[0], SENT + HOUR, link=s.links[0]))
    store(app, event(app, "impressions", s.destinations[0], SENT + HOUR - 5, ua=IPHONE))
    assert verdicts(http, token, s.destinations[0]) == [("human", [])]
    assert verdicts(http, token, s.destinations[0], "impressions") == [("human", [])]
    assert len(ids(http, token, "ms/clicks", "bots=exclude")) == 1
    assert ids(http, token, "ms/clicks", "bots=only") == []


@pytest.mark.parametrize(
    ("ip", "ua", "expected"),
    [
        (MICROSOFT, UA, ("scanner", ["network"])),
        (APPLE, UA, ("human", [])),  # a person may click through Apple's relay
        (PERSON, SLACK, ("crawler", ["agent"])),
        (PERSON, "Mozilla/5.0 (compatible; Barracuda Sentinel)", ("scanner", ["agent"])),
        (PERSON, "", ("scanner", ["agent"])),
        (MICROSOFT, SLACK, ("crawler", ["network", "agent"])),
    ],
    ids=["scanner-range", "apple-click", "crawler", "listed-scanner", "no-agent", "both"],
)
def test_network_and_agent_reasons_of_a_click(
    app: App, http: TestClient, token: str, ip: str, ua: str, expected: tuple[str, list[str]]
) -> None:
    s = sent(app, http, token)
    store(app, event(app, "clicks", s.destinations[0], SENT + HOUR, ip, ua, s.links[0]))
    assert verdicts(http, token, s.destinations[0]) == [expected]


def test_apple_prefetch_of_an_open(app: App, http: TestClient, token: str) -> None:
    s = sent(app, http, token)
    store(app, event(app, "impressions", s.destinations[0], SENT + HOUR, APPLE, "Mozilla/5.0"))
    assert verdicts(http, token, s.destinations[0], "impressions") == [("prefetch", ["network"])]


def test_too_soon_after_sending_or_delivery(app: App, http: TestClient, token: str) -> None:
    s = sent(app, http, token)
    first, second, third = s.destinations
    store(app, event(app, "clicks", first, SENT + 3, link=s.links[0]))
    store(app, event(app, "deliveries", second, SENT + 2 * HOUR))
    store(app, event(app, "clicks", second, SENT + 2 * HOUR + 4, link=s.links[0]))
    store(app, event(app, "clicks", third, SENT + 11, link=s.links[0]))  # late enough
    store(app, event(app, "clicks", third, SENT - HOUR, link=s.links[1]))  # history: before
    assert verdicts(http, token, first) == [("scanner", ["too-soon"])]
    assert verdicts(http, token, second) == [("scanner", ["too-soon"])]
    assert verdicts(http, token, third) == [("human", []), ("human", [])]


def test_a_burst_of_links(app: App, http: TestClient, token: str) -> None:
    s = sent(app, http, token)
    first, second, _ = s.destinations
    a, b = s.links
    store(app, event(app, "clicks", first, SENT + HOUR, link=a),
          event(app, "clicks", first, SENT + HOUR + 1, link=b))  # fmt: skip
    # the same link twice in a second (a double click) and two links minutes apart: a person
    store(app, event(app, "clicks", second, SENT + HOUR, link=a),
          event(app, "clicks", second, SENT + HOUR, link=a),
          event(app, "clicks", second, SENT + HOUR + 300, link=b))  # fmt: skip
    assert verdicts(http, token, first) == [("scanner", ["burst"])] * 2
    assert verdicts(http, token, second) == [("human", [])] * 3


def test_the_trap_link_and_what_follows_it(app: App, http: TestClient, token: str) -> None:
    s = sent(app, http, token)
    first, second, _ = s.destinations
    a, b = s.links
    store(app, event(app, "clicks", first, SENT + HOUR, link=s.trap))
    store(app, event(app, "clicks", first, SENT + HOUR + 30, link=a))  # same address, after
    store(app, event(app, "clicks", first, SENT + HOUR + 40, "198.51.100.7", link=b))  # not
    assert verdicts(http, token, first) == [("scanner", ["trap"]), ("scanner", ["trap"]),
                                            ("human", [])]  # fmt: skip
    store(app, event(app, "clicks", second, SENT + HOUR, link=a),
          event(app, "clicks", second, SENT + HOUR, link=s.trap))  # fmt: skip
    assert verdicts(http, token, second) == [("scanner", ["burst", "trap"])] * 2


def test_head_and_prefetch_requests(app: App, http: TestClient, token: str) -> None:
    s = sent(app, http, token, at=int(time.time()) - HOUR)
    html = body_html(http, token, s.destinations[0])
    pixel = html.split('src="' + PUBLIC, 1)[1].split('"', 1)[0]
    assert http.get(pixel, headers={"sec-purpose": "prefetch", "user-agent": UA}).status_code == 200
    assert http.get(pixel, headers={"user-agent": UA}).status_code == 200
    assert verdicts(http, token, s.destinations[0], "impressions") == [
        ("prefetch", ["head"]),
        ("human", []),
    ]


# --- the trap link in the body --------------------------------------------------------------


def test_every_body_has_its_own_trap_link_and_its_text_none(
    app: App, http: TestClient, token: str
) -> None:
    s = sent(app, http, token, n=2, at=int(time.time()) - HOUR)
    traps = []
    for dest in s.destinations:
        html = body_html(http, token, dest)
        [trap] = TRAP.findall(html)
        traps.append(trap)
        text = get(http, token, f"ms/destination/{dest}/body/text").text
        assert trap not in text and "/c/" in text  # its real links, not the trap
        mime = get(http, token, f"ms/destination/{dest}/body/mime").content
        assert b"aria-hidden" not in mime.split(b"text/html")[0]
    assert traps[0] != traps[1]
    r = http.get(traps[0], headers={"user-agent": UA})
    assert r.status_code == 200 and "location" not in r.headers
    [item] = page(http, token, "ms/clicks", "extended=true")["data"]
    assert item["link"] == "" and "trap" in item["reasons"] and item["verdict"] == "scanner"


# --- late evidence and settling --------------------------------------------------------------


def test_a_burst_that_straddles_derive_batches_is_settled_as_one(
    app: App, http: TestClient, token: str
) -> None:
    now = int(time.time())
    s = sent(app, http, token, at=now - HOUR)
    dest = s.destinations[0]
    a, b = s.links
    app.store.capture_events([event(app, "clicks", dest, now - 5, link=a)])
    assert app.indexer.drain(10)
    app.indexer.step()  # nothing new: the window has not passed, nothing settles
    assert verdicts(http, token, dest) == [("human", [])]  # so far
    mark = ids(http, token, "ms/clicks")[0] - 1
    synced = f"fields[]=ID>{mark}&bots=exclude"
    assert ids(http, token, "ms/clicks", synced) == []  # not settled: not shown
    # the rest of the burst comes in a later batch
    app.store.capture_events([event(app, "clicks", dest, now - 4, link=b)])
    assert app.indexer.drain(10)
    assert ids(http, token, "ms/clicks", synced) == []
    app.store.settle(now + 61)
    assert verdicts(http, token, dest) == [("scanner", ["burst"])] * 2
    assert ids(http, token, "ms/clicks", synced) == []  # never shown to the syncing client
    assert len(ids(http, token, "ms/clicks", "bots=only")) == 2
    stats = get(http, token, f"ms/emailing/{s.emailing}/statistics", "bots=exclude").json()
    assert stats["clicks"] == {"total": 0, "unique": 0}


def test_a_person_shows_once_settled(app: App, http: TestClient, token: str) -> None:
    now = int(time.time())
    s = sent(app, http, token, at=now - HOUR)
    store(app, event(app, "clicks", s.destinations[0], now - 5, link=s.links[0]))
    assert ids(http, token, "ms/clicks", "bots=exclude") == []
    stats = get(http, token, f"ms/emailing/{s.emailing}/statistics", "bots=exclude").json()
    assert stats["clicks"] == {"total": 0, "unique": 0}
    app.store.settle(now + 61)
    assert len(ids(http, token, "ms/clicks", "bots=exclude")) == 1
    stats = get(http, token, f"ms/emailing/{s.emailing}/statistics", "bots=exclude").json()
    assert stats["clicks"] == {"total": 1, "unique": 1}


# --- bots= everywhere, with unique ---------------------------------------------------------


def mixed(app: App, http: TestClient, token: str) -> Sent:
    """Per destination: a scanner's click first, then a person's clicks; opens of both."""
    s = sent(app, http, token)
    a, b = s.links
    for n, dest in enumerate(s.destinations):
        base = SENT + HOUR * (n + 1)
        store(app, event(app, "clicks", dest, base, MICROSOFT, link=a),
              event(app, "clicks", dest, base + 600, link=a),
              event(app, "clicks", dest, base + 900, link=a),
              event(app, "clicks", dest, base + 1200, link=b),
              event(app, "impressions", dest, base - 60, APPLE),
              event(app, "impressions", dest, base + 500, ua=IPHONE),
              event(app, "deliveries", dest, SENT))  # fmt: skip
    return s


def test_bots_on_every_list_and_scope_with_unique(app: App, http: TestClient, token: str) -> None:
    s = mixed(app, http, token)
    dest = s.destinations[1]
    scopes = ["ms", f"ms/emailing/{s.emailing}", f"ms/destination/{dest}", f"ms/message/{dest}"]
    for scope in scopes:
        for kind in KINDS:
            resource = f"{scope}/{kind}"
            for unique in ("false", "true"):
                every = ids(http, token, resource, f"unique={unique}")
                assert ids(http, token, resource, f"unique={unique}&bots=include") == every
                people = ids(http, token, resource, f"unique={unique}&bots=exclude")
                machines = ids(http, token, resource, f"unique={unique}&bots=only")
                if not KINDS[kind].verdicts:
                    assert (people, machines) == (every, []), resource
                elif unique == "false":
                    assert sorted(people + machines) == every, resource
                    assert people and machines
    # the earliest *human* click per link: the second click of link A, not the scanner's
    items = page(http, token, f"ms/destination/{dest}/clicks", "unique=true&bots=exclude")["data"]
    assert [(item["link"], item["timestamp"]) for item in items] == [
        ("https://shop.example/a?id={$profile.customerid}", "2026-03-02 12:10:00"),
        ("https://shop.example/b", "2026-03-02 12:20:00"),
    ]
    every = page(http, token, f"ms/destination/{dest}/clicks", "unique=true")["data"]
    assert [item["timestamp"] for item in every] == ["2026-03-02 12:00:00", "2026-03-02 12:20:00"]


@pytest.mark.parametrize("ranged", [False, True])
def test_statistics_uniques_equal_the_lists_for_every_bots(
    app: App, http: TestClient, token: str, ranged: bool
) -> None:
    s = mixed(app, http, token)
    bounds = "&begintime=2026-03-02 12:05:00&endtime=2026-03-02 13:15:00" if ranged else ""
    for scope in (f"ms/emailing/{s.emailing}", f"ms/destination/{s.destinations[0]}"):
        for bots in ("include", "exclude", "only"):
            qs = f"bots={bots}{bounds}"
            stats = get(http, token, f"{scope}/statistics", qs).json()
            for kind in ("clicks", "impressions", "abuses", "unsubscribes", "errors"):
                listed = page(http, token, f"{scope}/{kind}", qs)["total"]
                unique = page(http, token, f"{scope}/{kind}", qs + "&unique=true")["total"]
                assert stats[kind] == {"total": listed, "unique": unique}, (scope, bots, kind)
            assert (
                stats["deliveries"]["total"]
                == page(http, token, f"{scope}/deliveries", qs)["total"]
            )


def test_bots_include_is_copernicas_answer(app: App, http: TestClient, token: str) -> None:
    s = mixed(app, http, token)
    plain = get(http, token, "ms/clicks").content
    assert get(http, token, "ms/clicks", "bots=include").content == plain
    assert list(orjson.loads(plain)["data"][0]) == CLICK_FIELDS
    stats = get(http, token, f"ms/emailing/{s.emailing}/statistics").json()
    assert stats["impressions"] == {"total": 6, "unique": 3}  # no implied key
    assert stats["clicks"] == {"total": 12, "unique": 6}


def test_exports_take_bots_and_extended(
    app: App, http: TestClient, token: str, settings: Settings
) -> None:
    mixed(app, http, token)
    people = ids(http, token, "ms/clicks", "bots=exclude&limit=1000")
    ndjson = get(http, token, "ms/clicks", "bots=exclude&format=ndjson&extended=true").text
    rows = [orjson.loads(line) for line in ndjson.splitlines()]
    assert [int(r["ID"]) for r in rows] == people
    assert {r["verdict"] for r in rows} == {"human"}
    text = get(http, token, "ms/clicks", "bots=only&format=csv&extended=true").text
    table = list(csv.DictReader(io.StringIO(text)))
    assert table and {row["reasons"] for row in table} == {"network"}
    out = CliRunner().invoke(
        cli, ["export", "clicks", "--account", "acme", "--db", settings.db, "--bots", "exclude"],
        catch_exceptions=False,
    )  # fmt: skip
    assert [int(orjson.loads(line)["ID"]) for line in out.output.splitlines()] == people


# --- extended=true and bad values ------------------------------------------------------------


def test_extended_fields_of_clicks_and_opens(app: App, http: TestClient, token: str) -> None:
    s = sent(app, http, token)
    store(app, event(app, "clicks", s.destinations[0], SENT + HOUR, link=s.links[1]),
          event(app, "impressions", s.destinations[0], SENT + HOUR, ua=IPHONE))  # fmt: skip
    [click] = page(http, token, "ms/clicks", "extended=true")["data"]
    # the stored extended columns with the others, then the verdict's fields, then the place
    wide = [*CLICK_FIELDS[:6], "device", "os", "client", *CLICK_FIELDS[6:]]
    assert list(click) == [*wide, "verdict", "reasons", "country", "asn", "asnorg"]
    assert [click[k] for k in ("verdict", "reasons", "device", "os", "client")] == [
        "human", [], "desktop", "Linux", "Firefox",
    ]  # fmt: skip
    [open_] = page(http, token, "ms/impressions", "extended=true")["data"]
    assert list(open_)[-5:] == ["verdict", "reasons", "country", "asn", "asnorg"]
    assert open_["os"] == "iOS"
    [plain] = page(http, token, "ms/clicks")["data"]
    assert list(plain) == CLICK_FIELDS


@pytest.mark.parametrize(
    ("resource", "qs", "name"),
    [
        ("ms/clicks", "bots=maybe", "bots"),
        ("ms/clicks", "bots=EXCLUDE", "bots"),
        ("ms/impressions", "bots[]=exclude", "bots"),
        ("ms/clicks", "extended=maybe", "extended"),
        ("ms/clicks", "bots=none&format=csv", "bots"),
        ("STATS", "bots=all", "bots"),
        ("STATS", "extended=sure", "extended"),
    ],
)
def test_bad_values_are_copernica_errors_naming_the_parameter(
    app: App, http: TestClient, token: str, resource: str, qs: str, name: str
) -> None:
    s = sent(app, http, token, n=1)
    if resource == "STATS":
        resource = f"ms/emailing/{s.emailing}/statistics"
    r = get(http, token, resource, qs)
    assert r.status_code == 400
    assert f"'{name}'" in error(r)


# --- implied opens ------------------------------------------------------------------------


def test_a_human_click_without_an_open_implies_one(app: App, http: TestClient, token: str) -> None:
    s = sent(app, http, token)
    blocked, opened, proxied = s.destinations
    a = s.links[0]
    store(app, event(app, "clicks", blocked, SENT + HOUR, link=a),
          event(app, "clicks", opened, SENT + HOUR, link=a),
          event(app, "impressions", opened, SENT + HOUR - 9, ua=IPHONE),
          event(app, "clicks", proxied, SENT + HOUR, link=a),
          event(app, "impressions", proxied, SENT + 60, APPLE))  # fmt: skip
    path = f"ms/emailing/{s.emailing}/statistics"
    assert get(http, token, path, "bots=exclude").json()["impressions"] == {"total": 1, "unique": 1}
    stats = get(http, token, path, "bots=exclude&extended=true").json()
    assert stats["impressions"] == {"total": 1, "unique": 1, "implied": 2}
    assert len(ids(http, token, "ms/impressions", "bots=exclude")) == 1  # never in the list
    one = get(http, token, f"ms/destination/{blocked}/statistics", "extended=true").json()
    assert one["impressions"]["implied"] == 1


# --- rescore ------------------------------------------------------------------------------


def test_rescore_applies_a_changed_agent_list(
    app: App, http: TestClient, token: str, settings: Settings, tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    s = sent(app, http, token)
    acme_bot = UA + " AcmeMail/2.1"
    for n, dest in enumerate(s.destinations):
        ua = acme_bot if n else UA
        store(app, event(app, "clicks", dest, SENT + HOUR, ua=ua, link=s.links[0]),
              event(app, "impressions", dest, SENT + HOUR, ua=ua))  # fmt: skip
    path = f"ms/emailing/{s.emailing}/statistics"
    before = get(http, token, path, "bots=exclude").json()
    assert before["clicks"] == {"total": 3, "unique": 3}
    agents = tmp_path / "agents.txt"
    agents.write_text("# our own list\nscanner AcmeMail\n")
    monkeypatch.setenv("MAILSTATS_VERDICT_AGENTS", str(agents))
    out = CliRunner().invoke(cli, ["rescore", "--account", "acme", "--db", settings.db],
                             catch_exceptions=False)  # fmt: skip
    assert out.exit_code == 0 and "3 messages" in out.output
    after = get(http, token, path, "bots=exclude").json()
    assert after["clicks"] == {"total": 1, "unique": 1}
    assert after["impressions"] == {"total": 1, "unique": 1}
    assert verdicts(http, token, s.destinations[1]) == [("scanner", ["agent"])]
    assert len(ids(http, token, "ms/clicks", "bots=only&unique=true")) == 2
    # and back: the shipped list again
    monkeypatch.delenv("MAILSTATS_VERDICT_AGENTS")
    since = ["--since", "2026-03-02 00:00:00"]
    CliRunner().invoke(cli, ["rescore", "--account", "acme", "--db", settings.db, *since],
                       catch_exceptions=False)  # fmt: skip
    assert get(http, token, path, "bots=exclude").json() == before


def test_rescore_of_an_unknown_account_is_an_error(settings: Settings, app: App) -> None:
    out = CliRunner().invoke(cli, ["rescore", "--account", "nobody", "--db", settings.db])
    assert out.exit_code != 0 and "nobody" in out.output


def test_clicks_kind_has_verdicts() -> None:
    assert CLICKS.verdicts and not KINDS["deliveries"].verdicts
