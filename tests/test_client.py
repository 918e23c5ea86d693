"""mailstats.client against the real app in-process, and once against a real `mailstats serve`."""

from __future__ import annotations

import dataclasses
import re
import signal
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from starlette.testclient import TestClient

from mailstats.client import ApiError, Client, HTTPResponse
from mailstats.settings import Settings
from mailstats.web.app import App, create_app
from tests import server
from tests.helpers import CLICK_FIELDS, ENVELOPE, PUBLIC, SENDER, UA, insert_clicks, utc

HTML = (
    "<html><body>"
    '<a href="https://shop.example/p/{$profile.customerid}">Shop</a>'
    '<a href="https://shop.example/b">B</a>'
    "</body></html>"
)
DAY = utc(2024, 5, 1, 12)


class Recorder:
    """An HTTPSession that hands every request to the app and keeps the query strings sent."""

    def __init__(self, http: TestClient) -> None:
        self.http = http
        self.queries: list[list[tuple[str, str]]] = []

    def request(
        self,
        method: str,
        url: str,
        *,
        params: tuple[tuple[str, str], ...] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HTTPResponse:
        r = self.http.request(
            method, url, params=params, json=json, content=content, headers=headers
        )
        self.queries.append(parse_qsl(r.request.url.query.decode(), keep_blank_values=True))
        return r

    def sent(self, name: str) -> list[str]:
        """The values of `name` in each request, in order."""
        return [value for query in self.queries for key, value in query if key == name]


@pytest.fixture
def api(http: TestClient, token: str) -> Iterator[Client]:
    with Client(PUBLIC, token, http=http) as client:
        yield client


def emailing(api: Client, destinations: int = 2) -> tuple[int, list[int]]:
    """An emailing made through the client, with `destinations` recipients."""
    created = api.post("ms/emailings", {"subject": "Hi", "from_address": SENDER, "html": HTML})
    assert isinstance(created, int)
    items = [
        {"email": f"r{n}@example.org", "fields": {"customerid": f"c{n}"}}
        for n in range(destinations)
    ]
    dests = api.post(f"ms/emailing/{created}/destinations", items)
    if isinstance(dests, int):  # one ID comes back as an int
        dests = [dests]
    assert isinstance(dests, list)
    return created, dests


def clicks(app: App, api: Client, count: int) -> list[str]:
    """`count` clicks stored as the tracking endpoint stores them; their IDs, in order."""
    mailing, dests = emailing(api)
    link = app.store.links(mailing)[0].id
    insert_clicks(app, dests[0], link, [DAY + n for n in range(count)])
    found = api.get("ms/clicks", {"limit": 1000})
    assert found["total"] == count
    return [item["ID"] for item in found["data"]]


# --- get and post ------------------------------------------------------------------------


def test_get_returns_the_envelope(app: App, api: Client) -> None:
    ids = clicks(app, api, 3)
    page = api.get("ms/clicks")
    assert list(page) == ENVELOPE
    assert (page["start"], page["limit"], page["count"], page["total"]) == (0, 100, 3, 3)
    assert [item["ID"] for item in page["data"]] == ids
    assert list(page["data"][0]) == CLICK_FIELDS
    assert api.get("/ms/clicks/", {"start": 1, "limit": 1, "total": False}) == {
        "start": 1, "limit": 1, "count": 1, "data": [page["data"][1]],
    }  # fmt: skip


def test_get_of_a_non_json_answer_returns_its_text(api: Client) -> None:
    _, dests = emailing(api, 1)
    html = api.get(f"ms/destination/{dests[0]}/body/html")
    assert isinstance(html, str)
    assert re.search(r'href="http://t\.test/c/[A-Za-z0-9_-]+">Shop</a>', html)


def test_post_parses_the_created_ids(api: Client) -> None:
    mailing = api.post("ms/emailings", {"subject": "Sale", "from_address": SENDER, "html": HTML})
    assert isinstance(mailing, int)
    one = api.post(f"ms/emailing/{mailing}/destinations", {"email": "ann@example.org"})
    assert isinstance(one, int)
    many = api.post(
        f"ms/emailing/{mailing}/destinations",
        [{"email": f"r{n}@example.org", "profile": n} for n in range(3)],
    )
    assert isinstance(many, list) and len(many) == 3
    assert all(isinstance(i, int) for i in many) and sorted(many) == many and one < many[0]
    assert api.get(f"ms/emailing/{mailing}")["subject"] == "Sale"
    listed = api.get(f"ms/emailing/{mailing}/destinations")
    assert [int(d["ID"]) for d in listed["data"]] == [one, *many]
    assert api.get(f"ms/destination/{many[2]}")["profile"] == "2"


# --- iterate -----------------------------------------------------------------------------


def test_iterate_yields_every_item_once_in_order(app: App, http: TestClient, token: str) -> None:
    recorder = Recorder(http)
    api = Client(PUBLIC, token, http=recorder)
    ids = clicks(app, api, 25)
    recorder.queries.clear()
    items = list(api.iterate("ms/clicks", batch=7))
    assert [item["ID"] for item in items] == ids
    assert [list(item) for item in items] == [CLICK_FIELDS] * 25
    assert recorder.sent("start") == ["0", "7", "14", "21"]
    assert recorder.sent("limit") == ["7"] * 4 and recorder.sent("total") == ["1"] * 4


def test_iterate_stops_when_start_reaches_total(app: App, http: TestClient, token: str) -> None:
    recorder = Recorder(http)
    api = Client(PUBLIC, token, http=recorder)
    ids = clicks(app, api, 25)
    recorder.queries.clear()
    # 14 items in batches of 7: two requests, no third one for an empty page.
    selected = {"fields": [f"ID>{ids[2]}", f"ID<{ids[17]}"], "limit": 3, "total": False}
    assert [item["ID"] for item in api.iterate("ms/clicks", selected, batch=7)] == ids[3:17]
    assert recorder.sent("start") == ["0", "7"] and recorder.sent("total") == ["1", "1"]
    assert [item["ID"] for item in api.iterate("ms/clicks", {"start": 20}, batch=7)] == ids[20:]
    assert list(api.iterate(f"ms/emailing/{emailing(api)[0]}/clicks")) == []


def test_iterate_beyond_the_largest_page(app: App, api: Client) -> None:
    first_page = clicks(app, api, 1001)
    ids = [item["ID"] for item in api.iterate("ms/clicks")]
    assert ids[:1000] == first_page and len(ids) == 1001
    assert ids[1000:] == [item["ID"] for item in api.get("ms/clicks", {"start": 1000})["data"]]
    assert sorted(set(ids), key=int) == ids


# --- parameters --------------------------------------------------------------------------


def test_booleans_and_lists_are_sent_php_style(app: App, http: TestClient, token: str) -> None:
    recorder = Recorder(http)
    api = Client(PUBLIC, token, http=recorder)
    mailing, dests = emailing(api)
    first, second = (link.id for link in app.store.links(mailing))
    insert_clicks(app, dests[0], first, [DAY, DAY + 60])  # the second is not unique
    insert_clicks(app, dests[0], second, [DAY + 120])
    insert_clicks(app, dests[1], first, [DAY + 180, DAY + 240])  # nor the second here
    ids = [item["ID"] for item in api.get("ms/clicks")["data"]]
    recorder.queries.clear()

    page = api.get("ms/clicks", {"fields": [f"ID>{ids[0]}", f"ID<{ids[4]}"], "unique": True})
    assert [item["ID"] for item in page["data"]] == [ids[2], ids[3]]
    assert recorder.queries[-1] == [
        ("access_token", token),
        ("fields[]", f"ID>{ids[0]}"),
        ("fields[]", f"ID<{ids[4]}"),
        ("unique", "1"),
    ]
    page = api.get("ms/clicks", {"unique": False, "total": False, "begintime": None})
    assert page["count"] == 5 and "total" not in page
    assert recorder.queries[-1] == [("access_token", token), ("unique", "0"), ("total", "0")]
    page = api.get("ms/clicks", {"fields": ("ID>0",), "limit": 2, "unique": 1})
    assert recorder.queries[-1][1:] == [("fields[]", "ID>0"), ("limit", "2"), ("unique", "1")]
    assert page["count"] == 2 and page["total"] == 3


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "resource", "message"),
    [
        ("get", "ms/emailing/999999/clicks", "No entity with supplied ID"),
        ("get", "ms/destination/999999", "No entity with supplied ID"),
        ("post", "ms/emailing/999999/destinations", "No entity with supplied ID"),
        ("get", "ms/nothing", "Invalid method"),
        ("get", "ms/destination/999999/body/html", "No entity with supplied ID"),
        ("post", "ms/clicks", "Invalid method"),
    ],
)
def test_errors_carry_the_api_message(
    api: Client, method: str, resource: str, message: str
) -> None:
    with pytest.raises(ApiError) as raised:
        if method == "get":
            api.get(resource)
        else:
            api.post(resource, {"email": "ann@example.org"})
    assert (raised.value.message, raised.value.status, str(raised.value)) == (message, 400, message)
    assert raised.value.retry_after is None


