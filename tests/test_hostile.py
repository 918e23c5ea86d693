"""Hostile and malformed input: every answer is defined, nothing answers 500, nothing bad is stored."""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient

from mailstats.web.app import App

BAD_TIMES = [
    "2024-02-30 10:00:00",
    "9999-99-99",
    "",
    "2024-13-01 00:00:00",
    "٢٠٢٤-٠١-٠١ ٠٠:٠٠:٠٠",
    "2024-01-01 25:00:00",
    "yesterday",
    "2024-01-01 00:00:00' OR '1'='1",
]
BAD_NUMBERS = [
    "abc",
    "1.5",
    "1e3",
    "99999999999999999999999",
    "١٠",
    " 5",
    "0x10",
    "--1",
    "5; DROP TABLE events",
]
INJECTIONS = [
    "ID>1 OR 1=1",
    "ID>1; DROP TABLE events",
    "link=~' OR ''='",
    "{$profile.id}==x",
    "ID>{{7*7}}",
]


def assert_error(r: object, fragment: str = "") -> None:
    assert r.status_code == 400, r.text  # type: ignore[attr-defined]
    assert r.headers["content-type"] == "application/json"  # type: ignore[attr-defined]
    body = r.json()  # type: ignore[attr-defined]
    assert list(body) == ["error"] and list(body["error"]) == ["message"]
    assert fragment in body["error"]["message"]


def clicks_count(app: App) -> int:
    return int(app.store.backend.fetch("SELECT count(*) FROM events")[0][0])


@pytest.mark.parametrize("value", BAD_TIMES)
@pytest.mark.parametrize("name", ["begintime", "endtime"])
def test_bad_times_are_400_naming_the_parameter(
    http: TestClient, token: str, name: str, value: str
) -> None:
    assert_error(http.get("/v2/ms/clicks", params={"access_token": token, name: value}), name)


@pytest.mark.parametrize("value", BAD_NUMBERS)
@pytest.mark.parametrize("name", ["start", "limit"])
def test_bad_numbers_are_400_naming_the_parameter(
    http: TestClient, token: str, name: str, value: str
) -> None:
    assert_error(http.get("/v2/ms/clicks", params={"access_token": token, name: value}), name)


@pytest.mark.parametrize("expression", INJECTIONS)
def test_injection_in_fields_is_refused_or_harmless(
    http: TestClient, token: str, app: App, expression: str
) -> None:
    before = clicks_count(app)
    r = http.get("/v2/ms/clicks", params={"access_token": token, "fields[]": expression})
    if r.status_code == 200:
        assert r.json()["count"] == 0
    else:
        assert_error(r, "fields")
    assert clicks_count(app) == before


def test_nul_bytes_are_refused(http: TestClient, token: str) -> None:
    assert_error(http.get(f"/v2/ms/clicks?access_token={token}&begintime=2024-01-01%0000:00:00"))


def test_array_where_a_scalar_belongs(http: TestClient, token: str) -> None:
    assert_error(http.get(f"/v2/ms/clicks?access_token={token}&limit[]=5"), "limit")
    assert_error(http.get(f"/v2/ms/clicks?access_token={token}&limit=5&limit=6"), "limit")


@pytest.mark.parametrize("raw", ["%ff%fe", "%zz", "%4", "begintime=%C0%AF"])
def test_invalid_encoding_is_400(http: TestClient, token: str, raw: str) -> None:
    assert_error(http.get(f"/v2/ms/clicks?access_token={token}&{raw}"))


def test_very_long_query_and_user_agent(http: TestClient, token: str) -> None:
    r = http.get(
        "/v2/ms/clicks", params={"access_token": token, "fields[]": "link==" + "x" * 30_000}
    )
    assert r.status_code == 200 and r.json()["count"] == 0
    r = http.get("/v2/ms/clicks", params={"access_token": token, "unknown": "y" * 30_000})
    assert r.status_code == 200
    r = http.get("/v2/ms/clicks", params={"access_token": "t" * 10_000})
    assert_error(r, "Invalid access token")


def test_huge_body_is_refused_with_a_clear_error(app: App, http: TestClient, token: str) -> None:
    limit = app.state.settings.max_body_bytes
    r = http.post(
        "/v2/ms/emailings",
        params={"access_token": token},
        content=b"{" + b" " * limit + b"}",
        headers={"content-type": "application/json"},
    )
    assert_error(r, "larger than")


def test_deeply_nested_json_is_400(http: TestClient, token: str) -> None:
    body = "[" * 5000 + "]" * 5000
    r = http.post(
        "/v2/ms/emailings",
        params={"access_token": token},
        content=body,
        headers={"content-type": "application/json"},
    )
    assert_error(r, "JSON")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"null",
        b"[]",
        b"42",
        b'"x"',
        b'{"subject": 5}',
        b'{"subject": "s", "from_address": "x"}',
        b'{"subject": "s", "from_address": {"email": "a@b.c"}, "html": ["x"]}',
        b"\xff\xfe",
    ],
)
def test_malformed_emailing_bodies(http: TestClient, token: str, body: bytes) -> None:
    r = http.post(
        "/v2/ms/emailings",
        params={"access_token": token},
        content=body,
        headers={"content-type": "application/json"},
    )
    assert_error(r)
    assert http.get("/v2/ms/emailings", params={"access_token": token}).json()["total"] == 0


def test_wrong_content_type(http: TestClient, token: str) -> None:
    r = http.post(
        "/v2/ms/emailings",
        params={"access_token": token},
        content=b"subject=x",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert_error(r, "application/json")


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS"])
def test_unknown_methods_are_invalid_method(http: TestClient, token: str, method: str) -> None:
    assert_error(
        http.request(method, "/v2/ms/clicks", params={"access_token": token}), "Invalid method"
    )


@pytest.mark.parametrize(
    "path",
    [
        "/c/",
        "/c/AAAA",
        "/c/" + "A" * 5000,
        "/c/%ff%fe",
        "/o/../../etc/passwd",
        "/u/'%20OR%201=1",
        "/c/AQHqEUzNc_DFcstVzgQ/extra",
    ],
)
def test_tracking_garbage_is_plain_4xx(http: TestClient, app: App, path: str) -> None:
    before = clicks_count(app)
    r = http.get(path)
    assert 400 <= r.status_code < 500
    assert "location" not in r.headers
    assert clicks_count(app) == before


def test_tracking_wrong_method(http: TestClient) -> None:
    r = http.request("DELETE", "/c/AQHqEUzNc_DFcstVzgQ")
    assert r.status_code == 405


@pytest.mark.backends("sqlite")
def test_a_request_line_past_the_parser_limit_gets_the_copernica_error(db_url: str) -> None:
    """The HTTP server's own refusals (here a 200 kB query string) keep the API's shape."""
    import socket

    from tests import server

    with server.running(db_url) as srv, socket.create_connection(("127.0.0.1", srv.port)) as s:
        s.sendall(b"GET /v2/ms/clicks?access_token=" + b"a" * 200_000 + b" HTTP/1.1\r\n\r\n")
        s.settimeout(10)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"content-type: application/json" in head.lower()
    message = json.loads(body)["error"]["message"]
    assert list(json.loads(body)) == ["error"] and "too long" in message
