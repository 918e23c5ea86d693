"""Impressions, deliveries, errors, abuses and unsubscribes (issue 4): the open pixel, the
pipeline's POSTs, and the five lists in their three scopes (compat.md section 4)."""

from __future__ import annotations

import json
import re
import struct
import time
from typing import Any

import pytest
from starlette.testclient import TestClient

from mailstats.kinds import KINDS
from mailstats.store import Filter, Scope
from mailstats.tracking.tokens import Purpose, Signer
from mailstats.web.app import App
from tests.helpers import (
    ENVELOPE,
    FIELDS,
    JSON,
    LOCAL,
    NOON,
    OTHER_KINDS,
    REPORTED,
    TIMES,
    UA,
    Mailing,
    add_destinations,
    body_html,
    click_paths,
    error,
    get,
    ids,
    insert_events,
    local,
    mailing,
    make_emailing,
    page,
    pixel_path,
    post_event,
    query,
    total,
    totals,
    unsubscribe_path,
    utc,
)

PEER = "203.0.113.7"  # the test client's address


# --- impressions: the open pixel ----------------------------------------------------------

IMG = re.compile(r'<img\b[^>]*\bsrc="http://t\.test/o/[A-Za-z0-9_-]{1,48}"[^>]*>')


TRAP_TAG = re.compile(r'<a href="[^"]+" aria-hidden="true" tabindex="-1" style="display:none"></a>')


def test_the_pixel_goes_before_body_end_or_at_the_end(
    http: TestClient, token: str, m: Mailing
) -> None:
    html = body_html(http, token, m.destinations[0])
    [img] = IMG.findall(html)
    [trap] = TRAP_TAG.findall(html)  # the invisible trap link, just before it
    assert html.endswith(trap + img + "</body></html>")
    assert html.count("/o/") == 1
    assert body_html(http, token, m.destinations[0]) == html  # stable on every fetch
    assert pixel_path(http, token, m.destinations[1]) != pixel_path(http, token, m.destinations[0])
    bare = make_emailing(http, token, "<p>No body element</p>")
    [dest] = add_destinations(http, token, bare)
    html = body_html(http, token, dest)
    [img] = IMG.findall(html)
    [trap] = TRAP_TAG.findall(html)
    assert html == "<p>No body element</p>" + trap + img


def gif_facts(data: bytes) -> dict[str, Any]:
    """Walk a GIF's blocks (GIF89a spec) and report its size, frames and transparency."""
    assert data[:6] in (b"GIF87a", b"GIF89a"), data[:6]
    width, height, packed = struct.unpack("<HHB", data[6:11])
    at = 13 + (3 * 2 ** ((packed & 7) + 1) if packed & 0x80 else 0)
    facts: dict[str, Any] = {"size": (width, height), "frames": [], "transparent": False}
    while data[at] != 0x3B:  # the trailer
        if data[at] == 0x21:  # an extension: label, then sub-blocks
            if data[at + 1] == 0xF9:
                facts["transparent"] = bool(data[at + 3] & 1)
            at += 2
        else:
            assert data[at] == 0x2C, hex(data[at])  # an image descriptor
            _, _, w, h, local_packed = struct.unpack("<HHHHB", data[at + 1 : at + 10])
            facts["frames"].append((w, h))
            at += 10 + (3 * 2 ** ((local_packed & 7) + 1) if local_packed & 0x80 else 0) + 1
        while data[at]:
            at += data[at] + 1
        at += 1
    assert at == len(data) - 1, "bytes after the trailer"
    return facts


