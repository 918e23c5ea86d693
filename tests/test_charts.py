"""Time buckets, links, clients and bounces of an emailing, on both backends, against counts
made in Python from the same events; and the chart API that answers them as JSON."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from starlette.testclient import TestClient

from mailstats.kinds import CLICKS, IMPRESSIONS
from mailstats.store import Scope, Store, charts
from mailstats.web.app import App
from tests.helpers import AMS, Mailing, insert_clicks, insert_events, utc

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko)"


def local_hours(day: date) -> list[str]:
    bounds = charts.edges(day, day, "hour", AMS)
    return [datetime.fromtimestamp(b, AMS).isoformat() for b in bounds[:-1]]


def test_a_spring_day_has_23_local_hours_and_an_autumn_day_25() -> None:
    spring, autumn = local_hours(date(2026, 3, 29)), local_hours(date(2026, 10, 25))
    assert len(spring) == 23 and len(autumn) == 25
    assert "2026-03-29T02:00:00+01:00" not in spring  # that hour never happens
    assert spring[2] == "2026-03-29T03:00:00+02:00"
    assert autumn[2:4] == ["2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00"]
    days = charts.edges(date(2026, 10, 24), date(2026, 10, 26), "day", AMS)
    assert [b - a for a, b in itertools.pairwise(days)] == [86400, 90000, 86400]


def expected(times: list[int], firsts: list[int], bounds: list[int]) -> list[tuple[int, int]]:
    """(events, firsts) per bucket, counted one by one."""
    out = []
    for low, high in itertools.pairwise(bounds):
        out.append((sum(low <= t < high for t in times), sum(low <= t < high for t in firsts)))
    return out


def _clicks_over(app: App, m: Mailing, times: list[int]) -> tuple[list[int], list[int]]:
    """Store clicks on the first link, alternating between two destinations; return every
    time and the times of the first click of each destination."""
    for n, ts in enumerate(times):
        insert_clicks(app, m.destinations[n % 2], m.links[0], [ts])
    firsts = [min(times[0::2]), min(times[1::2])]
    return times, firsts


@pytest.mark.parametrize("day", [date(2026, 3, 29), date(2026, 10, 25)])
def test_hour_buckets_over_a_daylight_saving_day(app: App, m: Mailing, day: date) -> None:
    bounds = charts.edges(day, day, "hour", AMS)
    # every 20 minutes through the day, plus a minute either side of it
    times = [bounds[0] - 60, *range(bounds[0], bounds[-1], 1200), bounds[-1]]
    times, firsts = _clicks_over(app, m, times)
    scope = Scope(app.store.account("acme").id, emailing_id=m.id)
    got = app.store.charts.buckets(scope, CLICKS, bounds)
    assert len(got) == len(bounds) - 1 in (23, 25)
    assert got == expected(times, [f for f in firsts if bounds[0] <= f < bounds[-1]], bounds)
    assert all(n == 3 for n, _ in got)  # three clicks in every local hour, 23 or 25 of them


def test_buckets_from_times_far_out_of_id_order(
    app: App, m: Mailing, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(7)
    start = utc(2026, 10, 20)
    times = [start + rng.randrange(0, 10 * 86400) for _ in range(300)]
    times, firsts = _clicks_over(app, m, times)
    scope = Scope(app.store.account("acme").id, emailing_id=m.id)
    bounds = charts.edges(date(2026, 10, 21), date(2026, 10, 28), "day", AMS)
    want = expected(times, firsts, bounds)
    assert app.store.charts.buckets(scope, CLICKS, bounds) == want
    monkeypatch.setattr(charts, "MAX_RUNS", 0)  # the path that reads every row once
    assert app.store.charts.buckets(scope, CLICKS, bounds) == want


def get(http: TestClient, token: str, path: str, **params: str) -> Any:
    r = http.get(f"/v2/ms/{path}", params={"access_token": token, **params})
    assert r.status_code == 200, r.text
    return r.json()


def test_timeline_json_on_the_autumn_day_totals_equal_statistics(
    app: App, http: TestClient, token: str, m: Mailing
) -> None:
    bounds = charts.edges(date(2026, 10, 25), date(2026, 10, 25), "hour", AMS)
    _clicks_over(app, m, list(range(bounds[0] + 30, bounds[-1], 1800)))
    for n, dest in enumerate(m.destinations):
        insert_events(app, "impressions", dest, [bounds[0] + 100 + n, bounds[0] + 7300],
                      (f"192.0.2.{n}", FIREFOX, "desktop"))  # fmt: skip
    body = get(http, token, f"emailing/{m.id}/charts/timeline")
    assert (body["range"], body["interval"], body["begin"], body["end"]) == (
        "all", "hour", "2026-10-25", "2026-10-25",
    )  # fmt: skip
    assert body["timezone"] == "Europe/Amsterdam" and len(body["buckets"]) == 25
    starts = [b["start"] for b in body["buckets"]]
    assert starts[2:4] == ["2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00"]
    assert [b["clicks"]["total"] for b in body["buckets"]] == [2] * 25
    stats = get(http, token, f"emailing/{m.id}/statistics")
    for kind in ("clicks", "impressions"):
        assert body["totals"][kind] == stats[kind]
        assert sum(b[kind]["total"] for b in body["buckets"]) == stats[kind]["total"]
        assert sum(b[kind]["unique"] for b in body["buckets"]) == stats[kind]["unique"]
    days = get(http, token, f"emailing/{m.id}/charts/timeline", interval="day", range="3d")
    assert [b["start"] for b in days["buckets"]] == [
        "2026-10-25T00:00:00+02:00", "2026-10-26T00:00:00+01:00", "2026-10-27T00:00:00+01:00",
    ]  # fmt: skip
    custom = get(http, token, f"emailing/{m.id}/charts/timeline", begin="2026-10-26")
    assert custom["range"] == "custom" and custom["totals"]["clicks"]["total"] == 0


def test_links_clients_and_bounces(app: App, http: TestClient, token: str, m: Mailing) -> None:
    a, b = m.destinations
    ts = utc(2026, 11, 2, 9)
    insert_clicks(app, a, m.links[0], [ts, ts + 5, ts + 9])
    insert_clicks(app, b, m.links[0], [ts])
    insert_clicks(app, b, m.links[1], [ts])
    insert_events(app, "impressions", a, [ts, ts + 1], ("192.0.2.1", IPHONE, "mobile"))
    insert_events(app, "impressions", b, [ts], ("192.0.2.2", FIREFOX, "desktop"))
    insert_events(app, "errors", a, [ts], ("5.1.1", "550", "no such user", "hard", "userunknown"))
    insert_events(app, "errors", b, [ts, ts + 60], ("4.2.2", "452", "full", "soft"))
    links = get(http, token, f"emailing/{m.id}/charts/links")
    assert links["total"] == 5 and links["unique"] == 3
    assert [(x["ID"], x["url"], x["total"], x["unique"], x["share"]) for x in links["data"]] == [
        (str(m.links[0]), m.urls[0], 4, 2, 0.8),
        (str(m.links[1]), m.urls[1], 1, 1, 0.2),
    ]
    clients = get(http, token, f"emailing/{m.id}/charts/clients")
    assert clients["devices"] == [
        {"device": "mobile", "total": 2, "unique": 1},
        {"device": "desktop", "total": 1, "unique": 1},
    ]
    assert [(c["client"], c["os"], c["total"]) for c in clients["clients"]] == [
        ("Mobile Safari UI/WKWebView", "iOS", 2), ("Firefox", "Linux", 1),
    ]  # fmt: skip
    bounces = get(http, token, f"emailing/{m.id}/charts/bounces")
    assert bounces["total"] == 3
    assert bounces["data"] == [
        {"errortype": "soft", "errorcode": "452", "total": 2, "destinations": 1},
        {"errortype": "hard", "errorcode": "550", "total": 1, "destinations": 1},
    ]
    # figures of a range only count what happened in it
    later = get(http, token, f"emailing/{m.id}/charts/links", begin="2026-11-03")
    assert later["total"] == 0


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"interval": "week"}, "Invalid value for parameter 'interval'"),
        ({"range": "2w"}, "Invalid value for parameter 'range'"),
        ({"begin": "20261025"}, "Invalid value for parameter 'begin'"),
        ({"begin": "2026-02-30"}, "Invalid value for parameter 'begin'"),
        ({"begin": "2026-10-25", "end": "2026-10-24"}, "before 'begin'"),
        ({"begin": "2026-01-01", "end": "2026-12-31", "interval": "hour"}, "Too many buckets"),
    ],
)
def test_bad_chart_parameters_are_a_clear_400(
    http: TestClient, token: str, m: Mailing, params: dict[str, str], message: str
) -> None:
    r = http.get(
        f"/v2/ms/emailing/{m.id}/charts/timeline", params={"access_token": token, **params}
    )
    assert r.status_code == 400 and message in r.json()["error"]["message"]


def test_charts_of_another_account_or_an_unknown_chart_are_refused(
    http: TestClient, token: str, stranger: Mailing
) -> None:
    r = http.get(f"/v2/ms/emailing/{stranger.id}/charts/timeline", params={"access_token": token})
    assert r.status_code == 400 and r.json() == {"error": {"message": "No entity with supplied ID"}}
    r = http.get(f"/v2/ms/emailing/{stranger.id}/charts/pie", params={"access_token": token})
    assert r.status_code == 400 and r.json() == {"error": {"message": "Invalid method"}}


def test_opens_by_unique_follow_the_first_flag(store: Store) -> None:
    # a late, earlier open takes the first flag over; the buckets follow it
    from tests.helpers import setup_mailing

    account, emailing, (dest, *_), _ = setup_mailing(store, 1)
    from mailstats.store import Event

    late, early = utc(2026, 5, 2, 12), utc(2026, 5, 1, 12)
    for key, ts in ((b"k-late", late), (b"k-early", early)):
        store.insert_events(
            [
                Event(
                    IMPRESSIONS,
                    key.ljust(16, b"."),
                    ts,
                    account,
                    emailing,
                    dest,
                    0,
                    (None, None, None),
                )
            ]
        )
    bounds = charts.edges(date(2026, 5, 1), date(2026, 5, 2), "day", AMS)
    got = store.charts.buckets(Scope(account, emailing_id=emailing), IMPRESSIONS, bounds)
    assert got == [(1, 1), (1, 0)]
    assert Counter(n for n, _ in got) == Counter([1, 1])


@pytest.mark.parametrize("zone", ["Asia/Kolkata", "Asia/Kathmandu"])
def test_hour_buckets_in_zones_of_half_and_quarter_hour_offsets(
    app: App, m: Mailing, zone: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tz = ZoneInfo(zone)
    bounds = charts.edges(date(2026, 6, 1), date(2026, 6, 1), "hour", tz)
    times = list(range(bounds[0] - 600, bounds[-1] + 600, 700))  # across every edge
    times, firsts = _clicks_over(app, m, times)
    scope = Scope(app.store.account("acme").id, emailing_id=m.id)
    want = expected(times, [f for f in firsts if bounds[0] <= f < bounds[-1]], bounds)
    monkeypatch.setattr(charts, "MAX_RUNS", 0)  # every row read and put in its slot
    assert app.store.charts.buckets(scope, CLICKS, bounds) == want
