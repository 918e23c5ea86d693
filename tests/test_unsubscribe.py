"""/u/ unsubscribes (issue 4): a GET only shows a form, a POST or an RFC 8058 one-click POST
records one, and the List-Unsubscribe headers the sender adds lead there."""

from __future__ import annotations

import email
import email.policy
import time
from html.parser import HTMLParser
from urllib.parse import urljoin

from starlette.testclient import TestClient

from mailstats.tracking.tokens import Purpose, Signer
from mailstats.web.app import App
from tests.helpers import (
    FIELDS,
    JSON,
    PUBLIC,
    UA,
    Mailing,
    click_paths,
    error,
    get,
    ids,
    local,
    mailing,
    page,
    pixel_path,
    total,
    unsubscribe_path,
)

PEER = "203.0.113.7"  # the test client's address
ONE_CLICK = {"content-type": "application/x-www-form-urlencoded"}
# Link scanners that fetch every URL of a message before (or instead of) its reader.
SCANNERS = [
    UA,
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Microsoft Office Existence Discovery",
    "Barracuda Sentinel (EE)",
    "Mozilla/5.0 (compatible; Mimecast URL Protect)",
    "",
]


class Forms(HTMLParser):
    """The forms of a page: (method, action) and whether each has a submit button."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, object]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(
                {"method": values.get("method", "get").lower(), "action": values.get("action", "")}
            )
        elif self.forms and (
            (tag == "button" and values.get("type", "submit") == "submit")
            or (tag == "input" and values.get("type") == "submit")
        ):
            self.forms[-1]["submit"] = True


def forms(html: str) -> list[dict[str, object]]:
    parser = Forms()
    parser.feed(html)
    parser.close()
    return parser.forms


def unsubscribes(http: TestClient, token: str, m: Mailing) -> tuple[int, int]:
    """(total, unique) of the emailing's unsubscribes as its statistics tell them."""
    r = get(http, token, f"ms/emailing/{m.id}/statistics")
    assert r.status_code == 200, r.text
    pair = r.json()["unsubscribes"]
    return pair["total"], pair["unique"]


# --- the header values --------------------------------------------------------------------


