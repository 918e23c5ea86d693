"""The objects around the statistics (issue 4, compat.md section 5): emailings, destinations,
the message as sent, and the statistics objects that must agree with the lists."""

from __future__ import annotations

import email
import email.policy
import email.utils
import re
import time
from email.message import EmailMessage
from typing import Any

import pytest
from starlette.testclient import TestClient

from mailstats.web.app import App
from tests.helpers import (
    ENVELOPE,
    JSON,
    KIND_NAMES,
    PUBLIC,
    SENDER,
    STATISTICS_KEYS,
    TWO_LINKS,
    Mailing,
    add_destinations,
    body_html,
    click,
    click_paths,
    error,
    get,
    ids,
    insert_clicks,
    insert_events,
    local,
    mailing,
    page,
    pixel_path,
    post_event,
    query,
    total,
    unsubscribe_path,
    utc,
)

EMAILING_FIELDS = ["id", "timestamp", "template", "subject", "from_address", "destinations", "type"]
DESTINATION_FIELDS = ["ID", "mailing", "timestampsent", "profile", "subprofile"]
MESSAGE_FIELDS = ["ID", "messageID", "mailing", "timestampsent", "profile", "subprofile"]
NO_ENTITY = "No entity with supplied ID"


@pytest.fixture
def other_token(app: App) -> str:
    return app.store.create_token("other", "Europe/Amsterdam")


# --- ms/emailings and ms/emailing/$id -----------------------------------------------------

# (created at, type, subject, tags) of emailings registered at known times.
DATED = [
    (utc(2024, 1, 15, 11), "mass", "January", ["jan", "sale"]),
    (utc(2024, 7, 1, 10), "individual", "Order 17", []),
    (utc(2024, 7, 1, 22), "mass", "Caf\u00e9 \u2615 news", ["t\u00e9"]),
]
DATED_LOCAL = ["2024-01-15 12:00:00", "2024-07-01 12:00:00", "2024-07-02 00:00:00"]


@pytest.fixture
def dated(app: App, http: TestClient, token: str, other_token: str) -> list[int]:
    """The IDs of the DATED emailings of "acme" (the first with two destinations), after one
    of another account."""
    mailing(app, http, other_token, destinations=1)
    account = app.store.account("acme").id
    made = [
        app.store.create_emailing(
            account, subject=subject, from_name="Caf\u00e9 Shop", from_email="news@shop.example",
            html="<p>x</p>", text=None, tags=tags, type=kind, links=[], created_at=created,
        )
        for created, kind, subject, tags in DATED
    ]  # fmt: skip
    add_destinations(http, token, made[0], {"email": "a@example.org"}, {"email": "b@example.org"})
    return made


def emailing_item(n: int, emailing: int) -> dict[str, Any]:
    _, kind, subject, _ = DATED[n]
    return {
        "id": str(emailing),
        "timestamp": DATED_LOCAL[n],
        "template": None,
        "subject": subject,
        "from_address": {"name": "Caf\u00e9 Shop", "email": "news@shop.example"},
        "destinations": "2" if n == 0 else "0",
        "type": kind,
    }


EMAILING_QUERIES = [
    ("start=1&limit=1", 1, 1, [1], 3),
    ("start=3", 3, 100, [], 3),
    ("limit=5000", 0, 1000, [0, 1, 2], 3),
    ("start=-1", -1, 100, [], 3),
    ("type=mass", 0, 100, [0, 2], 2),
    ("type=individual", 0, 100, [1], 1),
    ("type=mass&start=1", 1, 100, [2], 2),
    (query(("fromdate", "2024-07-01 12:00:00")), 0, 100, [1, 2], 2),
    (query(("todate", "2024-07-01 12:00:00")), 0, 100, [0, 1], 2),
    (query(("fromdate", "2024-07-01 12:00:00"), ("todate", "2024-07-01 12:00:00")), 0, 100,
     [1], 1),
    (query(("fromdate", "2024-07-01 12:00:01"), ("todate", "2024-07-01 23:59:59")), 0, 100,
     [], 0),
    (query(("fromdate", "2024-07-02")), 0, 100, [2], 1),
    (query(("fromdate", "2024-01-01 00:00:00"), ("type", "mass")), 0, 100, [0, 2], 2),
    (query(("todate", "2024-07-01 12:00:00"), ("type", "mass")), 0, 100, [0], 1),
]  # fmt: skip


