"""Where clicks and opens come from: country and network found by the indexer, on both backends.

The addresses are ones every public source places alike: RIPE NCC's own (193.0.6.139 and
2001:67c:2e8::/48, in the Netherlands) and K-root's (193.0.14.129, operated by RIPE NCC).
Hits reach the app through a trusted proxy, which names the visitor in X-Forwarded-For.
"""

from __future__ import annotations

import csv
import io
import json
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner
from mmdb_writer import MMDBWriter  # type: ignore[import-untyped]
from netaddr import IPSet  # type: ignore[import-untyped]
from starlette.testclient import TestClient

from mailstats.cli import cli
from mailstats.errors import MailstatsError
from mailstats.geo import Geo
from mailstats.kinds import CLICKS
from mailstats.settings import Settings
from mailstats.store import Event, open_store
from mailstats.web.app import App, create_app
from tests.helpers import (
    PUBLIC,
    UA,
    Mailing,
    click_paths,
    error,
    get,
    insert_clicks,
    mailing,
    page,
    pixel_path,
    post_event,
    utc,
)
from tests.test_dashboard import sign_in

RIPE = "193.0.6.139"
K_ROOT = "193.0.14.129"
RIPE_V6 = "2001:67c:2e8:22::c100:68b"
RIPE_ORG = "Reseaux IP Europeens Network Coordination Centre (RIPE NCC)"
PRIVATE = ("10.1.2.3", "192.168.0.10", "127.0.0.1", "::1", "fd00::1", "not an address")
STATS = ["abuses", "clicks", "deliveries", "errors", "impressions", "retries", "unsubscribes"]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # the test client (203.0.113.7) is a trusted proxy: X-Forwarded-For names the visitor
    return settings.replace(trusted_proxies="203.0.113.0/24")


def visit(http: TestClient, path: str, address: str) -> None:
    r = http.get(path, headers={"x-forwarded-for": address, "user-agent": UA})
    assert r.status_code in (200, 302), r.text


def clicks(http: TestClient, token: str, resource: str = "ms/clicks", qs: str = "") -> list[dict]:
    return list(page(http, token, resource, "extended=true" + (f"&{qs}" if qs else ""))["data"])


def test_clicks_and_opens_get_country_and_network(http: TestClient, token: str, m: Mailing) -> None:
    path = click_paths(http, token, m.destinations[0])[0]
    for address in (RIPE, K_ROOT, RIPE_V6):
        visit(http, path, address)
    visit(http, pixel_path(http, token, m.destinations[1]), RIPE_V6)
    found = clicks(http, token)
    assert [(i["ip"], i["country"], i["asnorg"]) for i in found] == [
        (RIPE, "NL", RIPE_ORG), (K_ROOT, "NL", RIPE_ORG), (RIPE_V6, "NL", RIPE_ORG),
    ]  # fmt: skip
    assert all(i["asn"] is None for i in found)  # the bundled data names no numbers
    assert list(found[0])[-3:] == ["country", "asn", "asnorg"]
    opens = clicks(http, token, "ms/impressions")
    assert [(i["ip"], i["country"]) for i in opens] == [(RIPE_V6, "NL")]


@pytest.mark.parametrize("mode", ["none", "truncated"])
def test_an_account_keeping_no_address_still_gets_countries(
    http: TestClient, token: str, m: Mailing, mode: str
) -> None:
    r = http.put("/v2/ms/settings", params={"access_token": token}, json={"ip": mode})
    assert r.status_code == 200, r.text
    visit(http, click_paths(http, token, m.destinations[0])[0], RIPE)
    visit(http, pixel_path(http, token, m.destinations[1]), RIPE_V6)
    kept = {"none": (None, None), "truncated": ("193.0.6.0", "2001:67c:2e8::")}[mode]
    assert [(i["ip"], i["country"], i["asnorg"]) for i in clicks(http, token)] == [
        (kept[0], "NL", RIPE_ORG)
    ]
    opens = clicks(http, token, "ms/impressions")
    assert [(i["ip"], i["country"]) for i in opens] == [(kept[1], "NL")]