def test_pixel_answers_a_transparent_gif_and_records_one_impression(
    http: TestClient, token: str, m: Mailing
) -> None:
    dest = m.destinations[1]
    path = pixel_path(http, token, dest)
    before = int(time.time())
    r = http.get(path, headers={"user-agent": UA})
    after = int(time.time())
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/gif"
    assert int(r.headers["content-length"]) == len(r.content)
    assert gif_facts(r.content) == {"size": (1, 1), "frames": [(1, 1)], "transparent": True}
    assert "no-store" in r.headers["cache-control"] and "no-cache" in r.headers["cache-control"]
    assert r.headers["pragma"] == "no-cache"
    assert "set-cookie" not in r.headers
    body = page(http, token, "ms/impressions")
    assert body["total"] == 1
    [item] = body["data"]
    assert list(item) == FIELDS["impressions"]
    assert item["ID"].isdigit()
    assert local(before) <= item["timestamp"] <= local(after)
    assert item == {
        "ID": item["ID"],
        "mailing": str(m.id),
        "timestamp": item["timestamp"],
        "ip": PEER,
        "useragent": UA,
        "device": "desktop",
        "destination": str(dest),
        "profile": "P1",
        "subprofile": "S1",
    }
    assert http.get(path).status_code == 200
    assert total(http, token, "ms/impressions") == 2  # every open counts; unique=true folds


# Real user agents of mail clients, browsers, image proxies and robots.
DEVICES = [
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/120.0.0.0 Safari/537.36", "desktop"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
     "desktop"),  # Apple Mail
    ("Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17029; Pro)", "desktop"),
    ("Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 10.0; WOW64; Trident/7.0; .NET4.0C; "
     ".NET4.0E; Microsoft Outlook 16.0.5413; ms-office; MSOffice 16)", "desktop"),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.5.0", "desktop"),
    ("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/120.0.0.0 Safari/537.36", "desktop"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
     "(KHTML, like Gecko) Mobile/15E148", "mobile"),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/120.0.6099.144 Mobile Safari/537.36", "mobile"),
    ("Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
     "SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36", "mobile"),
    ("Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Mobile/15E148", "tablet"),
    ("Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/120.0.0.0 Safari/537.36", "tablet"),  # Galaxy Tab S9
    ("Mozilla/5.0 (Linux; Android 11; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Silk/120.3.1 like Chrome/120.0.6099.230 Safari/537.36", "tablet"),  # Kindle Fire
    ("Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
     "unknown"),
    ("YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html", "unknown"),
    ("curl/8.4.0", "unknown"),
    ("", "unknown"),
]  # fmt: skip


def test_device_is_derived_from_the_user_agent(http: TestClient, token: str, m: Mailing) -> None:
    path = pixel_path(http, token, m.destinations[0])
    for ua, _ in DEVICES:
        assert http.get(path, headers={"user-agent": ua}).status_code == 200
    data = page(http, token, "ms/impressions")["data"]
    assert [(item["useragent"], item["device"]) for item in data] == DEVICES


def test_forged_pixels_record_nothing_and_head_is_a_machine(
    http: TestClient, token: str, m: Mailing
) -> None:
    dest = m.destinations[0]
    path = pixel_path(http, token, dest)
    head = http.head(path)
    assert head.status_code == 200 and head.headers["content-type"] == "image/gif"
    assert head.content == b""
    real = path.removeprefix("/o/")
    fakes = [
        real[:-1],
        real + "A",
        real[:-1] + ("A" if real[-1] != "A" else "B"),
        real[::-1],
        "x" * 200,
        click_paths(http, token, dest)[0].removeprefix("/c/"),
        unsubscribe_path(http, token, dest).removeprefix("/u/"),
        Signer(b"not the server's secret").sign(Purpose.OPEN, dest),
    ]
    wrong = {}
    for fake in fakes:
        for method in ("GET", "HEAD"):
            r = http.request(method, f"/o/{fake}")
            if r.status_code != 404 or r.headers.get("content-type") == "image/gif":
                wrong[f"{method} {fake}"] = r.status_code
    assert wrong == {}
    for method in ("POST", "PUT", "DELETE"):
        assert http.request(method, path).status_code == 405
    [item] = page(http, token, "ms/impressions", "extended=1")["data"]  # the HEAD alone
    assert item["verdict"] == "prefetch" and "head" in item["reasons"]
    assert http.get(path).status_code == 200  # the real one still works
    assert total(http, token, "ms/impressions") == 2


# --- deliveries, errors and abuses reported by the pipeline -------------------------------