def test_emailings_list_paging_and_filters(http: TestClient, token: str, dated: list[int]) -> None:
    r = get(http, token, "ms/emailings")
    assert (r.status_code, r.headers["content-type"]) == (200, JSON)
    body = r.json()
    assert list(body) == ENVELOPE
    assert (body["start"], body["limit"], body["count"], body["total"]) == (0, 100, 3, 3)
    assert [list(item) for item in body["data"]] == [EMAILING_FIELDS] * 3
    assert [list(item["from_address"]) for item in body["data"]] == [["name", "email"]] * 3
    assert body["data"] == [emailing_item(n, e) for n, e in enumerate(dated)]
    wrong = {}
    for qs, start, limit, rows, count in EMAILING_QUERIES:
        body = page(http, token, "ms/emailings", qs)
        want = {"start": start, "limit": limit, "count": len(rows), "total": count}
        got = {key: body.get(key) for key in want}
        expected = [emailing_item(n, dated[n]) for n in rows]
        if list(body) != ENVELOPE or got != want or body["data"] != expected:
            wrong[qs] = body
    assert wrong == {}
    body = page(http, token, "ms/emailings", "total=0&limit=1")
    assert list(body) == ENVELOPE[:4] and body["data"] == [emailing_item(0, dated[0])]
    assert "type" in error(get(http, token, "ms/emailings", "type=newsletter"))
    assert "fromdate" in error(get(http, token, "ms/emailings", "fromdate=yesterday"))
    assert "todate" in error(get(http, token, "ms/emailings", "todate=2024-02-30+00:00:00"))


def test_emailing_registered_over_the_api(http: TestClient, token: str) -> None:
    before = int(time.time())
    r = http.post(
        "/v2/ms/emailings",
        params={"access_token": token},
        json={"subject": "Hi", "from_address": SENDER, "html": TWO_LINKS, "tags": ["a", "b"],
              "type": "individual"},
    )  # fmt: skip
    after = int(time.time())
    assert r.status_code == 201
    emailing = int(r.headers["x-created"])
    r = get(http, token, f"ms/emailing/{emailing}")
    assert (r.status_code, r.headers["content-type"]) == (200, JSON)
    item = r.json()
    assert list(item) == [*EMAILING_FIELDS, "tags"]
    assert local(before) <= item["timestamp"] <= local(after)
    assert item == {
        "id": str(emailing),
        "timestamp": item["timestamp"],
        "template": None,
        "subject": "Hi",
        "from_address": SENDER,
        "destinations": "0",
        "type": "individual",
        "tags": ["a", "b"],
    }
    add_destinations(http, token, emailing, {"email": "a@example.org"})
    assert get(http, token, f"ms/emailing/{emailing}").json()["destinations"] == "1"
    [listed] = page(http, token, "ms/emailings")["data"]
    assert listed == {k: v for k, v in item.items() if k != "tags"} | {"destinations": "1"}


def test_one_emailing(http: TestClient, token: str, other_token: str, dated: list[int]) -> None:
    for n, emailing in enumerate(dated):
        r = get(http, token, f"ms/emailing/{emailing}")
        assert r.status_code == 200
        assert list(r.json()) == [*EMAILING_FIELDS, "tags"]
        assert r.json() == {**emailing_item(n, emailing), "tags": DATED[n][3]}
        assert get(http, token, f"ms/emailing/{emailing}/").content == r.content
    stranger = page(http, other_token, "ms/emailings")["data"][0]["id"]
    for resource in (f"ms/emailing/{stranger}", "ms/emailing/999999", "ms/emailing/abc",
                     "ms/emailing/0", f"ms/emailing/{stranger}/destinations"):  # fmt: skip
        assert error(get(http, token, resource)) == NO_ENTITY, resource
    assert page(http, other_token, "ms/emailings")["total"] == 1


# --- destinations -------------------------------------------------------------------------


