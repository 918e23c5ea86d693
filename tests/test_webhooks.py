"""Webhooks on both backends, pushed to a real HTTP receiver on loopback (allowed through
`webhook_allowed_networks`): signatures checked with the Standard Webhooks library, payloads
equal to the pull API's items, retries, order, disabling, replay and the SSRF rules."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from standardwebhooks.webhooks import Webhook as Verifier
from starlette.testclient import TestClient

from mailstats.cli import cli
from mailstats.settings import Settings
from mailstats.store import open_store
from mailstats.web.app import App
from mailstats.webhooks.dispatcher import Dispatcher, backoff
from tests.helpers import Mailing, click, error, insert_clicks, insert_events, page
from tests.receiver import Receiver, receiving

T0 = 1_700_000_000
CRAWLER = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The app's: endpoints on 127.0.0.1 are accepted."""
    return settings.replace(webhook_allowed_networks="127.0.0.1/32")


@pytest.fixture
def push(settings: Settings) -> Settings:
    """Settings of a dispatcher that may reach 127.0.0.1, with short waits between tries."""
    return settings.replace(
        webhook_backoff=0.02, webhook_backoff_max=0.1, webhook_timeout=5, webhook_batch=3,
        webhook_disable_after=100,
    )  # fmt: skip


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as r:
        yield r


def add(http: TestClient, token: str, url: str, **body: Any) -> tuple[int, str]:
    r = http.post("/v2/ms/webhooks", params={"access_token": token}, json={"url": url, **body})
    assert r.status_code == 201, r.text
    assert r.headers["X-Created"] == r.json()["ID"]
    return int(r.json()["ID"]), r.json()["secret"]


def hook(http: TestClient, token: str, webhook_id: int) -> dict[str, Any]:
    r = http.get(f"/v2/ms/webhook/{webhook_id}", params={"access_token": token})
    assert r.status_code == 200, r.text
    found: dict[str, Any] = r.json()
    return found


