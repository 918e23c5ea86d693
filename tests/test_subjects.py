"""Data subjects: access to everything stored about an address, and erasure that leaves
every event, total and statistic in place; both backends, API and command line."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from mailstats.cli import cli
from mailstats.kinds import CLICKS, DELIVERIES
from mailstats.settings import Settings
from mailstats.store import Event, open_store, suppressions
from mailstats.tracking.devices import hit_values
from mailstats.web.app import App
from tests import server
from tests.helpers import (
    KIND_NAMES,
    TWO_LINKS,
    UA,
    add_destinations,
    click,
    click_paths,
    error,
    get,
    insert_events,
    make_emailing,
    page,
    post_event,
    setup_mailing,
    totals,
)
from tests.test_dashboard import sign_in

ZELDA = "Zelda.Quux@Example.org"
BOB = "bob@example.org"
ZELDA_IP = "198.51.100.77"
CLICK_IP = "203.0.113.7"  # the test client's address: only Zelda's real clicks come from it
# Everything personal about Zelda, as it may show up in any answer (lowercased)
TRACES = ["zelda", "quux", "cust-zq-991", "pzq-8841", "szq-8841", ZELDA_IP, CLICK_IP]
ZELDA_UA = "Mozilla/5.0 (Zebra-Reader 7.7) ZQAgent/1.0"
HOUR = 3600


def person(email: str, tag: str) -> dict[str, Any]:
    return {
        "email": email,
        "profile": f"P{tag}-8841",
        "subprofile": f"S{tag}-8841",
        "fields": {"customerid": f"cust-{tag.lower()}-991", "name": "Zelda Quux" if tag == "ZQ"
                   else "Bob"},
    }  # fmt: skip


def subject(http: TestClient, token: str, email: str, method: str = "GET") -> Any:
    r = http.request(method, "/v2/ms/subject", params={"access_token": token, "email": email})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    return r.json()


def populate(app: App, http: TestClient, token: str) -> dict[str, Any]:
    """Two emailings; Zelda is a destination of both (in two cases), Bob of the first."""
    first = make_emailing(http, token, TWO_LINKS)
    second = make_emailing(http, token, TWO_LINKS, subject="Again")
    z1, bob = add_destinations(http, token, first, person(ZELDA, "ZQ"), person(BOB, "B"))
    (z2,) = add_destinations(http, token, second, person(ZELDA.lower(), "ZQ"))
    click(http, token, z1)  # a real click: ip and agent from the request
    click(http, token, z1, 1)
    assert app.indexer is not None and app.indexer.drain()
    t = 1_717_000_000
    for dest, ip, ua in (
        (z1, ZELDA_IP, ZELDA_UA),
        (z2, ZELDA_IP, ZELDA_UA),
        (bob, "192.0.2.50", UA),
    ):
        insert_events(app, "impressions", dest, [t, t + HOUR], hit_values(ip, ua))
        insert_events(app, "unsubscribes", dest, [t + 2 * HOUR], hit_values(ip, ua))
    for dest in (z1, z2, bob):
        assert post_event(http, token, dest, "deliveries", {"attempts": 2}).status_code == 201
    said = f"550 5.1.1 <{ZELDA.lower()}>: Recipient address rejected"
    r = post_event(http, token, z2, "errors", {"status": "5.1.1", "errortype": "hard",
                                               "description": said})  # fmt: skip
    assert r.status_code == 201, r.text
    report = {"feedback-type": "abuse", "original-rcpt-to": ZELDA.upper(), "user-agent": "x"}
    assert post_event(http, token, z1, "abuses", {"report": report}).status_code == 201
    suppressions.add(app.store, app.store.account("acme").id, ZELDA)
    return {"emailings": [first, second], "zelda": [z1, z2], "bob": bob}


def everything(http: TestClient, token: str, made: dict[str, Any]) -> dict[str, str]:
    """Every answer that could show a destination's data: lists (plain and extended, every
    scope), exports, objects, bodies, headers, statistics, the suppression list."""
    out: dict[str, str] = {}
    dests = [*made["zelda"], made["bob"]]
    scopes = ["ms", *(f"ms/emailing/{e}" for e in made["emailings"]),
              *(f"ms/destination/{d}" for d in dests)]  # fmt: skip
    for scope in scopes:
        for kind in KIND_NAMES:
            for qs in ("", "extended=true", "unique=true", "format=csv", "format=ndjson"):
                out[f"{scope}/{kind}?{qs}"] = get(http, token, f"{scope}/{kind}", qs).text
    for e in made["emailings"]:
        out[f"emailing/{e}"] = get(http, token, f"ms/emailing/{e}").text
        out[f"emailing/{e}/destinations"] = get(http, token, f"ms/emailing/{e}/destinations").text
        out[f"emailing/{e}/statistics"] = get(http, token, f"ms/emailing/{e}/statistics").text
    for d in dests:
        for part in ("", "/body/html", "/body/text", "/body/mime", "/headers", "/statistics"):
            r = get(http, token, f"ms/destination/{d}{part}")
            assert r.status_code == 200, (part, r.text)
            out[f"destination/{d}{part}"] = r.text
    out["suppressions"] = get(http, token, "ms/suppressions").text
    return out


def figures(http: TestClient, token: str, made: dict[str, Any]) -> dict[str, Any]:
    """Every total and statistic, in every scope."""
    out: dict[str, Any] = {"ms": totals(http, token, "ms")}
    for kind in KIND_NAMES:
        out[f"unique {kind}"] = page(http, token, f"ms/{kind}", "unique=true")["total"]
    for e in made["emailings"]:
        out[f"e{e}"] = totals(http, token, f"ms/emailing/{e}")
        out[f"e{e} statistics"] = get(http, token, f"ms/emailing/{e}/statistics").json()
    for d in [*made["zelda"], made["bob"]]:
        out[f"d{d}"] = totals(http, token, f"ms/destination/{d}")
        out[f"d{d} statistics"] = get(http, token, f"ms/destination/{d}/statistics").json()
    return out


def dashboard(http: TestClient, made: dict[str, Any]) -> dict[str, str]:
    pages = ["/dashboard/"]
    for e in made["emailings"]:
        pages += [f"/dashboard/emailing/{e}", *(f"/dashboard/emailing/{e}/export/{k}.csv"
                                                for k in KIND_NAMES)]  # fmt: skip
    pages += [f"/dashboard/destination/{d}" for d in [*made["zelda"], made["bob"]]]
    out = {}
    for path in pages:
        r = http.get(path)
        assert r.status_code == 200, (path, r.text)
        out[path] = r.text
    return out


def traces(answers: dict[str, str]) -> list[tuple[str, str]]:
    return [(name, t) for name, text in answers.items() for t in TRACES if t in text.lower()]


def test_erasure_leaves_no_trace_and_every_figure(
    app: App, http: TestClient, token: str, caplog: pytest.LogCaptureFixture
) -> None:
    made = populate(app, http, token)
    sign_in(http, token=token)
    before = figures(http, token, made)
    seen = everything(http, token, made) | dashboard(http, made)
    seen["subject"] = orjson.dumps(subject(http, token, ZELDA)).decode()
    # the checks can fail: before the erasure, Zelda is everywhere
    assert {t for _, t in traces(seen)} == set(TRACES)
    later = click_paths(http, token, made["zelda"][0])[1]
    caplog.clear()
    with caplog.at_level(logging.INFO):
        receipt = subject(http, token, "  " + ZELDA.upper(), "DELETE")
        assert receipt["destinations"] == 2
        # every event of both destinations: 2 clicks, 4 opens, 2 unsubscribes, 2 deliveries,
        # an error and a complaint
        assert receipt["events"] == 12 and receipt["suppressions"] == 1
        assert receipt["previous"] == [] and len(receipt["subject"]) == 64
        # a click on a link Zelda kept, after the erasure: counted, nothing personal kept
        assert http.get(later, headers={"user-agent": ZELDA_UA}).status_code == 302
        after = figures(http, token, made)
        answers = everything(http, token, made) | dashboard(http, made)
        access = subject(http, token, ZELDA)
        # (besides the address it was asked about)
        answers["subject"] = orjson.dumps({**access, "email": None}).decode()
        logged = {
            f"log {n}": r.getMessage()
            for n, r in enumerate(caplog.records)
            if r.name.startswith("mailstats")
        }  # the server's, not the test client's
    assert after["ms"]["clicks"] == before["ms"]["clicks"] + 1
    after["ms"]["clicks"] -= 1
    z1 = made["zelda"][0]
    for key in (f"e{made['emailings'][0]}", f"d{z1}"):
        after[key]["clicks"] -= 1
    for key in (f"e{made['emailings'][0]} statistics", f"d{z1} statistics"):
        after[key]["clicks"]["total"] -= 1
    assert after == before
    assert traces(answers) == []
    assert any("/v2/ms/subject" in line for line in logged.values())  # the log is captured
    # (the access log names the API caller's address, which here is the clicks' too)
    assert [t for t in traces(logged) if t[1] != CLICK_IP] == []
    # the events are listed still, their personal fields null
    clicks = page(http, token, f"ms/destination/{z1}/clicks", "extended=true")["data"]
    assert len(clicks) == 3 and {(c["ip"], c["useragent"]) for c in clicks} == {(None, None)}
    assert {c["profile"] for c in clicks} == {None}
    assert [c["client"] for c in clicks][:2] == ["Firefox", "Firefox"]
    # the subject holds nothing any more, but the audit log knows the request
    assert access["destinations"] == [] and access["suppressions"] == []
    assert len(access["erasures"]) == 1 and access["erasures"][0]["events"] == 12
    # Bob is untouched
    bob = get(http, token, f"ms/destination/{made['bob']}/impressions").json()["data"]
    assert {i["ip"] for i in bob} == {"192.0.2.50"}


def test_a_repeated_erasure_clears_nothing_more_and_is_matched(
    app: App, http: TestClient, token: str, settings: Settings
) -> None:
    made = populate(app, http, token)
    first = subject(http, token, ZELDA, "DELETE")
    again = CliRunner().invoke(cli, ["erase", "--account", "acme", "--email", ZELDA.lower(),
                                     "--db", settings.db])  # fmt: skip
    assert again.exit_code == 0, again.output
    receipt = orjson.loads(again.output)
    assert receipt["subject"] == first["subject"]
    assert (receipt["destinations"], receipt["events"], receipt["suppressions"]) == (0, 0, 0)
    assert receipt["previous"] == [first["timestamp"]]
    third = subject(http, token, ZELDA, "DELETE")
    assert third["previous"] == [first["timestamp"], receipt["timestamp"]]
    # an address nobody has: a receipt of nothing
    assert subject(http, token, "nobody@example.org", "DELETE")["destinations"] == 0
    # the audit log keeps no address
    mark = app.store.backend.placeholder
    rows = app.store.backend.fetch(f"SELECT * FROM erasures WHERE via = {mark}", ["cli"])
    assert len(rows) == 1 and "zelda" not in repr(rows).lower()
    assert made["bob"]


def test_erasure_is_per_account(app: App, http: TestClient, token: str) -> None:
    populate(app, http, token)
    other = app.store.create_token("other", "Europe/Amsterdam")
    e = make_emailing(http, other, TWO_LINKS)
    (theirs,) = add_destinations(http, other, e, person(ZELDA, "ZQ"))
    assert subject(http, other, ZELDA, "DELETE")["destinations"] == 1
    assert len(subject(http, token, ZELDA)["destinations"]) == 2
    assert get(http, other, f"ms/destination/{theirs}").status_code == 200


def test_access_is_every_stored_item_as_one_document(
    app: App, http: TestClient, token: str, settings: Settings
) -> None:
    made = populate(app, http, token)
    doc = subject(http, token, ZELDA.lower())
    assert doc["email"] == ZELDA.lower()
    assert [d["ID"] for d in doc["destinations"]] == [str(d) for d in made["zelda"]]
    z1, z2 = doc["destinations"]
    assert (z1["email"], z1["profile"], z1["subprofile"]) == (ZELDA, "PZQ-8841", "SZQ-8841")
    assert z1["fields"] == {"customerid": "cust-zq-991", "name": "Zelda Quux"}
    assert z2["email"] == ZELDA.lower() and z1["messageID"] and z1["timestampsent"]
    for dest, got in zip(made["zelda"], doc["destinations"], strict=True):
        for kind in KIND_NAMES:  # each list in full, with its extended fields
            listed = page(http, token, f"ms/destination/{dest}/{kind}", "extended=true&limit=1000")
            assert got[kind] == listed["data"], kind
    assert [c["ip"] for c in z1["clicks"]] == [CLICK_IP, CLICK_IP]
    assert z1["impressions"][0]["useragent"] == ZELDA_UA
    assert "rejected" in z2["errors"][0]["description"]
    assert z1["abuses"][0]["report"]["original-rcpt-to"] == ZELDA.upper()
    assert {s["reason"] for s in doc["suppressions"]} == {
        "bounce",
        "complaint",
        "manual",
        "unsubscribe",
    }
    assert doc["erasures"] == []
    # the command line gives the same document
    result = CliRunner().invoke(cli, ["subject-export", "--account", "acme", "--email",
                                      ZELDA.lower(), "--db", settings.db])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.output) == doc


@pytest.mark.parametrize("email", ["", "nobody", "x" * 330 + "@example.org"])
def test_a_bad_address_is_a_400(http: TestClient, token: str, email: str) -> None:
    for method in ("GET", "DELETE"):
        r = http.request(method, "/v2/ms/subject", params={"access_token": token, "email": email})
        assert "parameter 'email'" in error(r)
    assert "parameter 'email'" in error(get(http, token, "ms/subject"))
    assert error(http.delete("/v2/ms/subject", params={"email": BOB})) == "Invalid access token"


def test_a_real_server_logs_no_address_and_strips_by_retention(db_url: str, tmp_path: Path) -> None:
    token = server.make_token(db_url)
    store = open_store(db_url)
    account, emailing, (dest,), link = setup_mailing(store, 1)
    mark = store.backend.placeholder
    with store.backend.transaction() as cur:
        cur.execute(f"UPDATE destinations SET email = {mark}", [ZELDA])
    old = int(time.time()) - 3 * 86_400
    store.insert_events([
        Event(CLICKS, b"k" * 16, old, account, emailing, dest, link, hit_values(ZELDA_IP, ZELDA_UA)),
        # deliveries are kept for ever, so the destination keeps its address meanwhile
        Event(DELIVERIES, b"d" * 16, old, account, emailing, dest, 0, (1,)),
    ])  # fmt: skip
    store.close()
    port = server.free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    env = {**os.environ, "MAILSTATS_SPOOL": str(tmp_path / "spool"),
           "MAILSTATS_RETENTION_INTERVAL": "0.2"}  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mailstats", "serve", "--db", db_url, "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        try:
            auth = {"access_token": token}
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(f"{url}/v2/ms/clicks", timeout=1)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
            r = httpx.put(f"{url}/v2/ms/settings", params=auth, json={"retention": {"clicks": 2}})
            assert r.status_code == 200, r.text
            # the serving process strips the click (its next pass, a moment later)
            while httpx.get(f"{url}/v2/ms/clicks", params=auth).json()["data"][0]["ip"]:
                assert time.monotonic() < deadline + 30, "retention never ran"
                time.sleep(0.1)
            assert httpx.get(f"{url}/v2/ms/subject", params={**auth, "email": ZELDA}).is_success
            suppressed = f"{url}/v2/ms/suppressions/{ZELDA}"
            assert httpx.delete(suppressed, params=auth).status_code == 400  # not on the list
            r = httpx.delete(f"{url}/v2/ms/subject", params={**auth, "email": ZELDA})
            assert r.json()["destinations"] == 1
            listed = httpx.get(f"{url}/v2/ms/clicks", params=auth).json()
        finally:
            proc.terminate()
            assert proc.wait(15) == 0
    assert listed["total"] == 1 and listed["data"][0]["ip"] is None
    text = log.read_text()
    assert "DELETE /v2/ms/subject?access_token=[redacted]&email=[redacted]" in text
    assert "DELETE /v2/ms/suppressions/[redacted]" in text
    assert "zelda" not in text.lower() and ZELDA_IP not in text
