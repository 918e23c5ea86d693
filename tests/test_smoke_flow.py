"""The product's spine in one pass: emailing, destination, tracked HTML, click, list."""

from __future__ import annotations

import re

from starlette.testclient import TestClient


def test_click_round_trip(http: TestClient, token: str) -> None:
    html = (
        '<html><body><a href="https://shop.example/p/{$profile.customerid}">Shop</a></body></html>'
    )
    r = http.post(
        "/v2/ms/emailings",
        params={"access_token": token},
        json={
            "subject": "Hi",
            "from_address": {"name": "Shop", "email": "news@shop.example"},
            "html": html,
        },
    )
    assert r.status_code == 201 and r.content == b""
    emailing = r.headers["x-created"]
    r = http.post(
        f"/v2/ms/emailing/{emailing}/destinations",
        params={"access_token": token},
        json={"email": "ann@example.org", "profile": "42", "fields": {"customerid": "c 7"}},
    )
    destination = r.headers["x-created"]
    body = http.get(
        f"/v2/ms/destination/{destination}/body/html", params={"access_token": token}
    ).text
    link = re.search(r'href="http://t\.test(/c/[A-Za-z0-9_-]+)"', body)
    assert link is not None
    r = http.get(
        link.group(1), headers={"user-agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"}
    )
    assert r.status_code == 302
    assert r.headers["location"] == "https://shop.example/p/c%207"
    r = http.get("/v2/ms/clicks", params={"access_token": token})
    assert r.headers["content-type"] == "application/json"
    page = r.json()
    assert list(page) == ["start", "limit", "count", "data", "total"]
    assert page["count"] == 1 and page["total"] == 1
    click = page["data"][0]
    assert list(click) == [
        "ID",
        "mailing",
        "link",
        "timestamp",
        "ip",
        "useragent",
        "destination",
        "profile",
        "subprofile",
    ]
    assert click["link"] == "https://shop.example/p/{$profile.customerid}"
    assert click["ip"] == "203.0.113.7"
    assert click["destination"] == destination and click["profile"] == "42"
    assert click["subprofile"] is None