def test_headers_give_the_rfc_8058_values(
    app: App, http: TestClient, token: str, m: Mailing
) -> None:
    d0, d1 = m.destinations
    r = get(http, token, f"ms/destination/{d0}/headers")
    assert (r.status_code, r.headers["content-type"]) == (200, JSON)
    values = r.json()
    assert values["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    path = unsubscribe_path(http, token, d0)
    assert values["List-Unsubscribe"] == f"<{PUBLIC}{path}>"
    assert get(http, token, f"ms/message/{d0}/headers").content == r.content
    assert get(http, token, f"ms/destination/{d0}/headers").content == r.content  # stable
    assert unsubscribe_path(http, token, d1) != path
    # The message as sent carries the same header values.
    mime = get(http, token, f"ms/destination/{d0}/body/mime").content
    msg = email.message_from_bytes(mime, policy=email.policy.default)
    assert msg["List-Unsubscribe"] == values["List-Unsubscribe"]
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    other = app.store.create_token("other", "Europe/Amsterdam")
    assert error(get(http, other, f"ms/destination/{d0}/headers")) == "No entity with supplied ID"
    assert error(get(http, token, "ms/destination/999999/headers")) == "No entity with supplied ID"


# --- GET never unsubscribes ---------------------------------------------------------------


def test_a_get_shows_a_form_and_never_unsubscribes(
    http: TestClient, token: str, m: Mailing
) -> None:
    path = unsubscribe_path(http, token, m.destinations[0])
    variants = [path, f"{path}/", f"{path}?List-Unsubscribe=One-Click", f"{path}?confirm=yes"]
    for ua in SCANNERS:
        for url in variants:
            r = http.get(url, headers={"user-agent": ua})
            assert r.status_code == 200, (url, r.status_code)
            assert r.headers["content-type"] == "text/html; charset=utf-8"
            assert "no-store" in r.headers["cache-control"]
            [form] = forms(r.text)
            assert form["method"] == "post" and form.get("submit") is True
            # The form posts back to the page's own URL.
            assert urljoin(PUBLIC + url, str(form["action"])).split("?")[0].rstrip("/") == (
                PUBLIC + path
            )
        head = http.head(path, headers={"user-agent": ua})
        assert (head.status_code, head.content) == (200, b"")
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS"):
        assert http.request(method, path).status_code == 405
    assert total(http, token, "ms/unsubscribes") == 0
    assert total(http, token, f"ms/destination/{m.destinations[0]}/unsubscribes") == 0
    assert unsubscribes(http, token, m) == (0, 0)
    # Only pressing the button unsubscribes.
    r = http.post(path, headers={**ONE_CLICK, "user-agent": UA}, content=b"")
    assert r.status_code == 200
    assert "unsubscribed" in r.text.lower() and forms(r.text) == []
    assert http.get(path).status_code == 200
    assert total(http, token, "ms/unsubscribes") == 1
    assert unsubscribes(http, token, m) == (1, 1)


# --- POST records one ---------------------------------------------------------------------


def test_a_post_records_one_unsubscribe(http: TestClient, token: str, m: Mailing) -> None:
    dest = m.destinations[1]
    path = unsubscribe_path(http, token, dest)
    before = int(time.time())
    r = http.post(path, headers={"user-agent": UA})
    after = int(time.time())
    assert r.status_code == 200 and r.headers["content-type"] == "text/html; charset=utf-8"
    body = page(http, token, "ms/unsubscribes")
    assert body["total"] == 1
    [item] = body["data"]
    assert list(item) == FIELDS["unsubscribes"]
    assert type(item["ID"]) is str and item["ID"].isdigit()
    assert local(before) <= item["timestamp"] <= local(after)
    assert item == {
        "ID": item["ID"],
        "mailing": str(m.id),
        "timestamp": item["timestamp"],
        "ip": PEER,
        "useragent": UA,
        "destination": str(dest),
        "profile": "P1",
        "subprofile": "S1",
    }
    assert total(http, token, f"ms/destination/{m.destinations[0]}/unsubscribes") == 0
    assert ids(page(http, token, f"ms/message/{dest}/unsubscribes")) == [int(item["ID"])]


def test_rfc_8058_one_click_post(http: TestClient, token: str, m: Mailing) -> None:
    """What a mailbox provider sends: a POST of `List-Unsubscribe=One-Click` to the header's
    URL, with no cookies and no page visited first."""
    dest = m.destinations[0]
    r = get(http, token, f"ms/destination/{dest}/headers")
    url = r.json()["List-Unsubscribe"].strip("<>")
    assert url.startswith(f"{PUBLIC}/u/")
    one_click = r.json()["List-Unsubscribe-Post"].encode()
    assert one_click == b"List-Unsubscribe=One-Click"
    http.cookies.clear()
    r = http.post(url, content=one_click, headers={**ONE_CLICK, "user-agent": "Google-Unsub"})
    assert 200 <= r.status_code < 300
    [item] = page(http, token, "ms/unsubscribes")["data"]
    assert (item["destination"], item["useragent"], item["ip"]) == (
        str(dest),
        "Google-Unsub",
        PEER,
    )
    assert unsubscribes(http, token, m) == (1, 1)


def test_unique_gives_one_unsubscribe_per_destination(
    app: App, http: TestClient, token: str, m: Mailing
) -> None:
    d0, d1 = m.destinations
    other = mailing(app, http, token, destinations=1)
    order = [d0, d1, d0, other.destinations[0], d0, d1]
    for dest in order:
        path = unsubscribe_path(http, token, dest)
        assert http.post(path, content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK).is_success
    every = ids(page(http, token, "ms/unsubscribes"))
    assert len(every) == 6
    body = page(http, token, "ms/unsubscribes", "unique=true")
    assert (ids(body), body["total"]) == ([every[0], every[1], every[3]], 3)
    assert [item["destination"] for item in body["data"]] == [
        str(d0),
        str(d1),
        str(other.destinations[0]),
    ]
    body = page(http, token, f"ms/emailing/{m.id}/unsubscribes", "unique=1")
    assert (ids(body), body["total"]) == ([every[0], every[1]], 2)
    body = page(http, token, f"ms/destination/{d0}/unsubscribes", "unique=1")
    assert (ids(body), body["total"]) == ([every[0]], 1)
    assert total(http, token, f"ms/destination/{d0}/unsubscribes") == 3
    assert unsubscribes(http, token, m) == (5, 2)


def test_forged_tokens_answer_404_and_record_nothing(
    http: TestClient, token: str, m: Mailing
) -> None:
    dest = m.destinations[0]
    path = unsubscribe_path(http, token, dest)
    real = path.removeprefix("/u/")
    fakes = [
        real[:-1],
        real + "A",
        real[:-1] + ("A" if real[-1] != "A" else "B"),
        real.swapcase(),
        real[::-1],
        "x" * 200,
        click_paths(http, token, dest)[0].removeprefix("/c/"),
        pixel_path(http, token, dest).removeprefix("/o/"),
        Signer(b"not the server's secret").sign(Purpose.UNSUBSCRIBE, dest),
    ]
    wrong = {}
    for fake in fakes:
        for method in ("GET", "HEAD", "POST"):
            r = http.request(method, f"/u/{fake}", headers=ONE_CLICK, content=b"")
            if r.status_code != 404 or "<form" in r.text:
                wrong[f"{method} {fake}"] = r.status_code
    assert wrong == {}
    assert total(http, token, "ms/unsubscribes") == 0
    assert http.post(path).status_code == 200  # the real one still works
    assert total(http, token, "ms/unsubscribes") == 1