REPORT = {
    "feedback-type": "abuse",
    "user-agent": "Yahoo!-Mail-Feedback/2.0",
    "original-rcpt-to": ["<jane@yahoo.com>"],
    "incidents": 1,
    "nested": {"note": "caf\u00e9 \u2615", "flag": True, "none": None},
}
# (kind, scope word, body, the kind's own fields as listed): timestamps in winter, in summer
# and in the hour that happens twice on 27 October (the first one is meant).
SENT: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    ("deliveries", "destination", {"timestamp": "2024-01-15 12:00:00", "attempts": 3},
     {"timestamp": "2024-01-15 12:00:00", "attempts": 3}),
    ("errors", "message",
     {"timestamp": "2024-07-01 12:00:00", "status": "5.1.1", "errorcode": "550",
      "description": "550 5.1.1 <r0@example.org>: User unknown", "errortype": "hard"},
     {"timestamp": "2024-07-01 12:00:00", "status": "5.1.1", "errorcode": "550",
      "description": "550 5.1.1 <r0@example.org>: User unknown", "errortype": "hard"}),
    ("abuses", "destination", {"timestamp": "2024-10-27 02:30:00", "report": REPORT},
     {"timestamp": "2024-10-27 02:30:00", "report": REPORT}),
    ("deliveries", "message", {"timestamp": "2024-07-01 12:00:01", "attempts": 1},
     {"timestamp": "2024-07-01 12:00:01", "attempts": 1}),
]  # fmt: skip


def test_reported_events_are_listed_as_sent(
    app: App, http: TestClient, token: str, m: Mailing
) -> None:
    dest = m.destinations[0]
    for kind, word, data, _ in SENT:
        r = post_event(http, token, dest, kind, data, scope=word)
        assert (r.status_code, r.content) == (201, b""), r.text
        assert re.fullmatch(r"[1-9][0-9]*", r.headers["x-created"])
    listed: dict[str, list[dict[str, Any]]] = {}
    for kind in REPORTED:
        r = get(http, token, f"ms/{kind}")
        assert r.status_code == 200 and r.headers["content-type"] == JSON
        listed[kind] = r.json()["data"]
    expected: dict[str, list[dict[str, Any]]] = {kind: [] for kind in REPORTED}
    for kind, _, _, own in SENT:
        expected[kind].append(
            {"mailing": str(m.id), **own, "destination": str(dest), "profile": "P0",
             "subprofile": "S0"}
        )  # fmt: skip
    for kind in REPORTED:
        assert [list(item) for item in listed[kind]] == [FIELDS[kind]] * len(expected[kind])
        assert all(type(item["ID"]) is str and item["ID"].isdigit() for item in listed[kind])
        assert [{k: v for k, v in i.items() if k != "ID"} for i in listed[kind]] == expected[kind]
    [delivery, _] = page(http, token, "ms/deliveries")["data"]
    assert type(delivery["attempts"]) is int
    abuse = get(http, token, "ms/abuses").content
    assert b'"report":{"feedback-type":"abuse",' in abuse  # an object, not a JSON string
    # Stored in UTC: 12:00 in Amsterdam's winter is 11:00 UTC.
    account = app.store.account("acme")
    rows = app.store.events(
        KINDS["deliveries"], Scope(account.id), Filter(), start=0, limit=10, total=False
    ).rows
    assert [row[2] for row in rows] == [utc(2024, 1, 15, 11), utc(2024, 7, 1, 10, 0, 1)]


def test_x_created_names_the_new_event(http: TestClient, token: str, m: Mailing) -> None:
    """X-Created is the ID of what the POST created, as its list then shows it."""
    # Let other events go first so that event IDs and destination IDs differ.
    for _ in range(3):
        post_event(http, token, m.destinations[1], "deliveries", {"attempts": 1})
    wrong = {}
    for kind, _, data, _ in SENT[:3]:
        r = post_event(http, token, m.destinations[0], kind, data)
        assert r.status_code == 201
        last = page(http, token, f"ms/{kind}")["data"][-1]["ID"]
        if r.headers["x-created"] != last:
            wrong[kind] = (r.headers["x-created"], last)
    assert wrong == {}