def test_emailing_destinations(
    app: App, http: TestClient, token: str, other_token: str, dated: list[int]
) -> None:
    emailing = dated[1]
    account = app.store.account("acme").id
    sent = [utc(2024, 7, 1, 10, 5), utc(2024, 12, 24, 18), None]
    items = [
        {"email": "x@example.org", "profile": "101", "subprofile": "202", "timestamp": sent[0]},
        {"email": "y@example.org", "profile": "102", "subprofile": None, "timestamp": sent[1]},
        {"email": "z@example.org", "profile": None, "subprofile": None},
    ]
    before = int(time.time())
    made = app.store.create_destinations(account, emailing, items)
    after = int(time.time())
    body = page(http, token, f"ms/emailing/{emailing}/destinations")
    assert list(body) == ENVELOPE and (body["count"], body["total"]) == (3, 3)
    assert [list(item) for item in body["data"]] == [DESTINATION_FIELDS] * 3
    third = body["data"][2]["timestampsent"]
    assert local(before) <= third <= local(after)
    assert body["data"] == [
        {"ID": str(made[0]), "mailing": str(emailing), "timestampsent": "2024-07-01 12:05:00",
         "profile": "101", "subprofile": "202"},
        {"ID": str(made[1]), "mailing": str(emailing), "timestampsent": "2024-12-24 19:00:00",
         "profile": "102", "subprofile": None},
        {"ID": str(made[2]), "mailing": str(emailing), "timestampsent": third,
         "profile": None, "subprofile": None},
    ]  # fmt: skip
    body = page(http, token, f"ms/emailing/{emailing}/destinations", "start=1&limit=1")
    assert (body["start"], body["limit"], ids(body), body["total"]) == (1, 1, [made[1]], 3)
    body = page(http, token, f"ms/emailing/{emailing}/destinations", "total=false&limit=5000")
    assert list(body) == ENVELOPE[:4] and body["limit"] == 1000 and ids(body) == made
    assert total(http, token, f"ms/emailing/{dated[0]}/destinations") == 2
    assert total(http, token, f"ms/emailing/{dated[2]}/destinations") == 0
    assert error(get(http, other_token, f"ms/emailing/{emailing}/destinations")) == NO_ENTITY


def test_one_destination(app: App, http: TestClient, token: str, other_token: str) -> None:
    mm = mailing(app, http, token, destinations=2)
    before = int(time.time())
    [plain] = add_destinations(http, token, mm.id, {"email": "plain@example.org"})
    after = int(time.time())
    for dest, profile in [(mm.destinations[1], "P1"), (plain, None)]:
        key = app.store.destination(app.store.account("acme").id, dest).message_key
        r = get(http, token, f"ms/destination/{dest}")
        assert (r.status_code, r.headers["content-type"]) == (200, JSON)
        item = r.json()
        assert list(item) == MESSAGE_FIELDS
        assert item == {
            "ID": str(dest),
            "messageID": f"<{key}@t.test>",
            "mailing": str(mm.id),
            "timestampsent": item["timestampsent"],
            "profile": profile,
            "subprofile": profile and profile.replace("P", "S"),
        }
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", item["timestampsent"])
        assert get(http, token, f"ms/message/{dest}").content == r.content
        headers = get(http, token, f"ms/destination/{dest}/headers").json()
        assert headers["Message-ID"] == item["messageID"]
    item = get(http, token, f"ms/destination/{plain}").json()
    assert local(before) <= item["timestampsent"] <= local(after)
    for resource in (f"ms/destination/{plain}", f"ms/message/{plain}"):
        assert error(get(http, other_token, resource)) == NO_ENTITY
    for resource in ("ms/destination/999999", "ms/message/abc", "ms/destination/-1"):
        assert error(get(http, token, resource)) == NO_ENTITY


# --- the message as sent ------------------------------------------------------------------

SUBJECT = "Caf\u00e9 \u2615 \u2013 20% off, this week only for our most loyal customers"
HTML = (
    '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Sale</title></head>\n'
    "<body><h1>Caf\u00e9 sale \u2615</h1>\n"
    '<p>Hello, <a href="https://shop.example/p?id={$profile.customerid}">your offer</a>.</p>\n'
    '<p><a href="https://shop.example/b">All products</a></p>\n</body>\n</html>'
)
TEXT = "Hello,\nyour offer: https://shop.example/p?id={$profile.customerid}\nAll: https://shop.example/b\n"


def register(app: App, http: TestClient, token: str, text: str | None) -> tuple[int, int]:
    """An emailing of SUBJECT and HTML (and `text`) with one destination: (emailing, dest)."""
    data = {"subject": SUBJECT, "from_address": {"name": "Caf\u00e9 Shop",
            "email": "news@shop.example"}, "html": HTML}  # fmt: skip
    if text is not None:
        data["text"] = text
    r = http.post("/v2/ms/emailings", params={"access_token": token}, json=data)
    assert r.status_code == 201, r.text
    emailing = int(r.headers["x-created"])
    [dest] = add_destinations(
        http, token, emailing,
        {"email": "ann@example.org", "profile": "7", "fields": {"customerid": "c7"}},
    )  # fmt: skip
    return emailing, dest


