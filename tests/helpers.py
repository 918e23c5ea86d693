"""Shared helpers for the API, tracking and isolation tests: register, render, click, list."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx
from starlette.testclient import TestClient

from mailstats.kinds import CLICKS, KINDS
from mailstats.store import Event, Store
from mailstats.tracking.devices import hit_values
from mailstats.web.app import App

PUBLIC = "http://t.test"
AMS = ZoneInfo("Europe/Amsterdam")
SENDER = {"name": "Shop", "email": "news@shop.example"}
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
CLICK_FIELDS = [
    "ID", "mailing", "link", "timestamp", "ip", "useragent", "destination", "profile", "subprofile",
]  # fmt: skip
ENVELOPE = ["start", "limit", "count", "data", "total"]
JSON = "application/json"
TRACKED = re.compile(r'href="http://t\.test(/c/[A-Za-z0-9_-]+)"')
PIXEL = re.compile(r'src="http://t\.test(/o/[A-Za-z0-9_-]+)"')
# The invisible trap link every tracked body has (issue 12): not one a recipient follows.
TRAP = re.compile(r'<a href="http://t\.test(/c/[A-Za-z0-9_-]+)" aria-hidden="true"')
TWO_LINKS = (
    "<html><body>"
    '<a href="https://shop.example/a?id={$profile.customerid}">A</a>'
    '<a href="https://shop.example/b">B</a>'
    "</body></html>"
)


@dataclass(frozen=True)
class Mailing:
    """An emailing as the tests see it: its ID, its destinations and its links' IDs and URLs."""

    id: int
    destinations: list[int]
    links: list[int]
    urls: list[str]


def query(*pairs: tuple[str, str]) -> str:
    """A raw query string: keys as given (so `fields%5B0%5D` stays PHP's), values encoded."""
    return "&".join(f"{key}={quote(value, safe='')}" for key, value in pairs)


def get(http: TestClient, token: str, resource: str, qs: str = "") -> httpx.Response:
    """GET /v2/<resource> with the token as `access_token` and a raw query string."""
    return http.get(f"/v2/{resource}?access_token={token}" + (f"&{qs}" if qs else ""))


def page(http: TestClient, token: str, resource: str = "ms/clicks", qs: str = "") -> Any:
    """A list answer that must succeed: 200, exact content type, envelope keys in order."""
    r = get(http, token, resource, qs)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == JSON
    body = r.json()
    assert list(body)[:4] == ENVELOPE[:4]
    return body


def ids(body: Any) -> list[int]:
    return [int(item["ID"]) for item in body["data"]]


def error(r: httpx.Response) -> str:
    """The message of a Copernica error answer, after checking its whole shape."""
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == JSON
    body = r.json()
    assert list(body) == ["error"] and list(body["error"]) == ["message"], body
    message = body["error"]["message"]
    assert isinstance(message, str)
    return message


def make_emailing(http: TestClient, token: str, html: str, subject: str = "Hi") -> int:
    r = http.post(
        "/v2/ms/emailings",
        params={"access_token": token},
        json={"subject": subject, "from_address": SENDER, "html": html},
    )
    assert r.status_code == 201, r.text
    return int(r.headers["x-created"])


def add_destinations(
    http: TestClient, token: str, emailing: int, *items: dict[str, Any]
) -> list[int]:
    """Register recipients (one per item; a plain one when none given), return their IDs."""
    data: Any = list(items) if items else {"email": "ann@example.org"}
    r = http.post(
        f"/v2/ms/emailing/{emailing}/destinations", params={"access_token": token}, json=data
    )
    assert r.status_code == 201, r.text
    return [int(part) for part in r.headers["x-created"].split(",")]


def body_html(http: TestClient, token: str, destination: int) -> str:
    r = http.get(f"/v2/ms/destination/{destination}/body/html", params={"access_token": token})
    assert r.status_code == 200, r.text
    return r.text


def click_paths(http: TestClient, token: str, destination: int) -> list[str]:
    """The `/c/<token>` paths of a destination's tracked HTML, in document order."""
    html = body_html(http, token, destination)
    traps = set(TRAP.findall(html))
    return [path for path in TRACKED.findall(html) if path not in traps]


