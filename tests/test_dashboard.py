"""The dashboard in-process: sign-in with a token or a user, the session cookie's flags,
CSRF on every form, account isolation, the pages' figures and the CSV export."""

from __future__ import annotations

import html
import re

import pytest
from starlette.testclient import TestClient

from mailstats.settings import Settings
from mailstats.web.app import App, create_app
from tests.helpers import Mailing, insert_clicks, insert_events, utc

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf(http: TestClient, path: str = "/dashboard/login") -> str:
    r = http.get(path)
    assert r.status_code == 200, r.text
    found = CSRF.search(r.text)
    assert found is not None
    return found.group(1)


def sign_in(http: TestClient, **fields: str) -> TestClient:
    token = csrf(http)
    r = http.post("/dashboard/login", data={"csrf": token, **fields})
    assert r.status_code == 303, r.text
    return http


def test_pages_need_a_signed_in_account(http: TestClient, m: Mailing) -> None:
    for path in ("/dashboard/", "/dashboard", f"/dashboard/emailing/{m.id}",
                 f"/dashboard/destination/{m.destinations[0]}",
                 f"/dashboard/emailing/{m.id}/export/clicks.csv"):  # fmt: skip
        r = http.get(path)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/dashboard/login?next=")


def test_sign_in_with_a_token_sets_a_safe_session_cookie(
    http: TestClient, token: str, m: Mailing
) -> None:
    form = csrf(http)
    r = http.post("/dashboard/login", data={"csrf": form, "token": token, "next": "/dashboard/"})
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/"
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/dashboard" in cookie
    assert "secure" not in cookie  # plain http: a Secure cookie would never come back
    assert token not in r.headers["set-cookie"]
    page = http.get("/dashboard/")
    assert page.status_code == 200 and f'href="/dashboard/emailing/{m.id}"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]


def test_the_cookie_is_secure_behind_https(settings: Settings, token: str) -> None:
    app = create_app(settings.replace(public_url="https://t.test"))
    try:
        with TestClient(app, base_url="https://t.test", follow_redirects=False) as http:
            token = app.store.create_token("acme", "Europe/Amsterdam")
            form = csrf(http)
            r = http.post("/dashboard/login", data={"csrf": form, "token": token})
            assert r.status_code == 303 and "secure" in r.headers["set-cookie"].lower()
    finally:
        app.close()


def test_wrong_token_or_password_is_refused(app: App, http: TestClient) -> None:
    account = app.store.ensure_account("acme", "Europe/Amsterdam")
    app.store.users.create(account, "ann", "correct horse battery")
    for fields in ({"token": "not-a-token"}, {"user": "ann", "password": "wrong password!"},
                   {"user": "bob", "password": "correct horse battery"}, {}):  # fmt: skip
        r = http.post("/dashboard/login", data={"csrf": csrf(http), **fields})
        assert r.status_code == 401 and "Unknown access token" in r.text
        assert http.get("/dashboard/").status_code == 303
    sign_in(http, user="ann", password="correct horse battery")
    assert http.get("/dashboard/").status_code == 200


def test_a_password_is_kept_as_an_argon2_hash(app: App) -> None:
    account = app.store.ensure_account("acme", "Europe/Amsterdam")
    app.store.users.create(account, "ann", "correct horse battery")
    (stored,) = app.store.backend.fetch("SELECT password_hash FROM users")
    assert stored[0].startswith("$argon2id$") and "correct horse" not in stored[0]
    with pytest.raises(Exception, match="at least 10"):
        app.store.users.create(account, "bob", "short")
    with pytest.raises(Exception, match="exists already"):
        app.store.users.create(account, "ann", "another good one")