def test_time_zone_of_the_account(app: App, http: TestClient) -> None:
    """Timestamps are read and written in the account's zone, not the server's default."""
    nyc = app.store.create_token("nyc", "America/New_York")
    mm = mailing(app, http, nyc, destinations=1)
    data = {"timestamp": "2024-07-01 12:00:00", "attempts": 2}
    assert post_event(http, nyc, mm.destinations[0], "deliveries", data).status_code == 201
    [item] = page(http, nyc, "ms/deliveries")["data"]
    assert item["timestamp"] == "2024-07-01 12:00:00"
    account = app.store.account("nyc")
    [row] = app.store.events(
        KINDS["deliveries"], Scope(account.id), Filter(), start=0, limit=10, total=False
    ).rows
    assert row[2] == utc(2024, 7, 1, 16)
    qs = query(("begintime", "2024-07-01 12:00:00"), ("endtime", "2024-07-01 12:00:00"))
    assert total(http, nyc, "ms/deliveries", qs) == 1


def test_timestamp_defaults_to_now_and_attempts_to_one(
    http: TestClient, token: str, m: Mailing
) -> None:
    before = int(time.time())
    for kind in REPORTED:
        data = {"report": {"feedback-type": "abuse"}} if kind == "abuses" else {}
        assert post_event(http, token, m.destinations[0], kind, data).status_code == 201
    after = int(time.time())
    for kind in REPORTED:
        [item] = page(http, token, f"ms/{kind}")["data"]
        assert local(before) <= item["timestamp"] <= local(after), kind
        if kind == "deliveries":
            assert item["attempts"] == 1


def invalid_posts(m: Mailing, stranger: Mailing) -> list[tuple[str, Any, str]]:
    """(path under /v2/ms/, JSON body or raw bytes, a part of the error message)."""
    d = m.destinations[0]
    dp = f"destination/{d}"
    return [
        (f"{dp}/deliveries", {"attempts": "2"}, "'attempts'"),
        (f"{dp}/deliveries", {"attempts": -1}, "'attempts'"),
        (f"{dp}/deliveries", {"attempts": 2.5}, "'attempts'"),
        (f"{dp}/deliveries", {"attempts": True}, "'attempts'"),
        (f"{dp}/deliveries", {"attempts": 2**31}, "'attempts'"),
        (f"{dp}/deliveries", {"attempts": [2]}, "'attempts'"),
        (f"{dp}/deliveries", {"timestamp": 1719828000}, "'timestamp'"),
        (f"{dp}/deliveries", {"timestamp": "yesterday"}, "'timestamp'"),
        (f"{dp}/deliveries", {"timestamp": "2024-02-30 12:00:00"}, "'timestamp'"),
        (f"{dp}/deliveries", {"timestamp": "2024-07-01 25:00:00"}, "'timestamp'"),
        (f"{dp}/errors", {"status": ["5.1.1"]}, "'status'"),
        (f"{dp}/errors", {"errorcode": {"code": 550}}, "'errorcode'"),
        (f"{dp}/errors", {"description": True}, "'description'"),
        (f"{dp}/errors", {"errortype": 1.5}, "'errortype'"),
        (f"{dp}/abuses", {"report": "spam"}, "'report'"),
        (f"{dp}/abuses", {"report": ["abuse"]}, "'report'"),
        (f"{dp}/abuses", {"report": 1}, "'report'"),
        (f"{dp}/deliveries", {"attempts": 1, "key": ""}, "'key'"),
        (f"{dp}/deliveries", {"attempts": 1, "key": 7}, "'key'"),
        (f"{dp}/deliveries", {"attempts": 1, "key": "k" * 201}, "'key'"),
        (f"{dp}/deliveries", [{"attempts": 1}], "JSON object"),
        (f"{dp}/deliveries", "attempts", "JSON object"),
        (f"{dp}/deliveries", b'{"attempts": 1', "not valid JSON"),
        (f"{dp}/deliveries", b"", "not valid JSON"),
        ("destination/999999/deliveries", {"attempts": 1}, "No entity with supplied ID"),
        ("destination/0/errors", {"status": "5.1.1"}, "No entity with supplied ID"),
        ("destination/abc/abuses", {"report": {}}, "No entity with supplied ID"),
        (f"destination/{stranger.destinations[0]}/deliveries", {"attempts": 1},
         "No entity with supplied ID"),
        (f"message/{stranger.destinations[0]}/abuses", {"report": {}},
         "No entity with supplied ID"),
        (f"{dp}/clicks", {"ip": "192.0.2.1", "useragent": UA}, "Invalid method"),
        (f"{dp}/impressions", {"ip": "192.0.2.1", "useragent": UA}, "Invalid method"),
        (f"{dp}/unsubscribes", {}, "Invalid method"),
        (f"{dp}/bounces", {}, "Invalid method"),
        (f"emailing/{m.id}/deliveries", {"attempts": 1}, "Invalid method"),
        ("deliveries", {"attempts": 1}, "Invalid method"),
    ]  # fmt: skip