def test_without_extended_nothing_changes(http: TestClient, token: str, m: Mailing) -> None:
    visit(http, click_paths(http, token, m.destinations[0])[0], RIPE)
    item = page(http, token)["data"][0]
    assert list(item) == ["ID", "mailing", "link", "timestamp", "ip", "useragent",
                          "destination", "profile", "subprofile"]  # fmt: skip


def test_private_loopback_and_unknown_addresses_have_no_country(
    http: TestClient, token: str, m: Mailing
) -> None:
    path = click_paths(http, token, m.destinations[0])[0]
    for address in PRIVATE:
        visit(http, path, address)
    found = clicks(http, token)
    assert len(found) == len(PRIVATE)
    assert {(i["country"], i["asn"], i["asnorg"]) for i in found} == {("", None, None)}


def test_exports_carry_the_fields(http: TestClient, token: str, m: Mailing) -> None:
    visit(http, click_paths(http, token, m.destinations[0])[1], K_ROOT)
    r = get(http, token, "ms/clicks", "extended=true&format=ndjson")
    line = json.loads(r.text.splitlines()[0])
    assert (line["country"], line["asn"], line["asnorg"]) == ("NL", None, RIPE_ORG)
    r = get(http, token, "ms/clicks", "extended=true&format=csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert (rows[0]["country"], rows[0]["asn"], rows[0]["asnorg"]) == ("NL", "", RIPE_ORG)
    plain = get(http, token, "ms/clicks", "format=csv").text.splitlines()[0]
    assert "country" not in plain


def test_country_is_a_filter(http: TestClient, token: str, m: Mailing) -> None:
    path = click_paths(http, token, m.destinations[0])[0]
    visit(http, path, RIPE)
    visit(http, path, "10.0.0.1")
    only = clicks(http, token, qs="fields[]=country==NL")
    assert [i["ip"] for i in only] == [RIPE]


def test_geo_off_looks_nothing_up(settings: Settings) -> None:
    app = create_app(settings.replace(geo="off"))
    try:
        with settling(app) as http:
            token = app.store.create_token("acme", "Europe/Amsterdam")
            m = mailing(app, http, token)
            visit(http, click_paths(http, token, m.destinations[0])[0], RIPE)
            found = clicks(http, token)
    finally:
        app.close()
    assert (found[0]["ip"], found[0]["country"], found[0]["asnorg"]) == (RIPE, "", None)


def test_country_mode_keeps_no_network(settings: Settings) -> None:
    app = create_app(settings.replace(geo="country"))
    try:
        with settling(app) as http:
            token = app.store.create_token("acme", "Europe/Amsterdam")
            m = mailing(app, http, token)
            visit(http, click_paths(http, token, m.destinations[0])[0], RIPE_V6)
            found = clicks(http, token)
    finally:
        app.close()
    assert (found[0]["country"], found[0]["asn"], found[0]["asnorg"]) == ("NL", None, None)


def settling(app: App) -> TestClient:
    from tests.conftest import SettlingClient

    return SettlingClient(
        app, base_url=PUBLIC, follow_redirects=False, client=("203.0.113.7", 40000)
    )


def statistics(http: TestClient, token: str, scope: str, qs: str = "") -> dict:
    r = get(http, token, f"{scope}/statistics", qs)
    assert r.status_code == 200, r.text
    return dict(r.json())


def summed(groups: list[dict]) -> dict:
    """The groups' figures added up, in the shape of one statistics object."""
    out: dict = {}
    for group in groups:
        for name in STATS:
            into = out.setdefault(name, {})
            for key, n in group[name].items():
                into[key] = into.get(key, 0) + n
    return out


def test_groupby_country_adds_up_to_the_whole(http: TestClient, token: str, m: Mailing) -> None:
    one, two = m.destinations
    for dest, address in ((one, RIPE), (two, RIPE_V6), (one, "10.0.0.1")):
        for path in click_paths(http, token, dest):
            visit(http, path, address)
            visit(http, path, address)
        visit(http, pixel_path(http, token, dest), address)
    assert post_event(http, token, one, "deliveries", {"attempts": 2}).status_code == 201
    assert post_event(http, token, two, "errors", {"status": "5.1.1"}).status_code == 201
    for scope in (f"ms/emailing/{m.id}", f"ms/destination/{one}"):
        whole = statistics(http, token, scope)
        grouped = statistics(http, token, scope, "groupby=country")
        assert list(grouped) == ["groups"]
        groups = grouped["groups"]
        assert [list(g) for g in groups] == [["country", *STATS]] * len(groups)
        assert summed(groups) == {k: v for k, v in whole.items() if k != "destinations"}
        assert [g["country"] for g in groups] == ["NL", ""]
    nl = statistics(http, token, f"ms/emailing/{m.id}", "groupby=country")["groups"][0]
    assert nl["clicks"] == {"total": 8, "unique": 4}
    assert nl["impressions"] == {"total": 2, "unique": 2}


def test_groupby_country_with_extended_reasons_and_time_range(
    http: TestClient, token: str, m: Mailing
) -> None:
    visit(http, click_paths(http, token, m.destinations[0])[0], K_ROOT)
    data = {"status": "5.1.1", "description": "user unknown", "errortype": "hard"}
    assert post_event(http, token, m.destinations[1], "errors", data).status_code == 201
    scope = f"ms/emailing/{m.id}"
    whole = statistics(http, token, scope, "extended=true")
    groups = statistics(http, token, scope, "extended=true&groupby=country")["groups"]
    assert [g["country"] for g in groups] == ["NL", ""]
    assert groups[1]["errors"]["reasons"] == whole["errors"]["reasons"] == {"userunknown": 1}
    assert groups[0]["errors"] == {"total": 0, "unique": 0, "reasons": {}}
    later = statistics(http, token, scope, "groupby=country&begintime=2999-01-01 00:00:00")
    assert later == {"groups": []}


@pytest.mark.parametrize("value", ["Country", "city", "country,asn", ""])
def test_a_bad_groupby_is_named(http: TestClient, token: str, m: Mailing, value: str) -> None:
    message = error(get(http, token, f"ms/emailing/{m.id}/statistics", f"groupby={value}"))
    assert "groupby" in message


def write_mmdb(path: Path, networks: dict[str, dict], kind: str = "GeoLite2-City") -> None:
    """A MaxMind-format file written the way an update leaves one: beside it, then renamed."""
    writer = MMDBWriter(6, kind, ipv4_compatible=True, int_type="u32")
    for network, record in networks.items():
        writer.insert_network(IPSet([network]), record)
    fresh = path.with_suffix(".new")
    writer.to_db_file(str(fresh))
    fresh.replace(path)


def country(code: str) -> dict:
    return {"country": {"iso_code": code, "names": {"en": code}}}


def network(asn: int, org: str) -> dict:
    return {"autonomous_system_number": asn, "autonomous_system_organization": org}


@pytest.fixture
def geo_files(tmp_path: Path) -> tuple[Path, Path]:
    """A City file and an ASN file that say other things than the bundled data."""
    city, asn = tmp_path / "City.mmdb", tmp_path / "ASN.mmdb"
    write_mmdb(city, {"193.0.0.0/20": country("SE"), "2001:67c:2e8::/48": country("DK")})
    write_mmdb(asn, {"193.0.0.0/21": network(3333, "RIPE NCC (test)"),
                     "2001:67c::/32": network(3333, "RIPE NCC (test)")}, "GeoLite2-ASN")  # fmt: skip
    return city, asn


@contextmanager
def app_with(settings: Settings, **changes: str) -> Iterator[tuple[App, TestClient, str]]:
    app = create_app(settings.replace(**changes))
    try:
        with settling(app) as http:
            yield app, http, app.store.create_token("acme", "Europe/Amsterdam")
    finally:
        app.close()


def test_a_maxmind_database_overrides_the_bundled_data(
    settings: Settings, geo_files: tuple[Path, Path]
) -> None:
    city, asn = geo_files
    with app_with(settings, geo_db=f"{city},{asn}") as (app, http, token):
        m = mailing(app, http, token)
        path = click_paths(http, token, m.destinations[0])[0]
        for address in (RIPE, RIPE_V6, "10.0.0.1"):
            visit(http, path, address)
        found = clicks(http, token)
        assert [(i["country"], i["asn"], i["asnorg"]) for i in found] == [
            ("SE", 3333, "RIPE NCC (test)"), ("DK", 3333, "RIPE NCC (test)"), ("", None, None),
        ]  # fmt: skip
        # replaced, as geoipupdate does: read again before the next batch
        write_mmdb(city, {"193.0.0.0/16": country("FI")})
        visit(http, path, RIPE)
        visit(http, path, RIPE_V6)  # not in the new file: no country, still a network
        assert len(clicks(http, token, qs="fields[]=asn==3333")) == 4  # not 10.0.0.1
        found = clicks(http, token, qs="start=3")
        assert [(i["country"], i["asn"]) for i in found] == [("FI", 3333), ("", 3333)]
        grouped = statistics(http, token, f"ms/emailing/{m.id}", "groupby=country")["groups"]
        assert [(g["country"], g["clicks"]["total"]) for g in grouped] == [
            ("DK", 1), ("FI", 1), ("SE", 1), ("", 2),
        ]  # fmt: skip


def test_a_country_only_database_leaves_the_network_empty(
    settings: Settings, geo_files: tuple[Path, Path]
) -> None:
    city, _ = geo_files
    with app_with(settings, geo_db=str(city)) as (app, http, token):
        m = mailing(app, http, token)
        visit(http, click_paths(http, token, m.destinations[0])[0], RIPE)
        item = clicks(http, token)[0]
    assert (item["country"], item["asn"], item["asnorg"]) == ("SE", None, None)


def test_a_missing_or_broken_database_stops_the_start(settings: Settings, tmp_path: Path) -> None:
    broken = tmp_path / "broken.mmdb"
    broken.write_bytes(b"not a database")
    for path in (tmp_path / "missing.mmdb", broken):
        with pytest.raises(MailstatsError, match="geo_db"):
            create_app(settings.replace(geo_db=str(path)))


def test_cli_status_and_lookup(geo_files: tuple[Path, Path]) -> None:
    runner = CliRunner()
    bundled = runner.invoke(cli, ["geo", "status"], env={})
    assert bundled.exit_code == 0, bundled.output
    assert "GeoLite2" in bundled.output and "geoip2fast" in bundled.output
    assert "data created by MaxMind" in bundled.output
    assert f"lookup {RIPE}: NL {RIPE_ORG}" in bundled.output
    for address, expected in ((RIPE, "NL"), (RIPE_V6, "NL"), ("192.168.1.1", "")):
        found = runner.invoke(cli, ["geo", "lookup", address], env={})
        assert found.exit_code == 0, found.output
        assert json.loads(found.output) == {
            "address": address, "country": expected, "asn": None,
            "asnorg": RIPE_ORG if expected else None,
        }  # fmt: skip
    city, asn = geo_files
    given = ["--geo-db", f"{city},{asn}"]
    status = runner.invoke(cli, ["geo", "status", "--json", *given], env={})
    info = json.loads(status.output)
    assert info["geo"] == "network" and "GeoLite2-City" in info["data"]
    assert info["sample"] == {"address": RIPE, "country": "SE", "asn": 3333,
                              "asnorg": "RIPE NCC (test)"}  # fmt: skip
    assert "GeoLite2-ASN" in info["data"]
    found = runner.invoke(cli, ["geo", "lookup", *given, RIPE], env={})
    assert json.loads(found.output)["asn"] == 3333
    off = runner.invoke(cli, ["geo", "lookup", "--geo", "off", RIPE], env={})
    assert json.loads(off.output)["country"] == ""
    bad = runner.invoke(cli, ["geo", "status", "--geo-db", "/nonexistent.mmdb"], env={})
    assert bad.exit_code != 0 and "geo_db" in bad.output


def test_the_cache_answers_as_the_data_does() -> None:
    geo = Geo()
    first = geo.places([RIPE, K_ROOT, "193.0.6.1", RIPE_V6, "::ffff:193.0.6.139", *PRIVATE])
    again = geo.places([RIPE, K_ROOT, "193.0.6.1", RIPE_V6, "::ffff:193.0.6.139", *PRIVATE])
    assert first == again
    assert first["::ffff:193.0.6.139"] == first[RIPE]
    assert all(first[a].country == "" for a in PRIVATE)
    assert geo.lookup(K_ROOT).country == "NL"


COUNTRY_ROW = re.compile(
    r'<tr data-country="([A-Z]*)"><td>([^<]+)</td><td class="num">(\d+)</td>'
    r'<td class="num">(\d+)</td><td class="num">(\d+)</td><td class="num">([^<]+)</td></tr>'
)


def test_the_dashboard_shows_a_country_table(http: TestClient, token: str, m: Mailing) -> None:
    one, two = m.destinations
    path = click_paths(http, token, one)[0]
    for address in (RIPE, RIPE, "10.0.0.1"):
        visit(http, path, address)
    visit(http, pixel_path(http, token, two), RIPE_V6)
    sign_in(http, token=token)
    r = http.get(f"/dashboard/emailing/{m.id}")
    assert r.status_code == 200
    card = r.text.partition('id="countries"')[2].partition("</section>")[0]
    assert COUNTRY_ROW.findall(card) == [
        ("NL", "NL", "2", "1", "1", "75.0%"), ("", "Unknown", "1", "0", "0", "25.0%"),
    ]  # fmt: skip


def test_events_stored_from_python_are_placed_too(app: App, http: TestClient, token: str,
                                                   m: Mailing) -> None:  # fmt: skip
    insert_clicks(app, m.destinations[0], m.links[0], [utc(2026, 3, 1)], ip=RIPE_V6)
    insert_clicks(app, m.destinations[1], m.links[1], [utc(2026, 3, 2)], ip=K_ROOT)
    found = clicks(http, token)
    assert [(i["country"], i["asnorg"]) for i in found] == [("NL", RIPE_ORG)] * 2
    # one organisation, kept once for both events
    assert app.store.backend.fetch("SELECT count(*) FROM networks")[0][0] == 1


def test_a_bad_geo_setting_is_refused(settings: Settings) -> None:
    with pytest.raises(MailstatsError, match="geo must be network, country or off"):
        settings.replace(geo="city")


@pytest.mark.backends("sqlite")
def test_networks_added_by_another_process_are_seen(app: App, http: TestClient, token: str,
                                                    m: Mailing, settings: Settings) -> None:  # fmt: skip
    """Two stores on one SQLite file, as two processes: each reads the networks the other
    added before naming its own."""
    other = open_store(settings.db, geo=Geo())
    try:
        app.store.backend.geo = Geo()
        geo = Geo()
        owner = app.store.tracking_destination(m.destinations[0])
        assert owner is not None
        # each names an organisation the other added just before
        order = [(app, RIPE), (other, "8.8.8.8"), (app, "8.8.4.4"), (other, "1.1.1.1"),
                 (app, "1.0.0.1")]  # fmt: skip
        for n, (where, address) in enumerate(order):
            found = where.store if isinstance(where, App) else where
            found.insert_events([Event(CLICKS, secrets.token_bytes(16), utc(2026, 3, 1, n), *owner[:2],
                                       m.destinations[0], m.links[0], (address, UA))])  # fmt: skip
    finally:
        other.close()
    found = clicks(http, token)
    assert [i["asnorg"] for i in found] == [geo.lookup(a).asnorg for _, a in order]
    assert len({i["asnorg"] for i in found}) == 3
