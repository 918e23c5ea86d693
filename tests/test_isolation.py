"""Each API call is scoped to its token's account: no list shows another account's rows, and
another account's IDs answer "No entity with supplied ID"."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from starlette.testclient import TestClient

from mailstats.web.app import App
from tests.helpers import (
    JSON,
    Mailing,
    click,
    get,
    ids,
    insert_clicks,
    mailing,
    page,
    query,
    utc,
)

NO_ENTITY = b'{"error":{"message":"No entity with supplied ID"}}'


@dataclass(frozen=True)
class Accounts:
    acme: str
    globex: str
    acme_mailing: Mailing
    globex_mailing: Mailing


@pytest.fixture
def two(app: App, http: TestClient, token: str) -> Accounts:
    """Two accounts, each with an emailing, two destinations and clicks."""
    other = app.store.create_token("globex", "Europe/Amsterdam")
    mine, theirs = mailing(app, http, token), mailing(app, http, other)
    click(http, token, mine.destinations[0])
    insert_clicks(app, mine.destinations[1], mine.links[1], [utc(2024, 7, 1, 10)])
    click(http, other, theirs.destinations[1], link=1)
    insert_clicks(app, theirs.destinations[0], theirs.links[0], [utc(2024, 7, 1, 11)])
    return Accounts(token, other, mine, theirs)


LIST_QUERIES = [
    "",
    "unique=1",
    "total=0",
    "limit=1000",
    query(("fields[]", "ID>0")),
    query(("fields%5B0%5D", "timestamp>=2000-01-01 00:00:00")),
    query(("begintime", "2000-01-01 00:00:00"), ("endtime", "2100-01-01 00:00:00")),
]


def test_each_account_lists_only_its_own_clicks(http: TestClient, two: Accounts) -> None:
    for tok, own in ((two.acme, two.acme_mailing), (two.globex, two.globex_mailing)):
        for qs in LIST_QUERIES:
            body = page(http, tok, qs=qs)
            assert body["count"] == 2, qs
            assert {item["mailing"] for item in body["data"]} == {str(own.id)}, qs
            assert {item["destination"] for item in body["data"]} <= {
                str(d) for d in own.destinations
            }
            assert body.get("total", 2) == 2
    acme, globex = ids(page(http, two.acme)), ids(page(http, two.globex))
    assert not set(acme) & set(globex)


def test_other_accounts_ids_are_no_entity(http: TestClient, two: Accounts) -> None:
    theirs = two.globex_mailing
    d = theirs.destinations[0]
    resources = [
        f"ms/emailing/{theirs.id}/clicks",
        f"ms/destination/{d}/clicks",
        f"ms/message/{d}/clicks",
        f"ms/emailing/{theirs.id}",
        f"ms/emailing/{theirs.id}/destinations",
        f"ms/destination/{d}",
        f"ms/destination/{d}/body/html",
        f"ms/destination/{d}/headers",
    ]
    wrong = {}
    for resource in resources:
        for qs in ("", "unique=1&limit=1000", "total=0"):
            r = get(http, two.acme, resource, qs)
            if (r.status_code, r.headers["content-type"], r.content) != (400, JSON, NO_ENTITY):
                wrong[f"{resource}?{qs}"] = (r.status_code, r.text[:200])
    assert wrong == {}


def test_no_writes_into_another_accounts_emailing(http: TestClient, two: Accounts) -> None:
    theirs = two.globex_mailing
    r = http.post(
        f"/v2/ms/emailing/{theirs.id}/destinations",
        params={"access_token": two.acme},
        json=[{"email": "intruder@example.org"}],
    )
    assert (r.status_code, r.headers["content-type"], r.content) == (400, JSON, NO_ENTITY)
    listed = page(http, two.globex, f"ms/emailing/{theirs.id}/destinations")
    assert listed["total"] == 2
    assert page(http, two.acme, "ms/emailings")["total"] == 1


def test_emailings_list_shows_only_the_accounts_own(http: TestClient, two: Accounts) -> None:
    for tok, own in ((two.acme, two.acme_mailing), (two.globex, two.globex_mailing)):
        body = page(http, tok, "ms/emailings")
        assert [item["id"] for item in body["data"]] == [str(own.id)]
        assert body["total"] == 1


def test_an_account_with_nothing_sees_nothing(app: App, http: TestClient, two: Accounts) -> None:
    empty = app.store.create_token("initech", "Europe/Amsterdam")
    for resource in ("ms/clicks", "ms/emailings"):
        for qs in LIST_QUERIES:
            body = page(http, empty, resource, qs)
            assert (body["count"], body["data"], body.get("total", 0)) == (0, [], 0), qs


def test_tokens_of_one_account_see_the_same_rows(app: App, http: TestClient, two: Accounts) -> None:
    second = app.store.create_token("acme", "Europe/Amsterdam")
    for resource in ("ms/clicks", f"ms/emailing/{two.acme_mailing.id}/clicks"):
        assert get(http, second, resource).content == get(http, two.acme, resource).content


def _get_routes() -> list[str]:
    """Every GET path of the route table with its placeholders still in, scopes expanded."""
    from mailstats.web.app import ROUTES

    return [r.path for r in ROUTES if "GET" in (r.methods or ())]


def test_every_get_route_hides_another_accounts_ids(app: App, http: TestClient, token: str) -> None:
    from mailstats.kinds import KINDS
    from tests.helpers import add_destinations, insert_events, make_emailing, message_key

    html = '<html><body><a href="https://alpha-secret.example/offer?x=1">Go</a></body></html>'
    emailing = make_emailing(http, token, html, subject="Alpha confidential subject")
    dests = add_destinations(
        http, token, emailing,
        {"email": "alice.secret@alpha.example", "profile": "alpha-profile-7"},
        {"email": "bob.secret@alpha.example", "subprofile": "alpha-sub-9"},
    )  # fmt: skip
    link = app.store.links(emailing)[0]
    click(http, token, dests[0])
    insert_events(app, "impressions", dests[1], [utc(2024, 7, 1)], ("198.51.100.77", "AlphaUA/1", "mobile"))  # fmt: skip
    insert_events(app, "deliveries", dests[0], [utc(2024, 7, 1)], (2,))
    secrets_ = ["alice.secret", "bob.secret", "alpha-profile-7", "alpha-sub-9", link.url,
                "alpha-secret.example", "Alpha confidential", "AlphaUA", "198.51.100.77",
                *(message_key(app, d) for d in dests)]  # fmt: skip
    other = app.store.create_token("globex", "Europe/Amsterdam")
    mailing(app, http, other)  # the other account has data of its own

    wrong: dict[str, object] = {}
    checked = 0
    for path in _get_routes():
        if path in ("/openapi.json", "/healthz", "/readyz"):
            continue  # no account's data in them
        kinds = list(KINDS) if "{kind}" in path else [""]
        if "{chart}" in path:
            kinds = ["timeline", "links", "clients", "bounces"]
            path = path.replace("{chart}", "{kind}")
        parts = ["html", "text", "mime"] if "{part}" in path else [""]
        ids = [str(emailing)] if "/emailing/" in path else [str(d) for d in dests]
        for kind in kinds:
            for part in parts:
                for id_ in ids if "{id}" in path else [""]:
                    url = path.format(kind=kind, part=part, id=id_)
                    asked = {"access_token": other}
                    if url.endswith("/subject"):  # alpha's address asked for by the other
                        asked["email"] = "ALICE.SECRET@alpha.example"  # (the answer echoes it)
                    r = http.get(url, params=asked)
                    checked += 1
                    leaked = [s for s in secrets_ if s in r.text]
                    if leaked:
                        wrong[url] = ("leaked", leaked)
                    elif "{id}" in path:
                        if (r.status_code, r.headers["content-type"], r.content) != (
                            400, JSON, NO_ENTITY
                        ):  # fmt: skip
                            wrong[url] = (r.status_code, r.text[:200])
                    elif r.status_code != 200:
                        wrong[url] = (r.status_code, r.text[:200])
                    elif url.endswith(("/settings", "/subject")):  # objects, not lists
                        body = r.json()
                        if body.get("destinations", []) != []:
                            wrong[url] = ("destinations", body["destinations"])
                    else:
                        body = r.json()
                        mine = [item for item in body["data"]
                                if str(item.get("mailing", item.get("id"))) == str(emailing)]  # fmt: skip
                        if mine:
                            wrong[url] = ("rows", mine)
    assert checked > 40
    assert wrong == {}