def test_invalid_reports_answer_400_and_store_nothing(
    http: TestClient, token: str, m: Mailing, stranger: Mailing
) -> None:
    wrong = {}
    for path, data, message in invalid_posts(m, stranger):
        url = f"/v2/ms/{path}?access_token={token}"
        if isinstance(data, bytes):
            r = http.post(url, content=data, headers={"content-type": "application/json"})
        else:
            r = http.post(url, json=data)
        body = r.json() if r.headers.get("content-type") == JSON else None
        got = body["error"]["message"] if body and list(body) == ["error"] else None
        if r.status_code != 400 or got is None or message not in got or "x-created" in r.headers:
            wrong[f"{path} {data!r}"] = (r.status_code, r.text)
    assert wrong == {}
    r = http.post(
        f"/v2/ms/destination/{m.destinations[0]}/deliveries?access_token={token}",
        content=b"attempts=1",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert "application/json" in error(r)
    r = post_event(http, "not-a-token", m.destinations[0], "deliveries", {"attempts": 1})
    assert error(r) == "Invalid access token"
    nothing = dict.fromkeys(totals(http, token), 0)
    assert totals(http, token) == nothing
    assert totals(http, token, f"ms/destination/{m.destinations[0]}") == nothing


def test_an_idempotency_key_stores_a_repeated_post_once(
    app: App, http: TestClient, token: str, m: Mailing, stranger: Mailing
) -> None:
    d0, d1 = m.destinations
    sent = {"timestamp": "2024-07-01 12:00:00", "attempts": 2, "key": "delivery-1"}
    for _ in range(3):
        assert post_event(http, token, d0, "deliveries", sent).status_code == 201
    assert total(http, token, "ms/deliveries") == 1
    # Without a key every POST is an event of its own.
    for _ in range(2):
        assert post_event(http, token, d1, "deliveries", {"attempts": 1}).status_code == 201
    assert total(http, token, "ms/deliveries") == 3
    # Keys belong to their account: another account may use the same one.
    other = app.store.create_token("other", "Europe/Amsterdam")
    assert post_event(http, other, stranger.destinations[0], "deliveries", sent).status_code == 201
    assert total(http, other, "ms/deliveries") == 1
    assert total(http, token, "ms/deliveries") == 3
    # A retry made by the pipeline later on: no timestamp, so the server's clock is used.
    bounce = {"status": "5.1.1", "errortype": "hard", "key": "bounce-1"}
    assert post_event(http, token, d1, "errors", bounce).status_code == 201
    second = int(time.time())
    while int(time.time()) == second:
        time.sleep(0.02)
    assert post_event(http, token, d1, "errors", bounce).status_code == 201
    assert total(http, token, "ms/errors") == 1


# --- the five lists -----------------------------------------------------------------------

MOBILE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) Mobile/15E148"


def own_values(kind: str, n: int) -> tuple[Any, ...]:
    """The kind's own column values of the n-th event of the data set, as stored."""
    return {
        "impressions": (f"192.0.2.{n}", UA if n % 2 else MOBILE, "desktop" if n % 2 else "mobile"),
        "deliveries": (n + 1,),
        "errors": (f"5.1.{n}", "550" if n % 2 else "421", f"User unknown {n}",
                   "hard" if n % 2 else "soft"),
        "abuses": (json.dumps({"feedback-type": "abuse", "n": n, "rcpt": [f"r{n}@example.org"]}),),
        "unsubscribes": (f"192.0.2.{n}", UA if n % 2 else MOBILE),
    }[kind]  # fmt: skip


def own_fields(kind: str, n: int) -> dict[str, Any]:
    """The kind's own fields of the n-th event as its list shows them."""
    names = FIELDS[kind][3:-3]
    values = list(own_values(kind, n))
    if kind == "abuses":
        values = [json.loads(values[0])]
    return dict(zip(names, values, strict=True))