def test_every_form_needs_its_csrf_token(http: TestClient, token: str) -> None:
    csrf(http)
    r = http.post("/dashboard/login", data={"token": token})
    assert r.status_code == 403 and "expired" in r.text
    r = http.post("/dashboard/login", data={"token": token, "csrf": "forged"})
    assert r.status_code == 403
    sign_in(http, token=token)
    assert http.post("/dashboard/logout", data={}).status_code == 403
    assert http.get("/dashboard/").status_code == 200  # still signed in
    r = http.post("/dashboard/logout", data={"csrf": csrf(http, "/dashboard/")})
    assert r.status_code == 303 and http.get("/dashboard/").status_code == 303


def test_another_accounts_pages_are_not_found(
    http: TestClient, token: str, m: Mailing, stranger: Mailing
) -> None:
    sign_in(http, token=token)
    for path in (f"/dashboard/emailing/{stranger.id}",
                 f"/dashboard/destination/{stranger.destinations[0]}",
                 f"/dashboard/emailing/{stranger.id}/export/clicks.csv",
                 "/dashboard/emailing/999999", "/dashboard/emailing/x", "/dashboard/nowhere"):  # fmt: skip
        r = http.get(path)
        assert r.status_code == 404 and "There is no such page" in r.text, path
    assert http.get(f"/dashboard/emailing/{m.id}").status_code == 200


def test_a_revoked_token_ends_its_sessions(app: App, http: TestClient, token: str) -> None:
    sign_in(http, token=token)
    (info,) = app.store.tokens()
    app.store.revoke_token(info.id)
    assert http.get("/dashboard/").status_code == 303


def test_sign_in_goes_back_to_the_dashboard_only(http: TestClient, token: str) -> None:
    for target in ("https://evil.example/", "//evil.example/", "/v2/ms/clicks"):
        r = http.post("/dashboard/login", data={"csrf": csrf(http), "token": token, "next": target})
        assert r.headers["location"] == "/dashboard/"


def test_the_emailing_page_shows_its_figures(
    app: App, http: TestClient, token: str, m: Mailing
) -> None:
    a, b = m.destinations
    ts = utc(2026, 10, 25, 9)
    insert_clicks(app, a, m.links[0], [ts, ts + 60])
    insert_clicks(app, b, m.links[1], [ts + 7200])
    insert_events(app, "errors", b, [ts], ("5.1.1", "550", "no such user", "hard", "userunknown"))
    insert_events(app, "unsubscribes", a, [ts + 30], ("192.0.2.1", "ua"))
    sign_in(http, token=token)
    page = http.get(f"/dashboard/emailing/{m.id}")
    assert page.status_code == 200
    text = page.text
    found = re.search(r'srcdoc="([^"]*)"', text)
    assert found is not None
    message = html.unescape(found.group(1))  # the click map, as the iframe gets it
    assert (
        f'<a data-ms-link="{m.links[0]}" data-ms-clicks="2" data-ms-label="2 · 67%" href="#"'
        in message
    )
    assert (
        f'<a data-ms-link="{m.links[1]}" data-ms-clicks="1" data-ms-label="1 · 33%" href="#"'
        in message
    )
    assert "shop.example" not in message  # no link in the map leads anywhere
    assert re.search(rf'data-link="{m.links[0]}">.*?class="num clicks">2<', text)
    assert '<td>hard</td><td>550</td><td class="num">1</td>' in text
    assert "r0@example.org" in text  # the unsubscribe, linked to its recipient
    # 25 hour buckets on the day the clocks go back, in the table behind the chart
    buckets = text[text.index('id="buckets"') :].split("</table>")[0]
    assert len(re.findall(r"<tr><td class=\"when\">2026-10-25", buckets)) == 25
    recipient = http.get(f"/dashboard/destination/{a}")
    assert recipient.status_code == 200
    assert recipient.text.count('data-kind="clicks"') == 2
    assert 'data-kind="unsubscribes"' in recipient.text


CRAWLER = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


