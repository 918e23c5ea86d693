"""GET /v2/ms/clicks in its three scopes: compat.md sections 1, 2 and 4 as a client sees them."""

from __future__ import annotations

import time

import pytest
from starlette.testclient import TestClient

from mailstats.web.app import App
from tests.helpers import (
    CLICK_FIELDS,
    ENVELOPE,
    JSON,
    LOCAL,
    NOON,
    TIMES,
    Mailing,
    add_destinations,
    click,
    get,
    ids,
    insert_clicks,
    local,
    mailing,
    make_emailing,
    page,
    query,
    utc,
)

# PHP's http_build_query sends true as 1 and false as 0; other spellings come from hand-written
# clients. True: "true", "yes" in any case, and numbers of magnitude 1 or more.
BOOLEANS = [
    ("1", True),
    ("0", False),
    ("true", True),
    ("yes", True),
    ("YES", True),
    ("2", True),
    ("-1", True),
    ("0.5", False),
    ("false", False),
    ("abc", False),
    ("", False),
]


@pytest.fixture
def five(app: App, http: TestClient, token: str, m: Mailing) -> list[int]:
    """The IDs of five clicks at TIMES, all by the first destination on the first link."""
    insert_clicks(app, m.destinations[0], m.links[0], TIMES)
    return ids(page(http, token))


# --- envelope -----------------------------------------------------------------------------


def test_empty_list_is_the_default_envelope(http: TestClient, token: str) -> None:
    r = get(http, token, "ms/clicks")
    assert r.status_code == 200
    assert r.headers["content-type"] == JSON
    assert r.content == b'{"start":0,"limit":100,"count":0,"data":[],"total":0}'


def test_envelope_of_real_clicks(http: TestClient, token: str, m: Mailing) -> None:
    click(http, token, m.destinations[0])
    click(http, token, m.destinations[1], link=1)
    r = get(http, token, "ms/clicks")
    assert r.status_code == 200
    assert r.headers["content-type"] == JSON
    assert r.content.startswith(b'{"start":0,"limit":100,"count":2,"data":[{"ID":"')
    assert r.content.endswith(b'}],"total":2}')
    body = r.json()
    assert list(body) == ENVELOPE
    assert all(type(body[key]) is int for key in ("start", "limit", "count", "total"))
    assert [list(item) for item in body["data"]] == [CLICK_FIELDS, CLICK_FIELDS]


def test_click_item_fields(app: App, http: TestClient, token: str, m: Mailing) -> None:
    insert_clicks(
        app, m.destinations[1], m.links[0], [TIMES[2]], ip="2001:db8::7", ua="Agent/1.0 (x)"
    )
    [item] = page(http, token)["data"]
    assert list(item) == CLICK_FIELDS
    assert item["ID"].isdigit()
    assert item == {
        "ID": item["ID"],
        "mailing": str(m.id),
        "link": "https://shop.example/a?id={$profile.customerid}",
        "timestamp": NOON,
        "ip": "2001:db8::7",
        "useragent": "Agent/1.0 (x)",
        "destination": str(m.destinations[1]),
        "profile": "P1",
        "subprofile": "S1",
    }


def test_missing_profile_and_subprofile_are_null(http: TestClient, token: str) -> None:
    emailing = make_emailing(http, token, '<a href="https://x.example/">x</a>')
    [dest] = add_destinations(http, token, emailing, {"email": "bob@example.org"})
    click(http, token, dest)
    [item] = page(http, token)["data"]
    assert item["profile"] is None and item["subprofile"] is None
    assert b'"profile":null,"subprofile":null}' in get(http, token, "ms/clicks").content


# --- paging -------------------------------------------------------------------------------