def test_an_unknown_token_is_an_api_error(http: TestClient, token: str) -> None:
    for wrong in ("nope", token + "x"):
        with pytest.raises(ApiError, match=r"^Invalid access token$") as raised:
            Client(PUBLIC, wrong, http=http).get("ms/clicks")
        assert raised.value.status == 400
    with pytest.raises(ApiError, match=r"^Invalid access token$"):
        list(Client(PUBLIC, "nope", http=http).iterate("ms/clicks"))


def test_invalid_parameter_message_names_the_parameter(api: Client) -> None:
    with pytest.raises(ApiError, match="begintime") as raised:
        api.get("ms/clicks", {"begintime": "yesterday"})
    assert raised.value.status == 400


def test_rate_limited_answer_carries_retry_after(settings: Settings) -> None:
    limited = create_app(dataclasses.replace(settings, rate_limit=0.01, rate_burst=1))
    token = limited.store.create_token("acme", "Europe/Amsterdam")
    with TestClient(limited, base_url=PUBLIC) as http, Client(PUBLIC, token, http=http) as api:
        api.get("ms/clicks")
        with pytest.raises(ApiError) as raised:
            api.get("ms/clicks")
    assert raised.value.status == 429
    assert raised.value.message == "Rate limit exceeded"
    assert raised.value.retry_after is not None and 1 <= raised.value.retry_after <= 100
    limited.close()