@pytest.mark.parametrize("text", [None, TEXT], ids=["derived", "registered"])
def test_body_text_carries_the_tracked_urls(
    app: App, http: TestClient, token: str, text: str | None
) -> None:
    _, dest = register(app, http, token, text)
    r = get(http, token, f"ms/destination/{dest}/body/text")
    assert (r.status_code, r.headers["content-type"]) == (200, "text/plain; charset=utf-8")
    tracked = [f"{PUBLIC}{path}" for path in click_paths(http, token, dest)]
    assert len(tracked) == 2
    found = re.findall(r"http://t\.test/c/[A-Za-z0-9_-]+", r.text)
    assert found == tracked
    assert "shop.example" not in r.text
    if text is not None:
        assert r.text == TEXT.replace(
            "https://shop.example/p?id={$profile.customerid}", tracked[0]
        ).replace("https://shop.example/b", tracked[1])
    else:
        assert "Caf\u00e9 sale" in r.text and "your offer" in r.text and "<p>" not in r.text
    locations = [http.get(url.removeprefix(PUBLIC)).headers["location"] for url in found]
    assert locations == ["https://shop.example/p?id=c7", "https://shop.example/b"]


def lf(text: str) -> str:
    return text.replace("\r\n", "\n")


def test_body_mime_is_the_whole_message(app: App, http: TestClient, token: str) -> None:
    _, dest = register(app, http, token, TEXT)
    r = get(http, token, f"ms/destination/{dest}/body/mime")
    assert (r.status_code, r.headers["content-type"]) == (200, "message/rfc822")
    msg = email.message_from_bytes(r.content, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    described = get(http, token, f"ms/destination/{dest}").json()
    headers = get(http, token, f"ms/destination/{dest}/headers").json()
    assert msg["From"] == "Caf\u00e9 Shop <news@shop.example>"
    assert msg["From"].addresses[0].addr_spec == "news@shop.example"
    assert msg["To"] == "ann@example.org"
    assert msg["Subject"] == SUBJECT
    assert msg["Message-ID"] == described["messageID"] == headers["Message-ID"]
    assert msg["List-Unsubscribe"] == f"<{PUBLIC}{unsubscribe_path(http, token, dest)}>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert email.utils.parsedate_to_datetime(msg["Date"]) is not None
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    plain, html = parts
    # Text parts travel with CRLF line breaks (RFC 2046); apart from that, the same bytes.
    assert lf(plain.get_content()) == lf(get(http, token, f"ms/destination/{dest}/body/text").text)
    assert max(len(line) for line in r.content.split(b"\r\n")) <= 998  # RFC 5322
    assert r.content.isascii()  # 7-bit transport safe
    assert get(http, token, f"ms/message/{dest}/body/mime").status_code == 200
    # The HTML alternative is body/html itself: not even a final line break is added.
    assert lf(html.get_content()) == lf(body_html(http, token, dest))


def test_body_errors(http: TestClient, token: str, other_token: str, m: Mailing) -> None:
    d0 = m.destinations[0]
    assert error(get(http, token, f"ms/destination/{d0}/body/pdf")) == "Invalid method"
    assert error(get(http, token, f"ms/destination/{d0}/body/HTML")) == "Invalid method"
    for part in ("html", "text", "mime"):
        assert error(get(http, token, f"ms/destination/999999/body/{part}")) == NO_ENTITY
        assert error(get(http, other_token, f"ms/destination/{d0}/body/{part}")) == NO_ENTITY


# --- statistics ---------------------------------------------------------------------------

T = [utc(2024, 7, 1, 10) + 3600 * n for n in range(5)]  # 12:00 to 16:00 in Amsterdam


@pytest.fixture
def mixed(app: App, http: TestClient, token: str) -> dict[str, Any]:
    """Events of every kind at T over three destinations of one emailing and one of another."""
    m = mailing(app, http, token, destinations=3)
    other = mailing(app, http, token, destinations=1)
    (d0, d1, d2), (a, b) = m.destinations, m.links
    o0 = other.destinations[0]
    for dest, link, n in [(d0, a, 0), (d1, a, 1), (d0, b, 2), (d0, a, 3)]:
        insert_clicks(app, dest, link, [T[n]])
    insert_clicks(app, o0, other.links[0], [T[2]])
    for dest, n in [(d0, 0), (d0, 1), (d1, 2), (d0, 4), (o0, 0)]:
        insert_events(app, "impressions", dest, [T[n]], ("192.0.2.1", "UA", "desktop"))
    for dest, n, attempts in [(d0, 0, 1), (d1, 0, 3), (d2, 1, 2), (d1, 3, 2), (o0, 0, 5)]:
        insert_events(app, "deliveries", dest, [T[n]], (attempts,))
    for n in (0, 2):
        insert_events(
            app, "errors", d2, [T[n]], ("5.1.1", "550", "User unknown", "hard", "userunknown")
        )
    insert_events(app, "abuses", d1, [T[4]], ('{"feedback-type":"abuse"}',))
    for dest, n in [(d1, 3), (d1, 4), (d0, 4)]:
        insert_events(app, "unsubscribes", dest, [T[n]], ("192.0.2.1", "UA"))
    return {"m": m, "other": other}


def statistics(http: TestClient, token: str, resource: str, qs: str = "") -> bytes:
    r = get(http, token, f"{resource}/statistics", qs)
    assert (r.status_code, r.headers["content-type"]) == (200, JSON), r.text
    assert list(r.json()) == STATISTICS_KEYS
    return r.content


def stats_json(destinations: int, *pairs: tuple[int, int], deliveries: int) -> bytes:
    """The exact answer: pairs for abuses, clicks, errors, impressions, retries, unsubscribes."""
    names = ["abuses", "clicks", "errors", "impressions", "retries", "unsubscribes"]
    p = {name: f'{{"total":{t},"unique":{u}}}' for name, (t, u) in zip(names, pairs, strict=True)}
    return (
        f'{{"destinations":"{destinations}","abuses":{p["abuses"]},"clicks":{p["clicks"]},'
        f'"deliveries":{{"total":{deliveries}}},"errors":{p["errors"]},'
        f'"impressions":{p["impressions"]},"retries":{p["retries"]},'
        f'"unsubscribes":{p["unsubscribes"]}}}'
    ).encode()


def test_statistics_exact_answers(
    app: App, http: TestClient, token: str, other_token: str, mixed: dict[str, Any]
) -> None:
    m, other = mixed["m"], mixed["other"]
    d0, d1, d2 = m.destinations
    two_to_three = query(("begintime", "2024-07-01 14:00:00"), ("endtime", "2024-07-01 15:00:00"))
    cases = [
        #                                abuses  clicks  errors impr.   retries unsubs
        (f"ms/emailing/{m.id}", "", stats_json(3, (1, 1), (4, 3), (2, 1), (4, 2), (3, 2), (3, 2),
                                               deliveries=4)),
        (f"ms/emailing/{m.id}", two_to_three,
         stats_json(3, (0, 0), (2, 1), (1, 0), (1, 1), (1, 1), (1, 1), deliveries=1)),
        (f"ms/emailing/{m.id}", query(("begintime", "2024-07-01 16:00:00")),
         stats_json(3, (1, 1), (0, 0), (0, 0), (1, 0), (0, 0), (2, 1), deliveries=0)),
        (f"ms/emailing/{other.id}", "",
         stats_json(1, (0, 0), (1, 1), (0, 0), (1, 1), (1, 1), (0, 0), deliveries=1)),
        (f"ms/destination/{d1}", "",
         stats_json(1, (1, 1), (1, 1), (0, 0), (1, 1), (2, 1), (2, 1), deliveries=2)),
        (f"ms/message/{d1}", "",
         stats_json(1, (1, 1), (1, 1), (0, 0), (1, 1), (2, 1), (2, 1), deliveries=2)),
        (f"ms/destination/{d0}", query(("endtime", "2024-07-01 13:00:00")),
         stats_json(1, (0, 0), (1, 1), (0, 0), (2, 1), (0, 0), (0, 0), deliveries=1)),
        (f"ms/destination/{d2}", query(("begintime", "2024-07-01 13:00:00")),
         stats_json(1, (0, 0), (0, 0), (1, 0), (0, 0), (1, 1), (0, 0), deliveries=1)),
        (f"ms/emailing/{m.id}", query(("endtime", "2024-07-01 11:59:59")),
         stats_json(3, (0, 0), (0, 0), (0, 0), (0, 0), (0, 0), (0, 0), deliveries=0)),
    ]  # fmt: skip
    wrong = {}
    for resource, qs, expected in cases:
        got = statistics(http, token, resource, qs)
        if got != expected:
            wrong[f"{resource}?{qs}"] = got.decode()
    assert wrong == {}
    # An emailing without destinations, and IDs that name nothing of this account.
    r = http.post(
        "/v2/ms/emailings",
        params={"access_token": token},
        json={"subject": "Empty", "from_address": SENDER, "html": "<p>x</p>"},
    )
    emailing = r.headers["x-created"]
    zero = stats_json(0, *[(0, 0)] * 6, deliveries=0)
    assert statistics(http, token, f"ms/emailing/{emailing}") == zero
    for resource in (f"ms/emailing/{m.id}", f"ms/destination/{m.destinations[0]}"):
        assert error(get(http, other_token, f"{resource}/statistics")) == NO_ENTITY
    for resource in ("ms/emailing/999999", "ms/destination/999999", "ms/message/abc"):
        assert error(get(http, token, f"{resource}/statistics")) == NO_ENTITY
    r = get(http, token, f"ms/emailing/{m.id}/statistics", "begintime=yesterday")
    assert "begintime" in error(r)
    r = get(http, token, f"ms/destination/{m.destinations[0]}/statistics", "endtime=2024-13-01")
    assert "endtime" in error(r)


def join(*parts: str) -> str:
    return "&".join(part for part in parts if part)


def test_every_unique_is_the_total_of_its_unique_list(
    app: App, http: TestClient, token: str, mixed: dict[str, Any]
) -> None:
    """compat.md section 5: statistics, lists and the dashboard never disagree."""
    m, other = mixed["m"], mixed["other"]
    d0, d1, d2 = m.destinations
    # Real events on top of the stored ones: clicks, opens, unsubscribes and reports now.
    click(http, token, d2)
    click(http, token, d2)
    click(http, token, d2, link=1)
    click(http, token, d0, link=1)
    for dest in (d2, d2, d0):
        assert http.get(pixel_path(http, token, dest)).status_code == 200
    for dest in (d2, d2):
        assert http.post(unsubscribe_path(http, token, dest)).status_code == 200
    for kind, data in [("deliveries", {"attempts": 4}), ("errors", {"status": "4.2.2",
                       "errortype": "soft"}), ("abuses", {"report": {"feedback-type": "abuse"}}),
                       ("abuses", {"report": {"feedback-type": "fraud"}})]:  # fmt: skip
        assert post_event(http, token, d2, kind, data).status_code == 201
    # A late arrival that is earlier than d1's first open takes the flag over.
    insert_events(app, "impressions", d1, [T[0] - 60], ("192.0.2.9", "UA", "mobile"))
    hour_ago = local(int(time.time()) - 3600)
    ranges = [
        "",
        query(("begintime", "2024-07-01 13:00:00"), ("endtime", "2024-07-01 15:00:00")),
        query(("begintime", hour_ago)),
    ]
    resources = [f"ms/emailing/{m.id}", f"ms/emailing/{other.id}", f"ms/destination/{d0}",
                 f"ms/message/{d1}", f"ms/destination/{d2}"]  # fmt: skip
    wrong = {}
    checked = 0
    for resource in resources:
        for qs in ranges:
            stats = get(http, token, f"{resource}/statistics", qs).json()
            for kind in KIND_NAMES:
                listed = total(http, token, f"{resource}/{kind}", join(qs, "limit=0"))
                unique = total(http, token, f"{resource}/{kind}", join(qs, "unique=true&limit=0"))
                want = (
                    {"total": listed}
                    if kind == "deliveries"
                    else {"total": listed, "unique": unique}
                )
                if stats[kind] != want:
                    wrong[f"{resource}/{kind}?{qs}"] = (stats[kind], want)
                checked += listed
            retried = page(
                http, token, f"{resource}/deliveries",
                join(qs, query(("fields[]", "attempts>1")), "limit=1000"),
            )  # fmt: skip
            want = {"total": retried["total"],
                    "unique": len({item["destination"] for item in retried["data"]})}  # fmt: skip
            if stats["retries"] != want:
                wrong[f"{resource}/retries?{qs}"] = (stats["retries"], want)
    assert wrong == {}
    assert checked > 100  # the comparison saw real numbers, not only zeros