def attempts(http: TestClient, token: str, webhook_id: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = page(http, token, f"ms/webhook/{webhook_id}/deliveries")["data"]
    return found


def until(done: Callable[[], bool], step: Callable[[], Any], limit: float = 30.0) -> None:
    """Run `step` until `done` (a deadline only so that a broken build fails, not hangs)."""
    deadline = time.monotonic() + limit
    while not done():
        assert time.monotonic() < deadline, "gave up waiting"
        step()
        time.sleep(0.005)


def drained(app: App, dispatcher: Dispatcher, account: str = "acme") -> None:
    """Deliver until no endpoint of the account has anything waiting."""
    account_id = app.store.account(account).id
    hooks = app.store.webhooks
    until(lambda: all(h.pending == 0 for h in hooks.all(account_id).rows), dispatcher.step)


def verified(secret: str, receiver: Receiver) -> list[dict[str, Any]]:
    """Every received item, each request's signature checked by standardwebhooks."""
    verifier = Verifier(secret)
    items = []
    for got in receiver.received:
        items.extend(verifier.verify(got.body, got.headers))
    return items


def test_pushed_events_are_signed_and_equal_to_the_pull_api(
    app: App, http: TestClient, token: str, m: Mailing, push: Settings, receiver: Receiver
) -> None:
    webhook_id, secret = add(http, token, receiver.url, kinds=["clicks", "errors"])
    assert secret.startswith("whsec_")
    assert "secret" not in hook(http, token, webhook_id)
    insert_clicks(app, m.destinations[0], m.links[0], [T0, T0 + 5])
    click(http, token, m.destinations[1], 1)  # captured, then derived by the indexer
    insert_events(app, "errors", m.destinations[0], [T0 + 9], ["bounce", "550", "no", "hard"])
    insert_events(app, "deliveries", m.destinations[0], [T0 + 1], [1])  # not asked for
    assert hook(http, token, webhook_id)["pending"] == 4
    dispatcher = Dispatcher(app.store, push, start=False)
    try:
        drained(app, dispatcher)
    finally:
        dispatcher.close()
    pushed = verified(secret, receiver)
    expected = [
        {**item, "kind": kind}
        for kind in ("clicks", "errors")
        for item in page(http, token, f"ms/{kind}")["data"]
    ]
    assert pushed == sorted(expected, key=lambda item: int(item["ID"]))
    assert len(pushed) == 4 and len(receiver.received) == 2  # batches of at most 3
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 2
    shown = hook(http, token, webhook_id)
    assert shown["pending"] == 0 and shown["delivered"] == pushed[-1]["ID"]
    tried = attempts(http, token, webhook_id)
    assert [(a["status"], a["error"], a["events"]) for a in tried] == [
        (200, None, 1),
        (200, None, 3),
    ]


def test_an_endpoint_without_machines_gets_settled_human_events_only(
    app: App, http: TestClient, token: str, m: Mailing, push: Settings, receiver: Receiver
) -> None:
    webhook_id, secret = add(http, token, receiver.url, kinds=["clicks"], bots="exclude")
    insert_clicks(app, m.destinations[0], m.links[0], [T0])  # a person's, settled long ago
    insert_clicks(app, m.destinations[1], m.links[0], [T0 + 1], ua=CRAWLER)  # a machine's
    # a minute after the emailing was made (not too soon for a person), verdict not settled
    later = int(time.time()) + 60
    insert_clicks(app, m.destinations[0], m.links[1], [later])
    dispatcher = Dispatcher(app.store, push, start=False)
    try:
        for _ in range(3):
            dispatcher.step()
        # the machine's click is left out; the unsettled one waits, and all after it
        assert [int(i["ID"]) for i in verified(secret, receiver)] == [1]
        assert hook(http, token, webhook_id)["pending"] == 1
        app.store.settle(later + 61)
        drained(app, dispatcher)
    finally:
        dispatcher.close()
    people = page(http, token, "ms/clicks", "bots=exclude")["data"]
    assert [int(i["ID"]) for i in people] == [1, 3]
    assert verified(secret, receiver) == [{**item, "kind": "clicks"} for item in people]


def test_a_retry_keeps_its_webhook_id_and_waits_longer_each_time(
    app: App, http: TestClient, token: str, m: Mailing, push: Settings, receiver: Receiver
) -> None:
    webhook_id, secret = add(http, token, receiver.url, kinds=["clicks"])
    insert_clicks(app, m.destinations[0], m.links[0], [T0])
    receiver.statuses = [500, 503]
    dispatcher = Dispatcher(app.store, push.replace(webhook_backoff=1.5, webhook_backoff_max=1.5),
                            start=False)  # fmt: skip
    try:
        assert dispatcher.step() == 1
        assert dispatcher.step() == 0  # not due yet: the first retry waits 1.2 to 1.8 s
        shown = hook(http, token, webhook_id)
        assert shown["failures"] == 1 and shown["retry"] is not None
        drained(app, dispatcher)
    finally:
        dispatcher.close()
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1
    assert len(verified(secret, receiver)) == 3  # the same event, three times
    tried = attempts(http, token, webhook_id)[::-1]
    assert [(a["attempt"], a["status"]) for a in tried] == [(1, 500), (2, 503), (3, 200)]
    assert tried[0]["error"] == "HTTP 500: ok"
    assert tried[1]["timestamp"] >= tried[0]["timestamp"]
    assert hook(http, token, webhook_id)["failures"] == 0


def test_backoff_doubles_with_jitter_up_to_its_cap_and_the_default_run_lasts_a_day() -> None:
    for attempt, middle in ((1, 5), (2, 10), (3, 20), (12, 3600), (400, 3600)):
        assert 0.8 * middle <= backoff(attempt, 5, 3600) <= 1.2 * middle
    s = Settings()
    shortest = sum(0.8 * min(s.webhook_backoff_max, s.webhook_backoff * 2**n)
                   for n in range(s.webhook_disable_after - 1))  # fmt: skip
    assert shortest >= 24 * 3600


def test_order_is_kept_per_endpoint_across_failures(
    app: App, http: TestClient, token: str, m: Mailing, push: Settings, receiver: Receiver
) -> None:
    add(http, token, receiver.url, kinds=["clicks"])
    insert_clicks(app, m.destinations[0], m.links[0], [T0 + n for n in range(10)])
    receiver.statuses = [500, "drop", 200, 500, 200, "drop"]
    dispatcher = Dispatcher(app.store, push, start=False)
    try:
        drained(app, dispatcher)
    finally:
        dispatcher.close()
    listed = [int(i["ID"]) for i in page(http, token, "ms/clicks")["data"]]
    first_seen: dict[int, str] = {}
    for got in receiver.received:
        for event_id in got.ids:
            first_seen.setdefault(event_id, got.headers["webhook-id"])
            assert first_seen[event_id] == got.headers["webhook-id"]  # duplicates: same ID
    assert list(dict.fromkeys(receiver.ids())) == listed


def test_failures_disable_an_endpoint_until_it_is_enabled_again(
    app: App, http: TestClient, token: str, m: Mailing, push: Settings, receiver: Receiver
) -> None:
    webhook_id, secret = add(http, token, receiver.url)
    insert_clicks(app, m.destinations[0], m.links[0], [T0])
    receiver.statuses = [500] * 3
    dispatcher = Dispatcher(app.store, push.replace(webhook_disable_after=3), start=False)
    try:
        until(lambda: hook(http, token, webhook_id)["state"] == "disabled", dispatcher.step)
        shown = hook(http, token, webhook_id)
        assert shown["failures"] == 3 and shown["disabled"] is not None and shown["pending"] == 1
        time.sleep(0.2)
        assert dispatcher.step() == 0  # disabled: nothing is tried
        assert len(receiver.received) == 3
        r = http.put(f"/v2/ms/webhook/{webhook_id}", params={"access_token": token},
                     json={"state": "enabled"})  # fmt: skip
        assert r.status_code == 200 and r.json()["state"] == "enabled", r.text
        assert r.json()["failures"] == 0
        drained(app, dispatcher)
    finally:
        dispatcher.close()
    assert len(receiver.received) == 4
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1
    assert len(verified(secret, receiver)) == 4


def test_replay_pushes_again_the_events_above_an_id(
    app: App, http: TestClient, token: str, m: Mailing, push: Settings, receiver: Receiver
) -> None:
    webhook_id, secret = add(http, token, receiver.url, kinds=["clicks"])
    insert_clicks(app, m.destinations[0], m.links[0], [T0 + n for n in range(5)])
    dispatcher = Dispatcher(app.store, push, start=False)
    try:
        drained(app, dispatcher)
        listed = [int(i["ID"]) for i in page(http, token, "ms/clicks")["data"]]
        first = {r.headers["webhook-id"] for r in receiver.received}
        receiver.received.clear()
        r = http.post(f"/v2/ms/webhook/{webhook_id}/replay", params={"access_token": token},
                      json={"since_id": listed[1]})  # fmt: skip
        assert r.status_code == 200 and r.json() == {"queued": 3}, r.text
        drained(app, dispatcher)
    finally:
        dispatcher.close()
    assert [int(i["ID"]) for i in verified(secret, receiver)] == listed[2:]
    assert not first & {r.headers["webhook-id"] for r in receiver.received}


def test_only_new_events_of_the_kinds_and_account_asked_for_are_queued(
    app: App, http: TestClient, token: str, m: Mailing, stranger: Mailing, receiver: Receiver
) -> None:
    insert_clicks(app, m.destinations[0], m.links[0], [T0])
    webhook_id, _ = add(http, token, receiver.url, kinds=["impressions"])
    insert_clicks(app, m.destinations[0], m.links[0], [T0 + 1])
    insert_events(app, "impressions", m.destinations[0], [T0 + 2], ["192.0.2.1", "UA", "mobile"])
    insert_events(app, "impressions", stranger.destinations[0], [T0 + 3], ["192.0.2.1", "UA"])
    assert hook(http, token, webhook_id)["pending"] == 1


def test_bad_requests_answer_in_copernicas_shape(
    http: TestClient, token: str, stranger: Mailing, receiver: Receiver
) -> None:
    def post(body: Any) -> str:
        r = http.post("/v2/ms/webhooks", params={"access_token": token}, json=body)
        assert r.status_code == 400, r.text
        return error(r)

    assert "url" in post({"kinds": ["clicks"]})
    assert "kinds" in post({"url": "https://hooks.example.com/", "kinds": ["visits"]})
    assert "kinds" in post({"url": "https://hooks.example.com/", "kinds": []})
    assert "bots" in post({"url": "https://hooks.example.com/", "bots": "maybe"})
    assert "colour" in post({"url": "https://hooks.example.com/", "colour": "red"})
    assert "https" in post({"url": "ftp://hooks.example.com/"})
    assert "private" in post({"url": "https://127.0.0.5/"})  # only 127.0.0.1 is listed
    assert "webhook_allowed_networks" in post({"url": "http://8.8.8.8/"})
    assert "private" in post({"url": "https://10.1.2.3/"})
    assert "private" in post({"url": "https://[::1]/"})
    assert "private" in post({"url": "https://169.254.169.254/latest/"})
    assert "password" in post({"url": "https://user:pw@hooks.example.com/"})
    other = stranger_hook(http, stranger)
    for method in ("GET", "DELETE"):
        r = http.request(method, f"/v2/ms/webhook/{other}", params={"access_token": token})
        assert r.status_code == 400 and error(r) == "No entity with supplied ID"
    r = http.put(f"/v2/ms/webhook/{other}", params={"access_token": token},
                 json={"state": "enabled"})  # fmt: skip
    assert error(r) == "No entity with supplied ID"


def stranger_hook(http: TestClient, stranger: Mailing) -> int:
    app: App = http.app  # type: ignore[assignment]
    account = app.store.account("other")
    webhook_id, _ = app.store.webhooks.create(account.id, "https://hooks.example.com/", ["clicks"],
                                              "include")  # fmt: skip
    return webhook_id


def test_list_and_remove(http: TestClient, token: str, receiver: Receiver) -> None:
    first, _ = add(http, token, "https://hooks.example.com/a", kinds=["clicks"], bots="exclude")
    second, _ = add(http, token, "https://hooks.example.com/b")
    listed = page(http, token, "ms/webhooks")
    assert [h["ID"] for h in listed["data"]] == [str(first), str(second)]
    assert listed["data"][0]["bots"] == "exclude" and listed["data"][0]["kinds"] == ["clicks"]
    assert all("secret" not in h for h in listed["data"])
    r = http.delete(f"/v2/ms/webhook/{first}", params={"access_token": token})
    assert r.status_code == 204
    assert [h["ID"] for h in page(http, token, "ms/webhooks")["data"]] == [str(second)]


# --- the SSRF rules, applied at every connection -------------------------------------------


def test_a_loopback_address_not_in_the_allowed_networks_is_refused_when_connecting(
    app: App, http: TestClient, token: str, m: Mailing, push: Settings, receiver: Receiver
) -> None:
    # accepted by a server that allowed loopback; this dispatcher's settings do not
    webhook_id = app.store.webhooks.create(app.store.account("acme").id, receiver.url,
                                           ["clicks"], "include")[0]  # fmt: skip
    insert_clicks(app, m.destinations[0], m.links[0], [T0])
    dispatcher = Dispatcher(app.store, push.replace(webhook_allowed_networks=""), start=False)
    try:
        assert dispatcher.step() == 1
    finally:
        dispatcher.close()
    assert receiver.received == []
    tried = attempts(http, token, webhook_id)
    assert tried[0]["status"] is None
    assert tried[0]["error"].startswith("refused: 127.0.0.1: 127.0.0.1 is a private")


def test_a_name_that_rebinds_to_an_address_not_allowed_is_refused(
    app: App, http: TestClient, token: str, m: Mailing, push: Settings, receiver: Receiver
) -> None:
    receiver.close_each = True  # every request needs a new connection, so a new lookup
    with receiving(host="127.0.0.2") as inside:
        answers = iter([["127.0.0.1"], ["127.0.0.2"]])

        def rebinding(host: str, port: int) -> list[str]:
            assert host == "hooks.test"
            return next(answers, ["127.0.0.2"])

        url = f"http://hooks.test:{receiver.port}/hook"
        webhook_id, _ = add(http, token, url, kinds=["clicks"])
        insert_clicks(app, m.destinations[0], m.links[0], [T0 + n for n in range(6)])
        inside_port = push.replace()  # the same settings; the receiver inside is not listed
        dispatcher = Dispatcher(app.store, inside_port, resolver=rebinding, start=False)
        try:
            assert dispatcher.step() == 2  # the first batch, then a refused connection
        finally:
            dispatcher.close()
        assert inside.received == []
    assert len(receiver.received) == 1
    tried = attempts(http, token, webhook_id)
    assert tried[0]["error"] == "refused: hooks.test: 127.0.0.2 is a private, loopback or " \
        "link-local address"  # fmt: skip


def test_redirects_are_not_followed(
    app: App, http: TestClient, token: str, m: Mailing, push: Settings, receiver: Receiver
) -> None:
    with receiving() as target:
        receiver.statuses = [307]
        receiver.location = target.url
        webhook_id, _ = add(http, token, receiver.url, kinds=["clicks"])
        insert_clicks(app, m.destinations[0], m.links[0], [T0])
        dispatcher = Dispatcher(app.store, push, start=False)
        try:
            assert dispatcher.step() == 1
        finally:
            dispatcher.close()
        assert target.received == [] and len(receiver.received) == 1
    tried = attempts(http, token, webhook_id)
    assert (tried[0]["status"], tried[0]["error"]) == (307, "HTTP 307: redirect not followed")


# --- several dispatchers, and a receiver that goes away -----------------------------------


def test_two_dispatchers_on_one_database_never_send_at_once(
    app: App, http: TestClient, token: str, m: Mailing, push: Settings, receiver: Receiver
) -> None:
    receiver.delay = 0.002
    secret = add(http, token, receiver.url, kinds=["clicks"])[1]
    insert_clicks(app, m.destinations[0], m.links[0], [T0 + n for n in range(300)])
    other = open_store(push.db)
    settings = push.replace(webhook_batch=7)
    one = Dispatcher(app.store, settings, interval=0.001)
    two = Dispatcher(other, settings, interval=0.001)
    try:
        until(lambda: len(set(receiver.ids())) == 300, lambda: None)
    finally:
        one.close()
        two.close()
        other.close()
    assert receiver.most_in_flight == 1
    listed = [int(i["ID"]) for i in page(http, token, "ms/clicks", "limit=1000")["data"]]
    assert receiver.ids() == listed  # each event once, in order
    assert len(verified(secret, receiver)) == 300
    assert one.sent + two.sent == 300


def test_a_receiver_down_for_a_while_gets_every_event_in_order_when_back(
    app: App, http: TestClient, token: str, m: Mailing, push: Settings
) -> None:
    receiver = first = Receiver().start()
    secret = add(http, token, receiver.url, kinds=["clicks"])[1]
    port = receiver.port
    dispatcher = Dispatcher(app.store, push.replace(webhook_batch=20), interval=0.005)
    try:
        insert_clicks(app, m.destinations[0], m.links[0], [T0 + n for n in range(50)])
        until(lambda: len(receiver.received) >= 1, lambda: None)
        receiver.stop()  # down: connections refused
        insert_clicks(app, m.destinations[0], m.links[0], [T0 + 100 + n for n in range(50)])
        webhook_id = int(page(http, token, "ms/webhooks")["data"][0]["ID"])
        until(lambda: hook(http, token, webhook_id)["failures"] >= 5, lambda: None)
        # back, but the first answers are lost: the sender cannot tell they arrived
        receiver = Receiver(port=port, statuses=["drop", "drop"]).start()
        insert_clicks(app, m.destinations[0], m.links[0], [T0 + 200 + n for n in range(50)])
        until(lambda: hook(http, token, webhook_id)["pending"] == 0, lambda: None)
    finally:
        dispatcher.close()
        receiver.stop()
    listed = [int(i["ID"]) for i in page(http, token, "ms/clicks", "limit=1000")["data"]]
    requests = first.received + receiver.received
    verifier = Verifier(secret)
    seen: dict[int, str] = {}
    arrived = []
    for request in requests:
        for item in verifier.verify(request.body, request.headers):
            event_id = int(item["ID"])
            arrived.append(event_id)
            # a duplicate comes only with the webhook-id it first came with
            assert (
                seen.setdefault(event_id, request.headers["webhook-id"])
                == request.headers["webhook-id"]
            )
    assert list(dict.fromkeys(arrived)) == listed  # every event, in order
    assert len(arrived) > len(listed)  # the two lost answers were sent again


def test_the_cli_adds_lists_shows_deliveries_replays_and_removes(
    app: App, http: TestClient, token: str, m: Mailing, push: Settings, receiver: Receiver,
    tmp_path: Path,
) -> None:  # fmt: skip
    config = tmp_path / "mailstats.toml"
    config.write_text('webhook_allowed_networks = ["127.0.0.1/32"]\n')

    def run(*args: str) -> str:
        result = CliRunner().invoke(
            cli, ["webhook", *args, "--account", "acme", "--db", push.db, "--config", str(config)]
        )
        assert result.exit_code == 0, result.output
        return result.stdout

    refused = CliRunner().invoke(cli, ["webhook", "add", "https://10.0.0.1/", "--account", "acme",
                                       "--db", push.db])  # fmt: skip
    assert refused.exit_code == 1 and "private" in refused.output
    webhook_id, secret = run("add", receiver.url, "--kind", "clicks").split()
    assert secret.startswith("whsec_")
    insert_clicks(app, m.destinations[0], m.links[0], [T0, T0 + 1])
    listed = run("list")
    assert listed.startswith(f"{webhook_id}\tenabled\t{receiver.url}\tclicks\tbots=include\t")
    assert "pending=2" in listed and secret not in listed
    dispatcher = Dispatcher(app.store, push, start=False)
    try:
        drained(app, dispatcher)
        ids = [int(i["ID"]) for i in page(http, token, "ms/clicks")["data"]]
        assert run("replay", webhook_id, "--since-id", str(ids[0])) == (
            f"Queued 1 events for webhook {webhook_id}.\n"
        )
        drained(app, dispatcher)
    finally:
        dispatcher.close()
    assert [int(i["ID"]) for i in verified(secret, receiver)] == [*ids, ids[1]]
    shown = run("deliveries", webhook_id).splitlines()
    assert len(shown) == 2 and all("\t200\t" in line for line in shown)
    assert f"\t{ids[1]}-{ids[1]}\t" in shown[0]
    assert run("remove", webhook_id) == f"Removed webhook {webhook_id}.\n"
    assert run("list") == ""


def test_the_dashboard_shows_each_endpoints_state(
    app: App, http: TestClient, token: str, m: Mailing, push: Settings, receiver: Receiver
) -> None:
    from tests.test_dashboard import sign_in

    webhook_id, _ = add(http, token, receiver.url, kinds=["clicks", "errors"])
    insert_clicks(app, m.destinations[0], m.links[0], [T0, T0 + 1])
    receiver.statuses = [500]
    dispatcher = Dispatcher(app.store, push.replace(webhook_disable_after=1), start=False)
    try:
        assert dispatcher.step() == 1
    finally:
        dispatcher.close()
    sign_in(http, token=token)
    page_html = http.get("/dashboard/").text
    row = page_html[page_html.index(f'data-webhook="{webhook_id}"') :].split("</tr>")[0]
    assert receiver.url in row and "clicks, errors" in row
    assert "disabled since" in row and '<td class="num">2</td>' in row  # two events wait


@pytest.mark.backends("sqlite")
def test_a_real_server_with_two_workers_pushes_what_its_api_lists(db_url: str) -> None:
    from tests import server

    env = {"MAILSTATS_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32", "MAILSTATS_WEBHOOK_BACKOFF": "0.05",
           "MAILSTATS_WEBHOOK_BACKOFF_MAX": "0.2"}  # fmt: skip
    token = server.make_token(db_url)
    auth = {"access_token": token}
    with receiving() as receiver, server.running(db_url, env=env, workers=2) as s:
        api = f"{s.url}/v2/ms"
        r = httpx.post(f"{api}/webhooks", params=auth, json={"url": receiver.url})
        assert r.status_code == 201, r.text
        secret = r.json()["secret"]
        r = httpx.post(f"{api}/emailings", params=auth, json={
            "subject": "Hi", "from_address": {"email": "news@shop.example"}, "html": "<p>x</p>"})  # fmt: skip
        emailing = r.headers["X-Created"]
        r = httpx.post(f"{api}/emailing/{emailing}/destinations", params=auth,
                       json=[{"email": f"r{n}@example.org"} for n in range(3)])  # fmt: skip
        for destination in r.headers["X-Created"].split(", "):
            r = httpx.post(f"{api}/destination/{destination}/deliveries", params=auth,
                           json={"attempts": 1})  # fmt: skip
            assert r.status_code == 201, r.text
        until(lambda: len(receiver.ids()) >= 3, lambda: None)
        listed = httpx.get(f"{api}/deliveries", params=auth).json()["data"]
    assert verified(secret, receiver) == [{**item, "kind": "deliveries"} for item in listed]


def test_a_long_answer_is_cut_short_and_the_secret_never_logged(
    app: App, http: TestClient, token: str, m: Mailing, push: Settings, receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    webhook_id, secret = add(http, token, receiver.url, kinds=["clicks"])
    insert_clicks(app, m.destinations[0], m.links[0], [T0])
    receiver.statuses = [500]
    receiver.answer_body = b"x" * 5_000_000  # more than is ever read
    dispatcher = Dispatcher(app.store, push, start=False)
    try:
        with caplog.at_level("DEBUG"):
            assert dispatcher.step() == 1
            receiver.answer_body = b"fine"
            drained(app, dispatcher)  # on a new connection: the long one was not kept
    finally:
        dispatcher.close()
    tried = attempts(http, token, webhook_id)[::-1]
    assert [a["status"] for a in tried] == [500, 200]
    assert tried[0]["error"] == "HTTP 500: " + "x" * 200
    assert (
        "webhook %d: attempt 1" not in caplog.text
        and f"webhook {webhook_id}: attempt 1" in caplog.text
    )
    assert secret not in caplog.text and secret.removeprefix("whsec_") not in caplog.text


def test_a_receiver_too_slow_to_answer_times_out_and_gets_the_batch_again(
    app: App, http: TestClient, token: str, m: Mailing, push: Settings, receiver: Receiver
) -> None:
    webhook_id, secret = add(http, token, receiver.url, kinds=["clicks"])
    insert_clicks(app, m.destinations[0], m.links[0], [T0])
    receiver.delay = 1.0
    dispatcher = Dispatcher(app.store, push.replace(webhook_timeout=0.2), start=False)
    try:
        assert dispatcher.step() == 1
        receiver.delay = 0
        drained(app, dispatcher)
    finally:
        dispatcher.close()
    tried = attempts(http, token, webhook_id)[::-1]
    assert [a["status"] for a in tried] == [None, 200]
    assert tried[0]["error"].startswith("TimeoutError")
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1
    assert len(verified(secret, receiver)) == 2