def click(
    http: TestClient, token: str, destination: int, link: int = 0, ua: str = UA
) -> httpx.Response:
    """Follow the destination's `link`-th tracked link as a recipient would; it must redirect."""
    r = http.get(click_paths(http, token, destination)[link], headers={"user-agent": ua})
    assert r.status_code == 302, r.text
    return r


def mailing(
    app: App, http: TestClient, token: str, html: str = TWO_LINKS, destinations: int = 2
) -> Mailing:
    """An emailing with `destinations` recipients (profile P<n>, subprofile S<n>)."""
    emailing = make_emailing(http, token, html)
    items = [
        {"email": f"r{n}@example.org", "profile": f"P{n}", "subprofile": f"S{n}",
         "fields": {"customerid": f"c{n}"}}
        for n in range(destinations)
    ]  # fmt: skip
    dests = add_destinations(http, token, emailing, *items)
    links = app.store.links(emailing)
    return Mailing(emailing, dests, [k.id for k in links], [k.url for k in links])


def insert_clicks(
    app: App,
    destination: int,
    link: int,
    times: Sequence[int],
    ip: str = "192.0.2.1",
    ua: str = UA,
) -> None:
    """Store clicks at chosen UTC epochs directly, as the tracking endpoint would."""
    found = app.store.tracking_destination(destination)
    assert found is not None
    account, emailing, _ = found
    app.store.insert_events(
        [
            Event(
                CLICKS,
                secrets.token_bytes(16),
                ts,
                account,
                emailing,
                destination,
                link,
                hit_values(ip, ua),
            )
            for ts in times
        ]
    )


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=ZoneInfo("UTC")).timestamp())


def local(epoch: int) -> str:
    """An epoch as the API writes it: Amsterdam wall-clock time."""
    return datetime.fromtimestamp(epoch, AMS).strftime("%Y-%m-%d %H:%M:%S")


# --- the other five kinds (issue 4) -------------------------------------------------------

# Each kind's item fields in compat.md section 4 order, written out rather than derived.
FIELDS: dict[str, list[str]] = {
    "clicks": CLICK_FIELDS,
    "impressions": [
        "ID", "mailing", "timestamp", "ip", "useragent", "device", "destination", "profile",
        "subprofile",
    ],
    "deliveries": ["ID", "mailing", "timestamp", "attempts", "destination", "profile", "subprofile"],
    "errors": [
        "ID", "mailing", "timestamp", "status", "errorcode", "description", "errortype",
        "destination", "profile", "subprofile",
    ],
    "abuses": ["ID", "mailing", "timestamp", "report", "destination", "profile", "subprofile"],
    "unsubscribes": [
        "ID", "mailing", "timestamp", "ip", "useragent", "destination", "profile", "subprofile",
    ],
}  # fmt: skip
HITS = ("clicks", "impressions", "unsubscribes")
OTHER_KINDS = ("impressions", "deliveries", "errors", "abuses", "unsubscribes")
KIND_NAMES = ("clicks", *OTHER_KINDS)
REPORTED = ("deliveries", "errors", "abuses")
STATISTICS_KEYS = [
    "destinations", "abuses", "clicks", "deliveries", "errors", "impressions", "retries",
    "unsubscribes",
]  # fmt: skip
UNSUBSCRIBE = re.compile(r"<http://t\.test(/u/[A-Za-z0-9_-]+)>")
REPORTS = Path(__file__).parent / "fixtures" / "reports"
_REPORT_TAG = re.compile(rb"ms-[A-Za-z0-9]{8,}")