PAGING = [
    ("", 0, 100, [0, 1, 2]),
    ("start=1&limit=1", 1, 1, [1]),
    ("start=2", 2, 100, [2]),
    ("start=3", 3, 100, []),
    ("start=50&limit=10", 50, 10, []),
    ("limit=2", 0, 2, [0, 1]),
    ("limit=1000", 0, 1000, [0, 1, 2]),
    ("limit=1001", 0, 1000, [0, 1, 2]),
    ("limit=5000", 0, 1000, [0, 1, 2]),
    ("start=-1", -1, 100, []),
    ("limit=-5", 0, -5, []),
    ("start=-2&limit=-3", -2, -3, []),
    ("start=-1&limit=2", -1, 2, []),
    ("limit=0", 0, 0, []),
]


def test_paging_parameters(app: App, http: TestClient, token: str, m: Mailing) -> None:
    insert_clicks(app, m.destinations[0], m.links[0], TIMES[:3])
    every = ids(page(http, token))
    wrong = {}
    for qs, start, limit, rows in PAGING:
        body = page(http, token, qs=qs)
        want = {"start": start, "limit": limit, "count": len(rows), "total": 3}
        got = {key: body.get(key) for key in want}
        if list(body) != ENVELOPE or got != want or ids(body) != [every[i] for i in rows]:
            wrong[qs] = body
    assert wrong == {}


def test_paging_gives_every_row_once_in_id_order(
    app: App, http: TestClient, token: str, m: Mailing
) -> None:
    base = utc(2024, 3, 1)
    insert_clicks(app, m.destinations[0], m.links[0], [base + i for i in range(1100)])
    insert_clicks(app, m.destinations[1], m.links[1], [base + i for i in range(950)])
    for limit in (1000, 5000, 777):
        assert_pages(http, token, limit)