def test_every_figure_has_a_people_only_switch_and_the_machine_share_is_shown(
    app: App, http: TestClient, token: str, m: Mailing
) -> None:
    a, b = m.destinations
    ts = utc(2026, 10, 20, 9)  # long settled
    insert_clicks(app, a, m.links[0], [ts, ts + 600])  # a person's
    insert_clicks(app, b, m.links[1], [ts + 60], ua=CRAWLER)  # a crawler's
    insert_events(app, "impressions", a, [ts - 60], ("192.0.2.1", "Mozilla/5.0 (X11)"))
    sign_in(http, token=token)
    everyone = http.get(f"/dashboard/emailing/{m.id}").text
    assert "<strong>everyone</strong>" in everyone
    assert "0.0% of opens and 33.3% of clicks" in everyone
    assert "1 opens and 3 clicks in all." in everyone
    assert re.search(rf'data-link="{m.links[1]}">.*?class="num clicks">1<', everyone)
    people = http.get(f"/dashboard/emailing/{m.id}?bots=exclude").text
    assert "<strong>people only</strong>" in people
    assert "1 opens and 2 clicks in all by people." in people
    assert "33.3% of clicks" in people  # the share stays the share of every click
    assert re.search(rf'data-link="{m.links[0]}">.*?class="num clicks">2<', people)
    assert re.search(rf'data-link="{m.links[1]}">.*?class="num clicks">0<', people)
    # the chart's table adds up to people's clicks only
    assert 'id="total-clicks">3<' in everyone and 'id="total-clicks">2<' in people
    assert 'name="bots" value="exclude"' in people  # kept when the range changes
    assert http.get(f"/dashboard/emailing/{m.id}?bots=nobody").status_code == 400


def test_bad_range_parameters_are_a_400_page(http: TestClient, token: str, m: Mailing) -> None:
    sign_in(http, token=token)
    r = http.get(f"/dashboard/emailing/{m.id}?interval=week")
    assert r.status_code == 400 and "interval" in r.text
    assert http.get("/dashboard/?sort=nonsense").status_code == 400
    assert http.get("/dashboard/?page=x").status_code == 400


def test_export_is_the_streaming_export_of_the_api(
    app: App, http: TestClient, token: str, m: Mailing
) -> None:
    ts = utc(2026, 10, 25, 9)
    insert_clicks(app, m.destinations[0], m.links[0], [ts, ts + 86400 * 3])
    sign_in(http, token=token)
    r = http.get(f"/dashboard/emailing/{m.id}/export/clicks.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    api = http.get(
        f"/v2/ms/emailing/{m.id}/clicks", params={"access_token": token, "format": "csv"}
    )
    assert r.text == api.text and len(r.text.splitlines()) == 3
    first_day = http.get(f"/dashboard/emailing/{m.id}/export/clicks.csv?range=1d")
    assert len(first_day.text.splitlines()) == 2


def test_overview_pages_and_sorts(app: App, http: TestClient, token: str) -> None:
    from tests.helpers import make_emailing

    ids = [make_emailing(http, token, "<p>x</p>", subject=f"S{n:02d}") for n in range(25)]
    sign_in(http, token=token)
    first = http.get("/dashboard/").text
    assert first.index(f'/emailing/{ids[-1]}"') < first.index(f'/emailing/{ids[-2]}"')
    assert f'/emailing/{ids[0]}"' not in first and "page 1 of 2" in first
    second = http.get("/dashboard/?page=2").text
    assert f'/emailing/{ids[0]}"' in second
    by_subject = http.get("/dashboard/?sort=subject&order=asc").text
    assert by_subject.index(">S00<") < by_subject.index(">S01<")


def test_static_assets_are_served_with_the_chart_librarys_license(http: TestClient) -> None:
    script = http.get("/dashboard/static/uPlot.iife.min.js")
    assert script.status_code == 200 and "uPlot" in script.text
    license_text = http.get("/dashboard/static/uPlot.LICENSE").text
    assert "The MIT License" in license_text and "Permission is hereby granted" in license_text