def insert_events(
    app: App,
    kind: str,
    destination: int,
    times: Sequence[int],
    values: Sequence[Any] = (),
    link: int = 0,
) -> None:
    """Store events of any kind at chosen UTC epochs directly, as the endpoints would.

    `values` are the kind's own columns in order; an abuse report is given as its JSON text.
    """
    found = app.store.tracking_destination(destination)
    assert found is not None
    account, emailing, _ = found
    if kind in HITS and 2 <= len(values) < len(KINDS[kind].columns):
        # a hit's device class, OS and client, parsed from its agent as at capture (a
        # device given stays as given)
        ip, ua, *given = values
        parsed = hit_values(ip, ua)
        values = (*parsed[:2], *(given or parsed[2:3]), *parsed[3:])
    app.store.insert_events(
        [
            Event(
                KINDS[kind], secrets.token_bytes(16), ts, account, emailing, destination, link,
                (*values, *[None] * (len(KINDS[kind].columns) - len(values))),  # extended: none
            )
            for ts in times
        ]
    )  # fmt: skip


def pixel_path(http: TestClient, token: str, destination: int) -> str:
    """The `/o/<token>` path of a destination's open pixel, from its tracked HTML."""
    found = PIXEL.findall(body_html(http, token, destination))
    assert len(found) == 1, found
    return str(found[0])


def unsubscribe_path(http: TestClient, token: str, destination: int) -> str:
    """The `/u/<token>` path of a destination, from its List-Unsubscribe header value."""
    r = get(http, token, f"ms/destination/{destination}/headers")
    assert r.status_code == 200, r.text
    match = UNSUBSCRIBE.fullmatch(r.json()["List-Unsubscribe"])
    assert match is not None, r.text
    return match[1]


def post_event(
    http: TestClient, token: str, destination: int | str, kind: str, data: Any,
    scope: str = "destination",
) -> httpx.Response:  # fmt: skip
    """POST ms/<scope>/<destination>/<kind> with a JSON body, as the sending pipeline does."""
    return http.post(
        f"/v2/ms/{scope}/{destination}/{kind}", params={"access_token": token}, json=data
    )


def total(http: TestClient, token: str, resource: str, qs: str = "") -> int:
    """The `total` of a list answer that must succeed."""
    count: int = page(http, token, resource, qs)["total"]
    return count


def totals(http: TestClient, token: str, resource: str = "ms") -> dict[str, int]:
    """The total of every kind's list under `resource` (ms, ms/emailing/$id, ...)."""
    return {kind: total(http, token, f"{resource}/{kind}") for kind in KIND_NAMES}


def message_key(app: App, destination: int, account: str = "acme") -> str:
    return app.store.destination(app.store.account(account).id, destination).message_key


def report_with_key(name: str, key: str) -> bytes:
    """A sample report from fixtures/reports with its placeholder tag made `key`."""
    raw = (REPORTS / name).read_bytes()
    assert len(set(_REPORT_TAG.findall(raw))) <= 1, name
    return _REPORT_TAG.sub(key.encode(), raw)


# Five times in ascending order: one in winter (CET, UTC+1), the rest in summer (CEST,
# UTC+2) around 2024-07-01 12:00:00 Amsterdam time; LOCAL is how the API shows them.
TIMES = [
    utc(2024, 1, 15, 11, 0, 0),
    utc(2024, 7, 1, 9, 59, 59),
    utc(2024, 7, 1, 10, 0, 0),
    utc(2024, 7, 1, 10, 0, 1),
    utc(2024, 7, 1, 22, 0, 0),
]
LOCAL = [
    "2024-01-15 12:00:00",
    "2024-07-01 11:59:59",
    "2024-07-01 12:00:00",
    "2024-07-01 12:00:01",
    "2024-07-02 00:00:00",
]
NOON = "2024-07-01 12:00:00"


def setup_mailing(
    store: Store, destinations: int = 3, account_name: str = "acme"
) -> tuple[int, int, list[int], int]:
    """(account, emailing, destinations, link) made in the store, to hang events on."""
    account = store.ensure_account(account_name, "Europe/Amsterdam").id
    emailing = store.create_emailing(
        account, subject="s", from_name="f", from_email="f@example.org", html="<a>x</a>",
        text=None, tags=[], type="mass", links=[(0, 8, "https://shop.example/x")],
    )  # fmt: skip
    items = [{"email": f"r{n}@example.org"} for n in range(destinations)]
    dests = store.create_destinations(account, emailing, items)
    return account, emailing, dests, store.links(emailing)[0].id