@pytest.fixture
def spread(app: App, http: TestClient, token: str, m: Mailing) -> dict[str, Any]:
    """Five events of every kind over two emailings, at TIMES, interleaved by kind."""
    other = mailing(app, http, token, destinations=1)
    (d0, d1), o0 = m.destinations, other.destinations[0]
    plan = [(d0, m.id, "P0"), (o0, other.id, "P0"), (d1, m.id, "P1"), (d0, m.id, "P0"),
            (d0, m.id, "P0")]  # fmt: skip
    for n, (dest, _, _) in enumerate(plan):
        for kind in OTHER_KINDS:
            insert_events(app, kind, dest, [TIMES[n]], own_values(kind, n))
    return {"m": m, "other": other, "plan": plan}


def scopes(spread: dict[str, Any], kind: str) -> dict[str, list[int]]:
    """Resource -> the positions (in the data set) of the events it lists."""
    m, other = spread["m"], spread["other"]
    (d0, d1), o0 = m.destinations, other.destinations[0]
    return {
        f"ms/{kind}": [0, 1, 2, 3, 4],
        f"ms/emailing/{m.id}/{kind}": [0, 2, 3, 4],
        f"ms/emailing/{other.id}/{kind}": [1],
        f"ms/destination/{d0}/{kind}": [0, 3, 4],
        f"ms/message/{d0}/{kind}": [0, 3, 4],
        f"ms/destination/{d1}/{kind}": [2],
        f"ms/message/{o0}/{kind}": [1],
    }


def test_items_of_every_kind(http: TestClient, token: str, spread: dict[str, Any]) -> None:
    for kind in OTHER_KINDS:
        r = get(http, token, f"ms/{kind}")
        assert (r.status_code, r.headers["content-type"]) == (200, JSON)
        body = r.json()
        assert list(body) == ENVELOPE
        assert (body["start"], body["limit"], body["count"], body["total"]) == (0, 100, 5, 5)
        expected = []
        for n, (dest, emailing, profile) in enumerate(spread["plan"]):
            expected.append(
                {
                    "mailing": str(emailing),
                    "timestamp": LOCAL[n],
                    **own_fields(kind, n),
                    "destination": str(dest),
                    "profile": profile,
                    "subprofile": profile.replace("P", "S"),
                }
            )
        assert [list(item) for item in body["data"]] == [FIELDS[kind]] * 5, kind
        assert [{k: v for k, v in i.items() if k != "ID"} for i in body["data"]] == expected
        assert all(type(item["ID"]) is str and item["ID"].isdigit() for item in body["data"])
        assert ids(body) == sorted(set(ids(body)))


def test_each_scope_lists_its_own_events(
    http: TestClient, token: str, spread: dict[str, Any]
) -> None:
    wrong = {}
    for kind in OTHER_KINDS:
        every = ids(page(http, token, f"ms/{kind}"))
        for resource, rows in scopes(spread, kind).items():
            body = page(http, token, resource)
            if (ids(body), body["total"]) != ([every[n] for n in rows], len(rows)):
                wrong[resource] = ids(body)
            assert [list(item) for item in body["data"]] == [FIELDS[kind]] * len(rows)
        d0 = spread["m"].destinations[0]
        for qs in ("", "unique=1&limit=1", "total=0&start=1"):
            a = get(http, token, f"ms/destination/{d0}/{kind}", qs)
            b = get(http, token, f"ms/message/{d0}/{kind}", qs)
            assert a.status_code == b.status_code == 200 and a.content == b.content
    assert wrong == {}


PAGING = [
    ("start=1&limit=2", 1, 2, [1, 2]),
    ("start=4", 4, 100, [4]),
    ("start=5", 5, 100, []),
    ("limit=5000", 0, 1000, [0, 1, 2, 3, 4]),
    ("start=-1", -1, 100, []),
    ("limit=-5", 0, -5, []),
    ("limit=0", 0, 0, []),
]