def test_errors_from_what_is_not_the_api() -> None:
    # Stand-ins for servers that are not ours: a proxy's HTML error page, and a host that
    # answers an error with a status other than 400.
    def proxy(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/gone"):
            return httpx.Response(404, json={"error": {"message": "Gone"}})
        return httpx.Response(502, html="<h1>Bad Gateway</h1>", headers={"Retry-After": "30"})

    with httpx.Client(transport=httpx.MockTransport(proxy)) as http:
        api = Client("https://api.example", "t", http=http)
        with pytest.raises(ApiError, match=r"^HTTP 502: <h1>Bad Gateway</h1>$") as raised:
            api.get("ms/clicks")
        assert (raised.value.status, raised.value.retry_after) == (502, 30.0)
        with pytest.raises(ApiError, match=r"^Gone$") as raised:
            api.post("ms/gone", {})
        assert raised.value.status == 404


# --- export ------------------------------------------------------------------------------


def test_export_streams_the_whole_range(app: App, http: TestClient, token: str) -> None:
    api = Client(PUBLIC, token, http=http)  # TestClient has stream(): the streaming path
    buffered = Client(PUBLIC, token, http=Recorder(http))  # request() only: the other path
    ids = clicks(app, api, 25)
    every = list(api.iterate("ms/clicks"))
    assert list(api.export("ms/clicks")) == every
    assert list(buffered.export("ms/clicks")) == every
    assert [c["ID"] for c in api.export("ms/clicks", {"fields": [f"ID>{ids[20]}"]})] == ids[21:]
    rows = list(api.export("ms/clicks", format="csv"))
    assert [row["ID"] for row in rows] == ids and list(rows[0]) == CLICK_FIELDS
    assert rows[0]["profile"] == "" and rows[0]["useragent"] == UA
    with pytest.raises(ApiError, match=r"^No entity with supplied ID$"):
        next(api.export("ms/emailing/999999/clicks"))
    with pytest.raises(ApiError, match=r"^No entity with supplied ID$"):
        next(buffered.export("ms/emailing/999999/clicks"))


def test_export_where_the_server_has_no_such_format() -> None:
    # A stand-in for Copernica, which ignores `format` and answers with a page.
    def copernica(request: httpx.Request) -> httpx.Response:
        assert request.url.params["format"] == "ndjson"
        return httpx.Response(
            200, json={"start": 0, "limit": 100, "count": 0, "data": [], "total": 0}
        )

    with (
        httpx.Client(transport=httpx.MockTransport(copernica)) as http,
        pytest.raises(ApiError, match="mailstats extension, use iterate"),
    ):
        next(Client(token="t", http=http).export("ms/clicks"))


# --- the Client object -------------------------------------------------------------------


def test_client_basics(http: TestClient, token: str) -> None:
    with pytest.raises(ValueError):
        Client("http://t.test")
    client = Client("https://api.example/", token, version=3)
    assert client.url("/ms/clicks") == "https://api.example/v3/ms/clicks"
    assert token not in repr(client)
    client.close()
    with Client(PUBLIC, token, http=http) as api:
        api.get("ms/clicks")
    assert (
        http.get("/v2/ms/clicks", params={"access_token": token}).status_code == 200
    )  # still open


# --- over real HTTP ----------------------------------------------------------------------


def test_against_a_real_server(tmp_path: Any) -> None:
    db = str(tmp_path / "x.db")
    token = server.make_token(db)
    with server.running(db) as running, Client(running.url, token) as api:
        mailing = api.post("ms/emailings", {"subject": "Hi", "from_address": SENDER, "html": HTML})
        dest = api.post(
            f"ms/emailing/{mailing}/destinations",
            {"email": "ann@example.org", "profile": "42", "fields": {"customerid": "c 7"}},
        )
        assert isinstance(mailing, int) and isinstance(dest, int)
        html = api.get(f"ms/destination/{dest}/body/html")
        link = re.search(rf'href="({re.escape(running.url)}/c/[A-Za-z0-9_-]+)">Shop', html)
        assert link is not None

        r = httpx.get(link.group(1), headers={"user-agent": UA}, follow_redirects=False)
        assert r.status_code == 302
        assert r.headers["location"] == "https://shop.example/p/c%207"

        server.wait_derived(db)
        page = api.get("ms/clicks")
        assert (page["count"], page["total"]) == (1, 1)
        click = page["data"][0]
        assert click["link"] == "https://shop.example/p/{$profile.customerid}"
        assert (click["destination"], click["mailing"]) == (str(dest), str(mailing))
        assert (click["profile"], click["ip"], click["useragent"]) == ("42", "127.0.0.1", UA)
        assert [c["ID"] for c in api.iterate("ms/clicks", batch=1)] == [click["ID"]]
        assert list(api.export("ms/clicks")) == [click]
        with pytest.raises(ApiError, match=r"^Invalid method$"):
            api.get("ms/nothing")
        assert running.stop(signal.SIGTERM, timeout=10) == 0
