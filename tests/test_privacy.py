"""Privacy settings: what the derive step keeps of IP addresses and user agents, scrubbing
stored events, and retention; both backends, through the API and the command line."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from mailstats.cli import cli
from mailstats.settings import Settings
from mailstats.store import privacy
from mailstats.tracking.devices import hit_values
from mailstats.web.app import App
from tests.helpers import (
    UA,
    Mailing,
    click,
    error,
    get,
    insert_clicks,
    insert_events,
    mailing,
    page,
    pixel_path,
)

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)
DAY = 86_400


def put(http: TestClient, token: str, data: Any) -> Any:
    r = http.put("/v2/ms/settings", params={"access_token": token}, json=data)
    assert r.status_code == 200, r.text
    return r.json()


def hits(http: TestClient, token: str, kind: str = "clicks") -> list[dict[str, Any]]:
    body = page(http, token, f"ms/{kind}", "extended=true")
    items: list[dict[str, Any]] = body["data"]
    return items


def test_settings_default_and_change(http: TestClient, token: str) -> None:
    r = get(http, token, "ms/settings")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    nothing = dict.fromkeys(
        ["clicks", "impressions", "deliveries", "errors", "abuses", "unsubscribes"]
    )
    assert r.json() == {"ip": "full", "useragent": "full", "retention": nothing}
    after = put(http, token, {"ip": "truncated", "retention": {"clicks": 30, "errors": 365}})
    assert after == {"ip": "truncated", "useragent": "full",
                     "retention": {**nothing, "clicks": 30, "errors": 365}}  # fmt: skip
    # a partial change keeps the rest; null and "forever" take a limit off
    after = put(http, token, {"useragent": "parsed", "retention": {"clicks": None}})
    assert after["ip"] == "truncated" and after["useragent"] == "parsed"
    assert after["retention"] == {**nothing, "errors": 365}
    put(http, token, {"retention": {"errors": "forever"}})
    assert get(http, token, "ms/settings").json()["retention"] == nothing


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"ip": "half"}, "setting 'ip': one of full, truncated, none"),
        ({"ip": None}, "setting 'ip'"),
        ({"useragent": "none"}, "setting 'useragent': one of full, parsed"),
        ({"retention": 30}, "setting 'retention'"),
        ({"retention": {"opens": 30}}, "Invalid kind 'opens'"),
        ({"retention": {"clicks": 0}}, "'retention.clicks'"),
        ({"retention": {"clicks": 1.5}}, "'retention.clicks'"),
        ({"retention": {"clicks": True}}, "'retention.clicks'"),
        ({"retention": {"clicks": 10**9}}, "'retention.clicks'"),
        ({"colour": "blue"}, "Unknown setting 'colour'"),
        ([1, 2], "JSON object"),
    ],
)
def test_bad_settings_are_copernica_400s_and_change_nothing(
    http: TestClient, token: str, data: Any, words: str
) -> None:
    put(http, token, {"ip": "none"})
    r = http.put("/v2/ms/settings", params={"access_token": token}, json=data)
    assert words in error(r)
    assert get(http, token, "ms/settings").json()["ip"] == "none"


def test_settings_need_a_token(http: TestClient) -> None:
    assert error(http.get("/v2/ms/settings")) == "Invalid access token"
    assert error(http.put("/v2/ms/settings", json={"ip": "none"})) == "Invalid access token"


MODES = [
    ("full", "full", "203.0.113.7", UA),
    ("truncated", "full", "203.0.113.0", UA),
    ("none", "full", None, UA),
    ("full", "parsed", "203.0.113.7", None),
    ("none", "parsed", None, None),
]


@pytest.mark.parametrize(("ip", "useragent", "kept_ip", "kept_ua"), MODES)
def test_modes_apply_when_hits_are_derived(
    http: TestClient, token: str, m: Mailing, ip: str, useragent: str,
    kept_ip: str | None, kept_ua: str | None,
) -> None:  # fmt: skip
    put(http, token, {"ip": ip, "useragent": useragent})
    click(http, token, m.destinations[0])
    assert http.get(pixel_path(http, token, m.destinations[0]), headers={"user-agent": UA})
    for kind in ("clicks", "impressions"):
        (item,) = hits(http, token, kind)
        assert (item["ip"], item["useragent"]) == (kept_ip, kept_ua)
        # what the agent named survives it
        assert (item["device"], item["os"], item["client"]) == ("desktop", "Linux", "Firefox")
    # Copernica's items are unchanged without extended=true
    (plain,) = page(http, token, "ms/clicks")["data"]
    assert "os" not in plain and "client" not in plain and "device" not in plain


def test_modes_apply_to_ipv6_and_to_events_stored_at_once(
    app: App, http: TestClient, token: str, m: Mailing
) -> None:
    put(http, token, {"ip": "truncated", "useragent": "parsed"})
    dest = m.destinations[0]
    for n, address in enumerate(("2001:db8:abcd:12::1", "198.51.100.23", "not an address")):
        insert_events(app, "unsubscribes", dest, [1_700_000_000 + n], hit_values(address, IPHONE))
    items = hits(http, token, "unsubscribes")
    assert [i["ip"] for i in items] == ["2001:db8:abcd::", "198.51.100.0", None]
    assert {(i["useragent"], i["os"], i["client"]) for i in items} == {
        (None, "iOS", "Mobile Safari")
    }


def test_a_change_applies_to_new_events_and_scrub_to_stored_ones(
    app: App, http: TestClient, token: str, m: Mailing, settings: Settings
) -> None:
    click(http, token, m.destinations[0])
    assert app.indexer.drain()
    insert_clicks(app, m.destinations[1], m.links[1], [1_700_000_000], ip="2001:db8:1:2::9")
    put(http, token, {"ip": "truncated", "useragent": "parsed"})
    click(http, token, m.destinations[0], 1)
    items = hits(http, token)
    assert [(i["ip"], i["useragent"]) for i in items] == [
        ("203.0.113.7", UA), ("2001:db8:1:2::9", UA), ("203.0.113.0", None)
    ]  # fmt: skip
    before = page(http, token, "ms/clicks", "unique=true")["total"]
    result = CliRunner().invoke(cli, ["account", "scrub", "--account", "acme", "--db", settings.db])
    assert result.exit_code == 0, result.output
    assert "2 events changed" in result.output
    items = hits(http, token)
    assert [(i["ip"], i["useragent"]) for i in items] == [
        ("203.0.113.0", None), ("2001:db8:1::", None), ("203.0.113.0", None)
    ]  # fmt: skip
    assert page(http, token, "ms/clicks", "unique=true")["total"] == before
    # ip=none by scrub; a second scrub has nothing left to do
    CliRunner().invoke(cli, ["account", "set", "--account", "acme", "--ip", "none",
                             "--db", settings.db])  # fmt: skip
    assert CliRunner().invoke(cli, ["account", "scrub", "--account", "acme",
                                    "--db", settings.db]).output.endswith("3 events changed\n")  # fmt: skip
    assert {i["ip"] for i in hits(http, token)} == {None}
    again = CliRunner().invoke(cli, ["account", "scrub", "--account", "acme", "--db", settings.db])
    assert again.output.endswith("0 events changed\n")


def test_account_set_and_show_on_the_command_line(settings: Settings, token: str) -> None:
    runner = CliRunner()
    db = ["--db", settings.db]
    result = runner.invoke(cli, ["account", "set", "--account", "acme", "--ip", "truncated",
                                 "--retention", "clicks=90", "--retention", "abuses=7", *db])  # fmt: skip
    assert result.exit_code == 0, result.output
    shown = runner.invoke(cli, ["account", "show", "--account", "acme", *db])
    assert '"ip": "truncated"' in shown.output and '"clicks": 90' in shown.output
    bad = runner.invoke(cli, ["account", "set", "--account", "acme", "--retention", "clicks=soon",
                              *db])  # fmt: skip
    assert bad.exit_code == 2 and "KIND=DAYS" in bad.output
    bad = runner.invoke(cli, ["account", "set", "--account", "acme", "--retention", "opens=3",
                              *db])  # fmt: skip
    assert bad.exit_code == 1 and "Invalid kind 'opens'" in bad.output
    assert runner.invoke(cli, ["account", "set", "--account", "acme", "--ip", "half",
                               *db]).exit_code == 2  # fmt: skip


def test_retention_strips_exactly_what_is_past_its_age(
    app: App, http: TestClient, token: str, m: Mailing
) -> None:
    now = 1_750_000_000
    old, young = now - 31 * DAY, now - 29 * DAY
    a, b = m.destinations
    insert_clicks(app, a, m.links[0], [old, young])
    insert_clicks(app, b, m.links[0], [old])
    insert_events(app, "impressions", a, [old], ("192.0.2.1", UA, "desktop"))
    insert_events(app, "unsubscribes", a, [old, young - 40 * DAY], ("192.0.2.1", UA))
    insert_events(app, "deliveries", b, [old - DAY], (1,))
    before = {k: page(http, token, f"ms/{k}")["total"] for k in ("clicks", "impressions")}
    put(http, token, {"retention": {"clicks": 30, "unsubscribes": 60}})
    done = privacy.retention_pass(app.store, now)
    clicks = hits(http, token)
    assert [(c["ip"] is None, c["useragent"] is None) for c in clicks] == [
        (True, True), (False, False), (True, True)
    ]  # fmt: skip
    assert all(c["client"] == "Firefox" or c["client"] is None for c in clicks)
    assert [i["ip"] for i in hits(http, token, "impressions")] == ["192.0.2.1"]  # for ever
    assert [u["ip"] for u in hits(http, token, "unsubscribes")] == ["192.0.2.1", None]
    assert done.events == 3
    # destinations: none has all its events past their kinds' ages (impressions and
    # deliveries are kept for ever)
    assert done.destinations == 0
    assert {k: page(http, token, f"ms/{k}")["total"] for k in before} == before
    # once deliveries and impressions have an age too, both are past it
    put(http, token, {"retention": {"deliveries": 10, "impressions": 10}})
    again = privacy.retention_pass(app.store, now)
    assert again.destinations == 1  # `a` has a click younger than 30 days
    account = app.store.account("acme").id
    assert app.store.destination(account, b).email == ""
    assert app.store.destination(account, a).email == "r0@example.org"
    assert privacy.retention_pass(app.store, now).events == 0


def test_retention_on_the_command_line_and_in_serve(
    app: App, settings: Settings, http: TestClient, token: str, m: Mailing
) -> None:
    insert_clicks(app, m.destinations[0], m.links[0], [1_000_000_000])
    put(http, token, {"retention": {"clicks": 1}})
    result = CliRunner().invoke(cli, ["retention", "--db", settings.db])
    assert result.exit_code == 0, result.output
    assert "1 events and" in result.output
    assert hits(http, token)[0]["ip"] is None


def test_the_clients_chart_names_agents_that_are_no_longer_kept(
    http: TestClient, token: str, m: Mailing
) -> None:
    a, b = m.destinations
    assert http.get(pixel_path(http, token, a), headers={"user-agent": IPHONE}).status_code == 200
    put(http, token, {"useragent": "parsed"})
    assert http.get(pixel_path(http, token, b), headers={"user-agent": IPHONE}).status_code == 200
    assert [i["useragent"] for i in hits(http, token, "impressions")] == [IPHONE, None]
    chart = get(http, token, f"ms/emailing/{m.id}/charts/clients").json()
    assert [(c["client"], c["os"], c["total"]) for c in chart["clients"]] == [
        ("Mobile Safari", "iOS", 2)
    ]
    assert [(d["device"], d["total"]) for d in chart["devices"]] == [("mobile", 2)]


@pytest.mark.parametrize(("ip", "useragent", "kept_ip", "kept_ua"), MODES)
def test_each_mode_by_scrub(
    app: App, http: TestClient, token: str, m: Mailing, settings: Settings, ip: str,
    useragent: str, kept_ip: str | None, kept_ua: str | None,
) -> None:  # fmt: skip
    click(http, token, m.destinations[0])
    assert http.get(pixel_path(http, token, m.destinations[1]), headers={"user-agent": UA})
    other = app.store.create_token("other", "Europe/Amsterdam")
    theirs = mailing(app, http, other, destinations=1)
    click(http, other, theirs.destinations[0])
    put(http, token, {"ip": ip, "useragent": useragent})
    result = CliRunner().invoke(cli, ["account", "scrub", "--account", "acme", "--db", settings.db])
    assert result.exit_code == 0, result.output
    for kind in ("clicks", "impressions"):
        (item,) = hits(http, token, kind)
        assert (item["ip"], item["useragent"]) == (kept_ip, kept_ua)
        assert (item["os"], item["client"]) == ("Linux", "Firefox")
    (untouched,) = hits(http, other)  # another account's events keep theirs
    assert (untouched["ip"], untouched["useragent"]) == ("203.0.113.7", UA)