def test_paging(http: TestClient, token: str, spread: dict[str, Any]) -> None:
    wrong = {}
    for kind in OTHER_KINDS:
        every = ids(page(http, token, f"ms/{kind}"))
        for qs, start, limit, rows in PAGING:
            body = page(http, token, f"ms/{kind}", qs)
            want = {"start": start, "limit": limit, "count": len(rows), "total": 5}
            got = {key: body.get(key) for key in want}
            if list(body) != ENVELOPE or got != want or ids(body) != [every[n] for n in rows]:
                wrong[f"{kind} {qs}"] = body
        body = page(http, token, f"ms/{kind}", "total=false&limit=2")
        assert list(body) == ENVELOPE[:4] and ids(body) == every[:2]
        emailing = f"ms/emailing/{spread['m'].id}/{kind}"
        body = page(http, token, emailing, "start=1&limit=2")
        assert (ids(body), body["total"]) == ([every[2], every[3]], 4)
    assert wrong == {}


TIME_RANGES = [
    (query(("begintime", NOON)), [2, 3, 4]),
    (query(("endtime", NOON)), [0, 1, 2]),
    (query(("begintime", NOON), ("endtime", NOON)), [2]),
    (query(("begintime", "2024-07-01 11:59:59"), ("endtime", "2024-07-01 12:00:01")), [1, 2, 3]),
    (query(("begintime", "2024-01-15 12:00:00"), ("endtime", "2024-01-15 12:00:00")), [0]),
    (query(("endtime", "2024-01-15 11:59:59")), []),
    ("begintime=2024-07-01+12:00:00&endtime=2024-07-01%2012:00:00", [2]),
]


def test_time_range_in_account_zone_inclusive(
    http: TestClient, token: str, spread: dict[str, Any]
) -> None:
    wrong = {}
    for kind in OTHER_KINDS:
        every = ids(page(http, token, f"ms/{kind}"))
        every_scope = list(scopes(spread, kind).items())
        chosen = [every_scope[i] for i in (0, 1, 3, 5)]  # account, an emailing, destinations
        for qs, rows in TIME_RANGES:
            for resource, listed in chosen:
                body = page(http, token, resource, qs)
                want = [n for n in rows if n in listed]
                got = (ids(body), [item["timestamp"] for item in body["data"]], body["total"])
                if got != ([every[n] for n in want], [LOCAL[n] for n in want], len(want)):
                    wrong[f"{resource}?{qs}"] = got
    assert wrong == {}
    r = get(http, token, "ms/deliveries", "begintime=yesterday")
    assert "begintime" in error(r)
    r = get(http, token, f"ms/emailing/{spread['m'].id}/errors", "endtime=2024-13-01")
    assert "endtime" in error(r)


def test_unique_is_one_per_destination_the_earliest(
    app: App, http: TestClient, token: str, spread: dict[str, Any]
) -> None:
    m = spread["m"]
    # A late arrival: the earliest event of d1 reaches the store after the others.
    for kind in OTHER_KINDS:
        insert_events(app, kind, m.destinations[1], [TIMES[0] - 60], own_values(kind, 1))
    wrong = {}
    for kind in OTHER_KINDS:
        every = ids(page(http, token, f"ms/{kind}"))  # the late one is every[5]
        for resource, rows in scopes(spread, kind).items():
            late = [5] if (2 in rows) else []
            want = sorted({0, 1} & set(rows)) + late
            body = page(http, token, resource, "unique=true")
            if (ids(body), body["total"]) != ([every[n] for n in want], len(want)):
                wrong[f"{resource} unique"] = ids(body)
            assert total(http, token, resource, "unique=0") == len(rows) + len(late)
        # A time range selects among the unique events: d0's first is in January.
        body = page(http, token, f"ms/{kind}", query(("unique", "1"), ("begintime", NOON)))
        assert (ids(body), body["total"]) == ([], 0), kind
        body = page(http, token, f"ms/{kind}", query(("unique", "yes"), ("endtime", NOON)))
        assert ids(body) == [every[0], every[1], every[5]], kind
        first = ids(page(http, token, f"ms/{kind}", "unique=1&limit=1"))[0]
        synced = page(
            http, token, f"ms/{kind}", query(("unique", "1"), ("fields[]", f"ID>{first}"))
        )
        assert ids(synced) == [every[1], every[5]]
    assert wrong == {}