def assert_pages(http: TestClient, token: str, limit: int) -> None:
    """Page like Copernica's wrappers do: while start + count < total."""
    seen: list[int] = []
    start, pages = 0, 0
    while True:
        body = page(http, token, qs=f"start={start}&limit={limit}")
        assert body["limit"] == min(limit, 1000) and body["total"] == 2050
        assert body["count"] == len(body["data"]) <= 1000
        seen += ids(body)
        pages += 1
        start += body["count"]
        if start >= body["total"]:
            break
    assert len(seen) == 2050 and seen == sorted(set(seen))
    assert pages == -(-2050 // min(limit, 1000))


def test_total_boolean(app: App, http: TestClient, token: str, m: Mailing) -> None:
    insert_clicks(app, m.destinations[0], m.links[0], TIMES[:3])
    wrong = {}
    for value, truth in BOOLEANS:
        r = get(http, token, "ms/clicks", f"total={value}")
        body = r.json()
        keys = ENVELOPE if truth else ENVELOPE[:4]
        if list(body) != keys or body["count"] != 3 or body.get("total", 3) != 3:
            wrong[value] = list(body)
    assert wrong == {}


def test_total_false_with_an_empty_list(http: TestClient, token: str) -> None:
    r = get(http, token, "ms/clicks", "total=false")
    assert r.content == b'{"start":0,"limit":100,"count":0,"data":[]}'


# --- begintime and endtime ----------------------------------------------------------------

TIME_RANGES = [
    ("", [0, 1, 2, 3, 4]),
    (query(("begintime", NOON)), [2, 3, 4]),
    (query(("endtime", NOON)), [0, 1, 2]),
    (query(("begintime", NOON), ("endtime", NOON)), [2]),
    (query(("begintime", "2024-07-01 11:59:59"), ("endtime", "2024-07-01 12:00:01")), [1, 2, 3]),
    (query(("begintime", "2024-01-15 12:00:00"), ("endtime", "2024-01-15 12:00:00")), [0]),
    (query(("begintime", "2024-07-02 00:00:00")), [4]),
    (query(("endtime", "2024-01-15 11:59:59")), []),
    (query(("begintime", "2024-07-01 12:00:01"), ("endtime", NOON)), []),
    ("begintime=2024-07-01+12:00:00&endtime=2024-07-01%2012:00:00", [2]),
]


def test_time_range_in_account_zone_inclusive(
    http: TestClient, token: str, five: list[int]
) -> None:
    wrong = {}
    for qs, rows in TIME_RANGES:
        body = page(http, token, qs=qs)
        got = (ids(body), [item["timestamp"] for item in body["data"]], body["total"])
        if got != ([five[i] for i in rows], [LOCAL[i] for i in rows], len(rows)):
            wrong[qs] = got
    assert wrong == {}


# Around the 2024 transitions in Amsterdam: 02:00-03:00 does not exist on 31 March, and
# 02:00-03:00 happens twice on 27 October. Bounds inside the repeated hour name two instants
# and are left out; a bound that does not exist still splits the rows cleanly.
DST_TIMES = [utc(2024, 3, 31, 0, 30) + 900 * i for i in range(5)] + [
    utc(2024, 10, 27, 0, 0) + 900 * i for i in range(9)
]
DST_BOUNDS = [
    "2024-03-31 01:59:59",
    "2024-03-31 02:00:00",
    "2024-03-31 02:30:00",
    "2024-03-31 03:00:00",
    "2024-10-27 01:59:59",
    "2024-10-27 03:00:00",
]


def test_time_range_agrees_with_displayed_times_across_dst(
    app: App, http: TestClient, token: str, m: Mailing
) -> None:
    """Inclusive bounds: a row is listed exactly when its shown time is within them."""
    insert_clicks(app, m.destinations[0], m.links[0], DST_TIMES)
    shown = [item["timestamp"] for item in page(http, token)["data"]]
    assert shown == [local(ts) for ts in DST_TIMES]
    wrong = {}
    for bound in DST_BOUNDS:
        for name, keep in (("begintime", bound.__le__), ("endtime", bound.__ge__)):
            got = [item["timestamp"] for item in page(http, token, qs=query((name, bound)))["data"]]
            want = [t for t in shown if keep(t)]
            if got != want:
                wrong[f"{name}={bound}"] = (set(want) - set(got), set(got) - set(want))
    assert wrong == {}


def test_time_range_with_real_clicks(http: TestClient, token: str, m: Mailing) -> None:
    before = int(time.time())
    click(http, token, m.destinations[0])
    after = int(time.time())
    [item] = page(http, token)["data"]
    assert local(before) <= item["timestamp"] <= local(after)
    hour_ago, in_an_hour = local(before - 3600), local(after + 3600)
    assert page(http, token, qs=query(("begintime", hour_ago)))["count"] == 1
    assert page(http, token, qs=query(("endtime", in_an_hour)))["count"] == 1
    assert page(http, token, qs=query(("begintime", in_an_hour)))["count"] == 0
    assert page(http, token, qs=query(("endtime", hour_ago)))["count"] == 0
    exact = query(("begintime", item["timestamp"]), ("endtime", item["timestamp"]))
    assert page(http, token, qs=exact)["count"] == 1


# --- unique -------------------------------------------------------------------------------


def test_unique_keeps_the_earliest_per_destination_and_link(
    app: App, http: TestClient, token: str, m: Mailing
) -> None:
    (d0, d1), (a, b) = m.destinations, m.links
    for dest, link, ts in [(d0, a, 1), (d0, b, 2), (d0, a, 3), (d1, a, 4), (d1, a, 5), (d0, b, 6)]:
        insert_clicks(app, dest, link, [utc(2024, 7, 1, 10, 0, ts)])
    body = page(http, token, qs="unique=true")
    got = [(item["destination"], item["link"], item["timestamp"]) for item in body["data"]]
    assert got == [
        (str(d0), m.urls[0], "2024-07-01 12:00:01"),
        (str(d0), m.urls[1], "2024-07-01 12:00:02"),
        (str(d1), m.urls[0], "2024-07-01 12:00:04"),
    ]
    assert body["total"] == 3
    assert page(http, token, qs="unique=false")["total"] == 6


def test_unique_keeps_the_earliest_even_when_stored_later(
    app: App, http: TestClient, token: str, m: Mailing
) -> None:
    # A click spooled while the database was down reaches it after a later click.
    insert_clicks(app, m.destinations[0], m.links[0], [utc(2024, 7, 1, 10)])
    insert_clicks(app, m.destinations[0], m.links[0], [utc(2024, 7, 1, 9)])
    body = page(http, token, qs="unique=1")
    assert [item["timestamp"] for item in body["data"]] == ["2024-07-01 11:00:00"]


def test_unique_is_the_first_click_ever_and_filters_select_among_those(
    app: App, http: TestClient, token: str, m: Mailing
) -> None:
    """A pair's unique click is its earliest ever; a time range or ID filter then selects
    among unique clicks, so syncing `unique=1&fields[]=ID>n` never repeats a pair."""
    insert_clicks(app, m.destinations[0], m.links[0], [TIMES[0], TIMES[2], TIMES[3]])
    insert_clicks(app, m.destinations[1], m.links[0], [TIMES[2], TIMES[3]])
    body = page(http, token, qs=query(("unique", "1"), ("begintime", "2024-06-01 00:00:00")))
    assert [(i["destination"], i["timestamp"]) for i in body["data"]] == [
        (str(m.destinations[1]), NOON)
    ]
    assert body["total"] == 1
    every = page(http, token, qs="unique=1")
    first, second = every["data"]
    synced = page(http, token, qs=query(("unique", "1"), ("fields[]", f"ID>{first['ID']}")))
    assert synced["data"] == [second]


def test_unique_of_real_clicks(http: TestClient, token: str, m: Mailing) -> None:
    click(http, token, m.destinations[0])
    click(http, token, m.destinations[0])
    click(http, token, m.destinations[0], link=1)
    every = ids(page(http, token))
    assert ids(page(http, token, qs="unique=1")) == [every[0], every[2]]


def test_unique_boolean(app: App, http: TestClient, token: str, m: Mailing) -> None:
    insert_clicks(app, m.destinations[0], m.links[0], TIMES[:3])
    wrong = {}
    for value, truth in BOOLEANS:
        body = page(http, token, qs=f"unique={value}")
        if (body["count"], body["total"]) != ((1, 1) if truth else (3, 3)):
            wrong[value] = body["count"]
    assert wrong == {}


# --- fields[] -----------------------------------------------------------------------------

# Operator -> the rows of `five` it keeps against the middle row (index 2).
OPERATORS = [
    ("==", [2]),
    ("!=", [0, 1, 3, 4]),
    ("<>", [0, 1, 3, 4]),
    ("<", [0, 1]),
    (">", [3, 4]),
    ("<=", [0, 1, 2]),
    (">=", [2, 3, 4]),
]


def test_fields_operators_on_id_and_timestamp(
    http: TestClient, token: str, five: list[int]
) -> None:
    wrong = {}
    for op, rows in OPERATORS:
        expected = ([five[i] for i in rows], len(rows))
        for expr in (f"ID{op}{five[2]}", f"timestamp{op}{NOON}"):
            body = page(http, token, qs=query(("fields%5B0%5D", expr)))
            if (ids(body), body["total"]) != expected:
                wrong[expr] = ids(body)
    assert wrong == {}


TEXT_FILTERS = [
    ("link=~%/a?%", [0, 2]),
    ("link=~%{$profile.customerid}", [0, 2]),
    ("link=~https://shop.example/b", [1]),
    ("link!~%/b", [0, 2]),
    ("link==https://shop.example/b", [1]),
    ("link!=https://shop.example/b", [0, 2]),
    ("useragent=~Mozilla/%", [0, 2]),
    ("useragent=~mozilla/%", [0, 2]),  # ASCII case ignored, as on both backends (and MySQL)
    ("useragent=~curl/_._", [1]),
    ("useragent=~curl/_", []),
    ("useragent!~%Safari%", [0, 1]),
    ("useragent<>curl/8.0", [0, 2]),
    ("ip=~192.0.2.%", [0, 1]),
]


def test_fields_text_operators(app: App, http: TestClient, token: str, m: Mailing) -> None:
    (d0, d1), (a, b) = m.destinations, m.links
    insert_clicks(app, d0, a, [TIMES[1]], ua="Mozilla/5.0 Firefox/120.0")
    insert_clicks(app, d0, b, [TIMES[2]], ua="curl/8.0")
    insert_clicks(app, d1, a, [TIMES[3]], ip="198.51.100.1", ua="Mozilla/5.0 Safari/605")
    every = ids(page(http, token))
    wrong = {}
    for expr, rows in TEXT_FILTERS:
        got = ids(page(http, token, qs=query(("fields[]", expr))))
        if got != [every[i] for i in rows]:
            wrong[expr] = got
    assert wrong == {}


ARRAY_KEYS = [
    ("fields%5B0%5D", "fields%5B1%5D", "fields%5B2%5D"),  # PHP's http_build_query
    ("fields[0]", "fields[1]", "fields[2]"),
    ("fields[]", "fields%5B%5D", "fields[]"),
]


def test_several_fields_are_anded(http: TestClient, token: str, five: list[int]) -> None:
    exprs = [f"ID>{five[0]}", f"ID<{five[4]}", f"timestamp>={NOON}"]
    for keys in ARRAY_KEYS:
        body = page(http, token, qs=query(*zip(keys, exprs, strict=True)))
        assert (ids(body), body["total"]) == ([five[2], five[3]], 2), keys


def test_fields_and_time_range_are_anded(http: TestClient, token: str, five: list[int]) -> None:
    qs = query(("begintime", "2024-07-01 00:00:00"), ("fields[]", f"ID<{five[3]}"))
    assert ids(page(http, token, qs=qs)) == [five[1], five[2]]


def test_incremental_sync_by_id(http: TestClient, token: str, five: list[int]) -> None:
    body = page(http, token, qs=query(("fields%5B0%5D", f"ID>{five[4]}")))
    assert (body["count"], body["data"], body["total"]) == (0, [], 0)
    body = page(http, token, qs=query(("fields%5B0%5D", f"ID>{five[1]}"), ("limit", "2")))
    assert ids(body) == five[2:4] and body["total"] == 3


# --- parameter names and paths ------------------------------------------------------------

IGNORED = [
    ("LIMIT=1", ""),
    ("Limit=1&limit=2", "limit=2"),
    ("Start=1", ""),
    ("TOTAL=0", ""),
    ("UNIQUE=1", ""),
    ("Unique=true&unique=0", ""),
    ("Fields%5B0%5D=ID%3C0", ""),
    ("FIELDS[]=ID%3C0", ""),
    ("BEGINTIME=2030-01-01%2000:00:00", ""),
    ("EndTime=2000-01-01%2000:00:00", ""),
    ("foo=bar&limit=2&x%5B0%5D=1&empty=", "limit=2"),
    ("sort=desc&order=ID", ""),
]


def test_parameter_names_are_case_sensitive_and_unknown_ones_ignored(
    app: App, http: TestClient, token: str, m: Mailing
) -> None:
    insert_clicks(app, m.destinations[0], m.links[0], TIMES[:3])
    assert page(http, token)["count"] == 3 and page(http, token, qs="limit=2")["count"] == 2
    wrong = {}
    for variant, baseline in IGNORED:
        r = get(http, token, "ms/clicks", variant)
        if (r.status_code, r.content) != (200, get(http, token, "ms/clicks", baseline).content):
            wrong[variant] = r.text
    assert wrong == {}


def test_trailing_slash_is_ignored(app: App, http: TestClient, token: str, m: Mailing) -> None:
    insert_clicks(app, m.destinations[0], m.links[0], TIMES[:2])
    d = m.destinations[0]
    scoped = [f"ms/emailing/{m.id}/clicks", f"ms/destination/{d}/clicks", f"ms/message/{d}/clicks"]
    for path in ["ms/clicks", *scoped]:
        expected = get(http, token, path, "limit=1")
        r = get(http, token, path + "/", "limit=1")
        assert (r.status_code, r.headers["content-type"]) == (200, JSON), path
        assert r.content == expected.content and expected.json()["total"] == 2, path


# --- scopes -------------------------------------------------------------------------------


@pytest.fixture
def spread(app: App, http: TestClient, token: str, m: Mailing) -> dict[str, list[int]]:
    """Clicks over two emailings; the IDs each scope should list, keyed by resource."""
    other = mailing(app, http, token, destinations=1)
    (d0, d1), (a, b) = m.destinations, m.links
    insert_clicks(app, d0, a, [TIMES[0]])
    insert_clicks(app, other.destinations[0], other.links[0], [TIMES[1]])
    insert_clicks(app, d1, b, [TIMES[2]])
    insert_clicks(app, d0, b, [TIMES[3]])
    insert_clicks(app, d0, a, [TIMES[4]])
    c = ids(page(http, token))
    return {
        "ms/clicks": c,
        f"ms/emailing/{m.id}/clicks": [c[0], c[2], c[3], c[4]],
        f"ms/emailing/{other.id}/clicks": [c[1]],
        f"ms/destination/{d0}/clicks": [c[0], c[3], c[4]],
        f"ms/message/{d0}/clicks": [c[0], c[3], c[4]],
        f"ms/destination/{d1}/clicks": [c[2]],
        f"ms/message/{other.destinations[0]}/clicks": [c[1]],
    }


def test_each_scope_lists_its_own_clicks(
    http: TestClient, token: str, spread: dict[str, list[int]]
) -> None:
    for resource, expected in spread.items():
        body = page(http, token, resource)
        assert ids(body) == expected, resource
        assert body["total"] == len(expected), resource


def test_message_is_a_synonym_of_destination(
    http: TestClient, token: str, m: Mailing, spread: dict[str, list[int]]
) -> None:
    d0 = m.destinations[0]
    for qs in ("", "unique=1&limit=1", "total=0&start=1"):
        a = get(http, token, f"ms/destination/{d0}/clicks", qs)
        b = get(http, token, f"ms/message/{d0}/clicks", qs)
        assert a.status_code == b.status_code == 200
        assert a.content == b.content


def test_scoped_lists_take_the_same_parameters(
    http: TestClient, token: str, m: Mailing, spread: dict[str, list[int]]
) -> None:
    c = spread["ms/clicks"]
    emailing = f"ms/emailing/{m.id}/clicks"
    destination = f"ms/destination/{m.destinations[0]}/clicks"
    body = page(http, token, emailing, "unique=1")
    assert ids(body) == [c[0], c[2], c[3]] and body["total"] == 3
    body = page(http, token, destination, "start=1&limit=1&total=0")
    assert ids(body) == [c[3]] and "total" not in body
    body = page(http, token, destination, query(("fields%5B0%5D", f"ID>{c[0]}")))
    assert ids(body) == [c[3], c[4]]
    body = page(http, token, emailing, query(("begintime", NOON), ("endtime", NOON)))
    assert ids(body) == [c[2]]
    body = page(http, token, emailing, "limit=5000&start=-1")
    assert (body["start"], body["limit"], body["count"], body["total"]) == (-1, 1000, 0, 4)


def test_scoped_list_of_real_clicks(http: TestClient, token: str, m: Mailing) -> None:
    click(http, token, m.destinations[0])
    click(http, token, m.destinations[1], link=1)
    body = page(http, token, f"ms/message/{m.destinations[1]}/clicks")
    assert [(i["destination"], i["link"]) for i in body["data"]] == [
        (str(m.destinations[1]), "https://shop.example/b")
    ]
    assert page(http, token, f"ms/emailing/{m.id}/clicks")["total"] == 2
