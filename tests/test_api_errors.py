"""Every failure of the v2 API: HTTP 400, {"error":{"message":...}}, the exact messages clients
match on, and Content-Type exactly application/json (compat.md sections 1 and 3)."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from mailstats.web.app import App
from tests.helpers import (
    JSON,
    SENDER,
    Mailing,
    error,
    get,
    insert_clicks,
    mailing,
    page,
    query,
    utc,
)

INVALID_TOKEN = b'{"error":{"message":"Invalid access token"}}'
INVALID_METHOD = b'{"error":{"message":"Invalid method"}}'
NO_ENTITY = b'{"error":{"message":"No entity with supplied ID"}}'


@pytest.fixture
def m(app: App, http: TestClient, token: str) -> Mailing:
    found = mailing(app, http, token)
    insert_clicks(app, found.destinations[0], found.links[0], [utc(2024, 7, 1, 10)])
    return found


def requests(m: Mailing) -> list[tuple[str, str]]:
    """(method, path) of calls that succeed with a good token."""
    d = m.destinations[0]
    return [
        ("GET", "/v2/ms/clicks"),
        ("GET", f"/v2/ms/emailing/{m.id}/clicks"),
        ("GET", f"/v2/ms/destination/{d}/clicks"),
        ("GET", f"/v2/ms/message/{d}/clicks"),
        ("GET", f"/v2/ms/destination/{d}/body/html"),
        ("POST", "/v2/ms/emailings"),
        ("POST", f"/v2/ms/emailing/{m.id}/destinations"),
    ]


def send(
    http: TestClient, method: str, path: str, qs: str = "", headers: dict[str, str] | None = None
) -> tuple[int, str, bytes]:
    """One call, answered as (status, content type, body)."""
    json = None
    if method == "POST":
        json = (
            {"email": "x@example.org"}
            if path.endswith("destinations")
            else {"subject": "S", "from_address": SENDER, "html": "<p>x</p>"}
        )
    r = http.request(method, f"{path}?{qs}", json=json, headers=headers)
    return r.status_code, r.headers.get("content-type", ""), r.content


# --- access tokens ------------------------------------------------------------------------


def test_good_token_in_query_or_bearer_header(http: TestClient, token: str, m: Mailing) -> None:
    for method, path in requests(m):
        expected = 201 if method == "POST" else 200
        assert send(http, method, path, f"access_token={token}")[0] == expected, path
        bearer = {"authorization": f"Bearer {token}"}
        assert send(http, method, path, headers=bearer)[0] == expected, path
    by_query = get(http, token, "ms/clicks")
    by_header = http.get("/v2/ms/clicks", headers={"Authorization": f"Bearer {token}"})
    assert by_header.content == by_query.content and by_query.json()["total"] == 1


# How a call may carry a token that is not a valid one: (query string, headers).
BAD_TOKENS = [
    ("", {}),
    ("access_token=", {}),
    ("access_token=not-a-token", {}),
    ("access_token={token}x", {}),
    ("ACCESS_TOKEN={token}", {}),  # parameter names are case-sensitive
    ("Access_Token={token}", {}),
    ("", {"authorization": "Bearer not-a-token"}),
    ("", {"authorization": "Bearer "}),
    ("", {"authorization": "Basic {token}"}),
    ("", {"x-access-token": "{token}"}),
]


def test_invalid_access_token(http: TestClient, token: str, m: Mailing) -> None:
    wrong = {}
    for qs, headers in BAD_TOKENS:
        qs = qs.format(token=token)
        headers = {k: v.format(token=token) for k, v in headers.items()}
        for method, path in requests(m):
            got = send(http, method, path, qs, headers)
            if got != (400, JSON, INVALID_TOKEN):
                wrong[f"{method} {path} {qs} {headers}"] = got
    assert wrong == {}
    assert page(http, token, "ms/emailings")["total"] == 1  # no POST got through


def test_revoked_token(app: App, http: TestClient, token: str, m: Mailing) -> None:
    spare = app.store.create_token("acme", "Europe/Amsterdam")
    [info] = [t for t in app.store.tokens() if t.hint == token[:4] and t.revoked_at is None]
    assert app.store.revoke_token(info.id)
    for method, path in requests(m):
        assert send(http, method, path, f"access_token={token}") == (400, JSON, INVALID_TOKEN)
        bearer = {"authorization": f"Bearer {token}"}
        assert send(http, method, path, headers=bearer) == (400, JSON, INVALID_TOKEN), path
    # Revoking one token leaves the account's other tokens working.
    assert page(http, spare)["total"] == 1


# --- unknown paths and verbs --------------------------------------------------------------


def test_unknown_path_or_verb_is_invalid_method(http: TestClient, token: str, m: Mailing) -> None:
    d = m.destinations[0]
    calls = [
        ("GET", "/v2/ms/klicks"),
        ("GET", "/v2/ms/Clicks"),
        ("GET", "/v2/MS/clicks"),
        ("GET", "/V2/ms/clicks"),
        ("GET", "/v2/ms/click"),
        ("GET", "/v2/ms"),
        ("GET", "/v2"),
        ("GET", "/v1/ms/clicks"),
        ("GET", "/ms/clicks"),
        ("GET", "/v2/clicks"),
        ("GET", "/v2/ms/clicks/1"),
        ("GET", f"/v2/ms/emailing/{m.id}/klicks"),
        ("GET", f"/v2/ms/emailing/{m.id}/clicks/extra"),
        ("GET", f"/v2/ms/Emailing/{m.id}/clicks"),
        ("GET", f"/v2/ms/destination/{d}/Clicks"),
        ("GET", f"/v2/ms/destinations/{d}/clicks"),
        ("GET", f"/v2/ms/messages/{d}/clicks"),
        ("POST", "/v2/ms/clicks"),
        ("PUT", "/v2/ms/clicks"),
        ("PATCH", "/v2/ms/clicks"),
        ("DELETE", "/v2/ms/clicks"),
        ("OPTIONS", "/v2/ms/clicks"),
        ("POST", f"/v2/ms/emailing/{m.id}/clicks"),
        ("DELETE", f"/v2/ms/emailing/{m.id}/clicks"),
        ("POST", f"/v2/ms/destination/{d}/clicks"),
        ("PUT", f"/v2/ms/message/{d}/clicks"),
        ("GET", "/v2/ms/emailings/"),  # sanity: this one exists (checked below)
    ]
    wrong = {}
    for method, path in calls[:-1]:
        got = send(http, method, path, f"access_token={token}")
        if got != (400, JSON, INVALID_METHOD):
            wrong[f"{method} {path}"] = got
    assert wrong == {}
    assert send(http, *calls[-1], f"access_token={token}")[0] == 200


# --- unknown or malformed IDs -------------------------------------------------------------


def test_unknown_or_malformed_id_is_no_entity(http: TestClient, token: str, m: Mailing) -> None:
    unknown = m.destinations[-1] + 1000
    malformed = ("abc", "0", "-1", "1.0", "1e3", "0x1", "%C2%B9", "99999999999999999999999")
    paths = [
        f"/v2/ms/{word}/{bad}/clicks"
        for word in ("emailing", "destination", "message")
        for bad in (str(unknown), *malformed)
    ]
    paths += [
        f"/v2/ms/emailing/{unknown}",
        f"/v2/ms/destination/{unknown}",
        f"/v2/ms/destination/{unknown}/body/html",
        f"/v2/ms/emailing/{unknown}/destinations",
    ]
    wrong = {}
    for path in paths:
        for qs in (f"access_token={token}", f"access_token={token}&unique=1&limit=5"):
            got = send(http, "GET", path, qs)
            if got != (400, JSON, NO_ENTITY):
                wrong[f"{path}?{qs[-15:]}"] = got
    assert wrong == {}


def test_destinations_for_an_unknown_emailing(http: TestClient, token: str, m: Mailing) -> None:
    got = send(http, "POST", f"/v2/ms/emailing/{m.id + 1000}/destinations", f"access_token={token}")
    assert got == (400, JSON, NO_ENTITY)
    assert send(http, "POST", "/v2/ms/emailing/x/destinations", f"access_token={token}") == (
        400,
        JSON,
        NO_ENTITY,
    )


# --- invalid parameter values -------------------------------------------------------------

BAD_VALUES = [
    (query(("begintime", "yesterday")), "begintime"),
    (query(("begintime", "2024-13-01 00:00:00")), "begintime"),
    (query(("begintime", "2024-07-01 25:00:00")), "begintime"),
    (query(("endtime", "2024-02-30 00:00:00")), "endtime"),
    (query(("endtime", "1719828000")), "endtime"),
    (query(("endtime", "01-07-2024 12:00:00")), "endtime"),
    ("start=abc", "start"),
    ("start=1.5", "start"),
    ("limit=ten", "limit"),
    ("limit=1e3", "limit"),
    (query(("fields[]", "nope>1")), "fields"),
    (query(("fields[]", "ID>abc")), "fields"),
    (query(("fields[]", "ID>1.5")), "fields"),
    (query(("fields[]", "timestamp>=yesterday")), "fields"),
    (query(("fields[]", "timestamp>=2024-02-30 00:00:00")), "fields"),
    (query(("fields[]", "ID")), "fields"),
    (query(("fields[]", "ID~5")), "fields"),
    (query(("fields%5B0%5D", "ID>1"), ("fields%5B1%5D", "bogus==1")), "fields"),
]


def test_invalid_parameter_value_names_the_parameter(
    http: TestClient, token: str, m: Mailing
) -> None:
    wrong = {}
    for resource in (
        "ms/clicks",
        f"ms/emailing/{m.id}/clicks",
        f"ms/message/{m.destinations[0]}/clicks",
    ):
        for qs, name in BAD_VALUES:
            r = get(http, token, resource, qs)
            if r.status_code != 400 or r.headers["content-type"] != JSON:
                wrong[f"{resource}?{qs}"] = (r.status_code, r.text)
            elif name not in error(r):
                wrong[f"{resource}?{qs}"] = error(r)
    assert wrong == {}


def test_bad_write_bodies_are_errors(http: TestClient, token: str, m: Mailing) -> None:
    auth = {"access_token": token}
    emailing = {"subject": "S", "from_address": SENDER, "html": "<p>x</p>"}
    answers = [
        http.post("/v2/ms/emailings", params=auth, content=b"{not json"),
        http.post("/v2/ms/emailings", params=auth, json=[]),
        http.post("/v2/ms/emailings", params=auth, json={**emailing, "html": None}),
        http.post("/v2/ms/emailings", params=auth, json={**emailing, "from_address": "x"}),
        http.post(f"/v2/ms/emailing/{m.id}/destinations", params=auth, json={"profile": "1"}),
        http.post(f"/v2/ms/emailing/{m.id}/destinations", params=auth, json=[]),
        http.post(f"/v2/ms/emailing/{m.id}/destinations", params=auth, json="x@example.org"),
    ]
    for r in answers:
        assert error(r) not in ("", "Invalid method", "No entity with supplied ID")
    assert page(http, token, "ms/emailings")["total"] == 1
    assert page(http, token, f"ms/emailing/{m.id}/destinations")["total"] == 2
