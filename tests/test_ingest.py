"""What the sending pipeline reports in bulk (issue 4): NDJSON events on POST ms/events, and
bounce (DSN) and complaint (ARF) emails on POST ms/reports, all or nothing."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from starlette.testclient import TestClient

from mailstats.errors import InvalidParameter
from mailstats.ingest import events_from_ndjson
from mailstats.store import Store
from mailstats.timefmt import parse_time
from mailstats.web.app import App
from tests.helpers import (
    FIELDS,
    REPORTED,
    REPORTS,
    Mailing,
    error,
    local,
    mailing,
    message_key,
    page,
    report_with_key,
    total,
    totals,
)
from tests.test_reports import BOUNCES, COMPLAINTS, MALFORMED


def post_ndjson(http: TestClient, token: str, body: bytes) -> httpx.Response:
    return http.post(
        f"/v2/ms/events?access_token={token}",
        content=body,
        headers={"content-type": "application/x-ndjson"},
    )


def post_report(
    http: TestClient, token: str, raw: bytes, ctype: str = "message/rfc822"
) -> httpx.Response:
    return http.post(
        f"/v2/ms/reports?access_token={token}", content=raw, headers={"content-type": ctype}
    )


def ndjson(*items: Any) -> bytes:
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


def local_time(moment: Any) -> str:
    return local(int(moment.timestamp()))


def nothing_stored(http: TestClient, token: str) -> bool:
    return set(totals(http, token).values()) == {0}


# --- POST ms/events -----------------------------------------------------------------------


def test_bulk_stores_many_events_of_several_kinds(http: TestClient, token: str, m: Mailing) -> None:
    d0, d1 = m.destinations
    report = {"feedback-type": "abuse", "original-rcpt-to": ["<r1@example.org>"]}
    lines = [
        {"kind": "deliveries", "destination": d0, "timestamp": "2024-07-01 12:00:00",
         "attempts": 1},
        {"kind": "errors", "destination": str(d1), "timestamp": "2024-07-01 12:00:01",
         "status": "5.1.1", "errorcode": "550", "description": "Usu\u00e1rio desconhecido",
         "errortype": "hard"},
        {"kind": "deliveries", "destination": str(d1), "timestamp": "2024-01-15 12:00:00",
         "attempts": 4},
        {"kind": "abuses", "destination": d1, "timestamp": "2024-07-02 00:00:00",
         "report": report},
        {"kind": "errors", "destination": d0, "timestamp": "2024-07-01 12:00:02",
         "status": "4.2.2", "errorcode": "452", "description": "Mailbox full",
         "errortype": "soft"},
    ]  # fmt: skip
    body = ndjson(*lines[:2]) + b"\n  \n" + ndjson(*lines[2:]).replace(b"\n", b"\r\n")
    r = post_ndjson(http, token, body)
    assert (r.status_code, r.content) == (201, b""), r.text
    expected: dict[str, list[dict[str, Any]]] = {kind: [] for kind in REPORTED}
    for line in lines:
        dest = int(line["destination"])
        own = {k: v for k, v in line.items() if k not in ("kind", "destination")}
        n = m.destinations.index(dest)
        expected[line["kind"]].append(
            {"mailing": str(m.id), **own, "destination": str(dest), "profile": f"P{n}",
             "subprofile": f"S{n}"}
        )  # fmt: skip
    for kind in REPORTED:
        data = page(http, token, f"ms/{kind}")["data"]
        assert [list(item) for item in data] == [FIELDS[kind]] * len(expected[kind])
        assert [{k: v for k, v in i.items() if k != "ID"} for i in data] == expected[kind]
    assert total(http, token, f"ms/destination/{d1}/errors") == 1


def test_bulk_takes_thousands_of_lines(http: TestClient, token: str, m: Mailing) -> None:
    lines = [
        {"kind": "deliveries", "destination": m.destinations[n % 2], "attempts": 1 + n % 3}
        for n in range(1200)
    ]
    r = post_ndjson(http, token, ndjson(*lines))
    assert r.status_code == 201, r.text
    assert total(http, token, "ms/deliveries") == 1200
    assert total(http, token, "ms/deliveries", "unique=1") == 2
    assert total(http, token, f"ms/destination/{m.destinations[0]}/deliveries") == 600


def bad_lines(m: Mailing, stranger: Mailing) -> list[tuple[bytes, str]]:
    """(a bad line, what the error message says after "Line N: ")."""
    d = m.destinations[0]

    def line(**item: Any) -> bytes:
        return json.dumps(item).encode()

    return [
        (b"not json", "not valid JSON"),
        (b'{"kind": "deliveries", "destination": 1', "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'"deliveries"', "not a JSON object"),
        (line(kind="clicks", destination=d), "'kind' must be one of deliveries, errors, abuses"),
        (line(kind="impressions", destination=d), "'kind' must be one of"),
        (line(kind="unsubscribes", destination=d), "'kind' must be one of"),
        (line(kind="Deliveries", destination=d), "'kind' must be one of"),
        (line(destination=d, attempts=1), "'kind' must be one of"),
        (line(kind="deliveries"), "'destination' must be a destination ID"),
        (line(kind="deliveries", destination="abc"), "'destination' must be a destination ID"),
        (line(kind="deliveries", destination=-1), "'destination' must be a destination ID"),
        (line(kind="deliveries", destination=True), "'destination' must be a destination ID"),
        (line(kind="deliveries", destination=1.5), "'destination' must be a destination ID"),
        (line(kind="deliveries", destination="\u00b2"), "'destination' must be a destination ID"),
        (line(kind="deliveries", destination=999999), "No entity with supplied ID"),
        (line(kind="errors", destination=stranger.destinations[0]), "No entity with supplied ID"),
        (line(kind="deliveries", destination=d, attempts="x"), "'attempts'"),
        (line(kind="deliveries", destination=d, timestamp="2024-02-30 12:00:00"), "'timestamp'"),
        (line(kind="deliveries", destination=d, timestamp=1719828000), "'timestamp'"),
        (line(kind="errors", destination=d, status=["5.1.1"]), "'status'"),
        (line(kind="abuses", destination=d, report="spam"), "'report'"),
        (line(kind="deliveries", destination=d, key=""), "'key'"),
    ]


def test_bulk_with_a_bad_line_anywhere_stores_nothing(
    http: TestClient, token: str, m: Mailing, stranger: Mailing
) -> None:
    good = [
        json.dumps({"kind": kind, "destination": dest, "attempts": 1}
                   if kind == "deliveries" else {"kind": kind, "destination": dest}).encode()
        for dest in m.destinations for kind in REPORTED
    ]  # fmt: skip
    wrong = {}
    for bad, message in bad_lines(m, stranger):
        for at in (0, 3, len(good)):
            body = b"\n".join([*good[:at], bad, *good[at:]]) + b"\n"
            r = post_ndjson(http, token, body)
            got = r.json().get("error", {}).get("message", "") if r.status_code == 400 else ""
            if not got.startswith(f"Line {at + 1}: ") or message not in got:
                wrong[(bad, at)] = (r.status_code, r.text)
    assert wrong == {}
    # Blank lines count: the line number is the one an editor shows.
    r = post_ndjson(http, token, good[0] + b"\n\n\r\n" + good[1] + b"\nnot json\n")
    assert error(r).startswith("Line 5: not valid JSON")
    assert nothing_stored(http, token)
    # An empty body, and no token.
    for body in (b"", b"\n", b"\n \r\n\t\n"):
        assert error(post_ndjson(http, token, body)) == "Request body holds no events"
    line = {"kind": "deliveries", "destination": m.destinations[0], "attempts": 2}
    assert error(post_ndjson(http, "not-a-token", ndjson(line))) == "Invalid access token"
    assert nothing_stored(http, token)
    # A line without a final newline is a line too.
    assert post_ndjson(http, token, b"\n".join(good)).status_code == 201
    assert totals(http, token) == {
        "clicks": 0, "impressions": 0, "deliveries": 2, "errors": 2, "abuses": 2,
        "unsubscribes": 0,
    }  # fmt: skip


def test_bulk_events_take_the_emailing_of_their_own_destination(
    app: App, http: TestClient, token: str
) -> None:
    mailings = [mailing(app, http, token, destinations=3) for _ in range(3)]
    dests = [(mm.id, dest) for mm in mailings for dest in mm.destinations]
    lines = [
        {"kind": "deliveries", "destination": dests[n * 4 % len(dests)][1], "attempts": 1}
        for n in range(2 * len(dests))
    ]
    assert post_ndjson(http, token, ndjson(*lines)).status_code == 201
    emailing_of = dict((dest, emailing) for emailing, dest in dests)
    data = page(http, token, "ms/deliveries", "limit=100")["data"]
    assert sorted((int(i["destination"]), int(i["mailing"])) for i in data) == sorted(
        (line["destination"], emailing_of[line["destination"]]) for line in lines
    )
    for mm in mailings:
        assert total(http, token, f"ms/emailing/{mm.id}/deliveries") == 6


def test_bulk_names_the_first_failing_line_whatever_fails_later(
    http: TestClient, token: str, m: Mailing, stranger: Mailing
) -> None:
    d, theirs = m.destinations[0], stranger.destinations[0]

    def line(**item: Any) -> dict[str, Any]:
        return {"kind": "deliveries", **item}

    good = line(destination=d)
    cases = [
        # An unknown destination before a line that is not even JSON.
        ([good, line(destination=theirs), good], b"{", "Line 3: No entity with supplied ID"),
        # A line with an unknown destination and a bad value fails on its destination.
        ([good, line(destination=theirs, attempts="x")], b"", "Line 3: No entity with supplied ID"),
        ([line(destination=999999, timestamp=1)], b"", "Line 2: No entity with supplied ID"),
        # A bad value before an unknown destination.
        ([good, line(destination=d, attempts=-1), line(destination=theirs)], b"",
         "Line 3: Invalid value for 'attempts': a non-negative integer"),
        # The kind and the destination's form are checked before it is looked up.
        ([good, {"kind": "clicks", "destination": theirs}], b"",
         "Line 3: 'kind' must be one of deliveries, errors, abuses"),
        # Numbers no stored ID can reach are unknown destinations, on every backend.
        ([line(destination=2**63)], b"", "Line 2: No entity with supplied ID"),
        ([line(destination="9" * 30)], b"", "Line 2: No entity with supplied ID"),
    ]  # fmt: skip
    wrong = {}
    for n, (items, tail, message) in enumerate(cases):
        r = post_ndjson(http, token, b"\n" + ndjson(*items) + tail)
        if r.status_code != 400 or r.json()["error"]["message"] != message:
            wrong[n] = (r.status_code, r.text)
    assert wrong == {}
    assert nothing_stored(http, token)


def hours_around_clock_changes(tz: ZoneInfo, year: int) -> list[str]:
    """Local hours ("YYYY-MM-DD HH") from three before to two after each change in `year`."""
    epoch = int(datetime(year, 1, 1, tzinfo=tz).timestamp()) - 86400
    hours: set[str] = set()
    before = datetime.fromtimestamp(epoch, tz).utcoffset()
    for at in range(epoch, epoch + 366 * 86400, 900):
        now = datetime.fromtimestamp(at, tz)
        if now.utcoffset() != before:
            hours.update(f"{now + timedelta(hours=h):%Y-%m-%d %H}" for h in range(-3, 3))
        before = now.utcoffset()
    return sorted(hours)


@pytest.mark.backends("sqlite")
def test_bulk_timestamps_read_as_every_other_time_parameter(store: Store) -> None:
    """Around clock changes, also those not on the hour or not by an hour, and in hours that
    do not exist or happen twice, each line's time is parse_time's reading of it."""
    account = store.ensure_account("acme", "Europe/Amsterdam")
    emailing = store.create_emailing(
        account.id, subject="s", from_name="f", from_email="f@example.org", html="<p>",
        text=None, tags=[], type="mass", links=[],
    )  # fmt: skip
    [dest] = store.create_destinations(account.id, emailing, [{"email": "r@example.org"}])
    zones = [("Europe/Amsterdam", 2024), ("Australia/Lord_Howe", 2024),
             ("America/St_Johns", 2024), ("Asia/Kathmandu", 1986), ("Pacific/Apia", 2011)]  # fmt: skip
    seconds = [0, 1, 59, 60, 1799, 1800, 1801, 2700, 3599]
    wrong = {}
    for name, year in zones:
        tz = ZoneInfo(name)
        hours = hours_around_clock_changes(tz, year)
        assert len(hours) >= 6, name
        times = [f"{h[:10]}{sep}{h[11:]}:{s // 60:02d}:{s % 60:02d}"
                 for h in hours for s in seconds for sep in (" ", "T")]  # fmt: skip
        lines = [json.dumps({"kind": "deliveries", "destination": dest, "timestamp": t}).encode()
                 for t in times]  # fmt: skip
        events = events_from_ndjson(store, account, lines, tz)
        for t, event in zip(times, events, strict=True):
            if event.ts != parse_time(t, tz, "timestamp"):
                wrong[(name, t)] = event.ts
    assert wrong == {}
    tz = ZoneInfo("Europe/Amsterdam")
    for bad in ["2024-07-01 12:60:00", "2024-07-01 24:00:00", "1969-12-31 23:59:59",
                "2024-13-01 00:00:00", " 2024-07-01 12:00:00x", "2024-07-01 12:00:00.5"]:  # fmt: skip
        with pytest.raises(InvalidParameter) as raised:
            parse_time(bad, tz, "timestamp")
        line = json.dumps({"kind": "deliveries", "destination": dest, "timestamp": bad})
        with pytest.raises(InvalidParameter) as got:
            events_from_ndjson(store, account, [line.encode()], tz)
        assert got.value.message == f"Line 1: {raised.value.message}"


def test_bulk_idempotency_keys(http: TestClient, token: str, m: Mailing) -> None:
    d0, d1 = m.destinations
    lines = [
        {"kind": "deliveries", "destination": d0, "attempts": 1, "key": "d-1",
         "timestamp": "2024-07-01 12:00:00"},
        {"kind": "errors", "destination": d1, "status": "5.1.1", "key": "e-1",
         "timestamp": "2024-07-01 12:00:00"},
        {"kind": "abuses", "destination": d1, "report": {"feedback-type": "abuse"},
         "key": "a-1", "timestamp": "2024-07-01 12:00:00"},
    ]  # fmt: skip
    body = ndjson(*lines, lines[0])  # the same event twice in one request
    for _ in range(2):  # and the whole request retried
        assert post_ndjson(http, token, body).status_code == 201
    assert totals(http, token) == {
        "clicks": 0, "impressions": 0, "deliveries": 1, "errors": 1, "abuses": 1,
        "unsubscribes": 0,
    }  # fmt: skip
    # The single-event endpoint shares the keys.
    r = http.post(
        f"/v2/ms/destination/{d0}/deliveries",
        params={"access_token": token},
        json={k: v for k, v in lines[0].items() if k not in ("kind", "destination")},
    )
    assert r.status_code == 201
    assert total(http, token, "ms/deliveries") == 1


# --- POST ms/reports ----------------------------------------------------------------------


def tag(name: str) -> str:
    """The placeholder tag a sample report names its original message by."""
    found = re.search(rb"ms-[A-Za-z0-9]{8,}", (REPORTS / name).read_bytes())
    assert found is not None
    return found.group().decode()


def keyed(report: dict[str, Any], placeholder: str, key: str) -> Any:
    """A parsed sample report as it reads once its placeholder tag is the real key."""
    return json.loads(json.dumps(report).replace(placeholder, key))


def ingest_samples(
    app: App, http: TestClient, token: str, names: list[str]
) -> tuple[Mailing, dict[str, int]]:
    """Post each sample report, made to name a destination of its own; name -> destination."""
    mm = mailing(app, http, token, destinations=len(names))
    dests = dict(zip(names, mm.destinations, strict=True))
    for name, dest in dests.items():
        r = post_report(http, token, report_with_key(name, message_key(app, dest)))
        assert (r.status_code, r.content) == (201, b""), (name, r.text)
    return mm, dests


def test_bounce_samples_become_errors(app: App, http: TestClient, token: str) -> None:
    mm, dests = ingest_samples(app, http, token, list(BOUNCES))
    wrong = {}
    for n, (name, dest) in enumerate(dests.items()):
        data = page(http, token, f"ms/destination/{dest}/errors")["data"]
        expected = [
            {"mailing": str(mm.id), "timestamp": local_time(event.timestamp),
             "status": event.status, "errorcode": event.errorcode,
             "description": event.description, "errortype": event.errortype,
             "destination": str(dest), "profile": f"P{n}", "subprofile": f"S{n}"}
            for event in BOUNCES[name]
        ]  # fmt: skip
        if [list(i) for i in data] != [FIELDS["errors"]] * len(expected) or [
            {k: v for k, v in i.items() if k != "ID"} for i in data
        ] != expected:
            wrong[name] = data
    assert wrong == {}
    assert total(http, token, "ms/errors") == sum(len(events) for events in BOUNCES.values())
    assert total(http, token, "ms/abuses") == 0


def test_complaint_samples_become_abuses(app: App, http: TestClient, token: str) -> None:
    mm, dests = ingest_samples(app, http, token, list(COMPLAINTS))
    wrong = {}
    for n, (name, dest) in enumerate(dests.items()):
        data = page(http, token, f"ms/destination/{dest}/abuses")["data"]
        expected = [
            {"mailing": str(mm.id), "timestamp": local_time(event.timestamp),
             "report": keyed(event.report, tag(name), message_key(app, dest)),
             "destination": str(dest), "profile": f"P{n}",
             "subprofile": f"S{n}"}
            for event in COMPLAINTS[name]
        ]  # fmt: skip
        if [list(i) for i in data] != [FIELDS["abuses"]] * len(expected) or [
            {k: v for k, v in i.items() if k != "ID"} for i in data
        ] != expected:
            wrong[name] = data
    assert wrong == {}
    [item, *_] = page(http, token, "ms/abuses")["data"]
    assert item["report"]["feedback-type"] == "abuse" and isinstance(item["report"], dict)
    assert total(http, token, "ms/abuses") == len(COMPLAINTS)
    assert total(http, token, "ms/errors") == 0


def test_malformed_reports_are_refused_and_store_nothing(
    app: App, http: TestClient, token: str, m: Mailing
) -> None:
    key = message_key(app, m.destinations[0])
    wrong = {}
    for name, pattern in MALFORMED.items():
        r = post_report(http, token, report_with_key(name, key))
        if r.status_code != 400 or not re.fullmatch(f"Invalid report: .*{pattern}.*", error(r)):
            wrong[name] = r.text
    for raw, pattern in [(b"", "empty report"), (b"Hello there\r\n", "not a bounce or complaint")]:
        r = post_report(http, token, raw)
        if r.status_code != 400 or not re.fullmatch(f"Invalid report: .*{pattern}.*", error(r)):
            wrong[raw] = r.text
    assert wrong == {}
    good = report_with_key("dsn/postfix_user_unknown.eml", key)
    assert "message/rfc822" in error(post_report(http, token, good, ctype="text/html"))
    assert error(post_report(http, "not-a-token", good)) == "Invalid access token"
    assert nothing_stored(http, token)
    assert post_report(http, token, good).status_code == 201  # the same, well formed
    assert total(http, token, "ms/errors") == 1


def test_a_report_for_no_destination_of_the_account_is_refused(
    app: App, http: TestClient, token: str, m: Mailing, stranger: Mailing
) -> None:
    theirs = message_key(app, stranger.destinations[0], account="other")
    other = app.store.create_token("other", "Europe/Amsterdam")
    for name in ("dsn/gmail_no_such_user.eml", "arf/gmail_fbl.eml"):
        for raw in (report_with_key(name, tag(name)), report_with_key(name, theirs)):
            r = post_report(http, token, raw)
            assert error(r) == "Invalid report: it names no destination of this account"
    assert nothing_stored(http, token) and nothing_stored(http, other)


def test_the_same_report_twice_is_stored_once(app: App, http: TestClient, token: str) -> None:
    mm = mailing(app, http, token, destinations=2)
    bounce = report_with_key("dsn/exchange_online_ndr.eml", message_key(app, mm.destinations[0]))
    complaint = report_with_key("arf/outlook_jmrp.eml", message_key(app, mm.destinations[1]))
    for _ in range(3):
        assert post_report(http, token, bounce).status_code == 201
        assert post_report(http, token, complaint).status_code == 201
    assert (total(http, token, "ms/errors"), total(http, token, "ms/abuses")) == (1, 1)
    # The same bounce for another destination is another event.
    other = report_with_key("dsn/exchange_online_ndr.eml", message_key(app, mm.destinations[1]))
    assert post_report(http, token, other).status_code == 201
    assert total(http, token, "ms/errors") == 2