# kind -> (expression, the positions it keeps); own fields of own_values().
FILTERS: dict[str, list[tuple[str, list[int]]]] = {
    "impressions": [
        ("device==mobile", [0, 2, 4]),
        ("device!=mobile", [1, 3]),
        ("ip=~192.0.2.%", [0, 1, 2, 3, 4]),
        ("ip==192.0.2.3", [3]),
        ("useragent=~%iPhone%", [0, 2, 4]),
        ("useragent!~%iPhone%", [1, 3]),
    ],
    "deliveries": [
        ("attempts>1", [1, 2, 3, 4]),
        ("attempts==3", [2]),
        ("attempts<=2", [0, 1]),
    ],
    "errors": [
        ("errortype==hard", [1, 3]),
        ("errortype<>hard", [0, 2, 4]),
        ("status=~5.1._", [0, 1, 2, 3, 4]),
        ("errorcode==421", [0, 2, 4]),
        ("description=~%unknown 3", [3]),
    ],
    "abuses": [("destination>0", [0, 1, 2, 3, 4])],
    "unsubscribes": [
        ("useragent=~Mozilla/%", [0, 1, 2, 3, 4]),
        ("ip!=192.0.2.0", [1, 2, 3, 4]),
    ],
}
COMMON_FILTERS = [
    ("ID>{2}", [3, 4]),
    ("ID<={1}", [0, 1]),
    ("ID<>{0}", [1, 2, 3, 4]),
    ("timestamp>=" + NOON, [2, 3, 4]),
    ("timestamp<" + NOON, [0, 1]),
    ("mailing=={mailing}", [0, 2, 3, 4]),
    ("destination=={d0}", [0, 3, 4]),
]


def test_fields_filters(http: TestClient, token: str, spread: dict[str, Any]) -> None:
    m = spread["m"]
    wrong = {}
    for kind in OTHER_KINDS:
        every = ids(page(http, token, f"ms/{kind}"))
        names = {"mailing": m.id, "d0": m.destinations[0]}
        for template, rows in [*COMMON_FILTERS, *FILTERS[kind]]:
            expr = template.format(*every, **names)
            for key in ("fields%5B0%5D", "fields[]"):
                body = page(http, token, f"ms/{kind}", query((key, expr)))
                if (ids(body), body["total"]) != ([every[n] for n in rows], len(rows)):
                    wrong[f"{kind} {expr}"] = ids(body)
        anded = query(("fields[0]", f"ID>{every[0]}"), ("fields[1]", f"timestamp<={NOON}"))
        assert ids(page(http, token, f"ms/{kind}", anded)) == every[1:3]
        scoped = page(
            http, token, f"ms/emailing/{m.id}/{kind}", query(("fields[]", f"ID>{every[0]}"))
        )
        assert (ids(scoped), scoped["total"]) == (every[2:], 3)
    assert wrong == {}
    for resource, expr in [
        ("ms/abuses", "report=~%abuse%"),
        ("ms/deliveries", "attempts=~1%"),
        ("ms/impressions", "nosuchfield==1"),
        ("ms/errors", "link==https://shop.example/a"),
        ("ms/unsubscribes", "device==mobile"),
    ]:
        r = get(http, token, resource, query(("fields[]", expr)))
        assert "fields" in error(r), (resource, expr)


def test_unknown_scopes_and_kinds(
    http: TestClient, token: str, spread: dict[str, Any], stranger: Mailing
) -> None:
    m = spread["m"]
    for kind in OTHER_KINDS:
        for resource in (
            f"ms/emailing/999999/{kind}",
            f"ms/destination/999999/{kind}",
            f"ms/message/0/{kind}",
            f"ms/emailing/{stranger.id}/{kind}",
            f"ms/destination/{stranger.destinations[0]}/{kind}",
            f"ms/message/{stranger.destinations[0]}/{kind}",
        ):
            assert error(get(http, token, resource)) == "No entity with supplied ID", resource
        assert error(get(http, "not-a-token", f"ms/{kind}")) == "Invalid access token"
        assert error(get(http, token, f"ms/{kind.upper()}")) == "Invalid method"
    assert error(get(http, token, f"ms/emailing/{m.id}/bounces")) == "Invalid method"
