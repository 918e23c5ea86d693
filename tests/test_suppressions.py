"""The suppression list: computed from stored events, refused at RCPT TO by the relay, listed
and cleared over the API and the command line; both backends."""

from __future__ import annotations

import re
import smtplib
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from mailstats.cli import cli
from mailstats.relay import Background, Relay
from mailstats.settings import Settings
from mailstats.web.app import App
from tests.smtp_sink import Sink
from tests.test_relay import get, message, relay_settings, send

UNSUBSCRIBE = re.compile(r"<http://t\.test(/u/[A-Za-z0-9_-]+)>")


@pytest.fixture
def sink() -> Iterator[Sink]:
    with Sink() as s:
        yield s


@pytest.fixture
def relay(app: App, settings: Settings, sink: Sink) -> Iterator[Relay]:
    with Background(relay_settings(settings, sink), app.store) as r:
        yield r


def destination_of(app: App, email: str) -> int:
    mark = app.store.backend.placeholder
    rows = app.store.backend.fetch(f"SELECT id FROM destinations WHERE email = {mark}", [email])
    assert len(rows) == 1, rows
    return int(rows[0][0])


def report(http: TestClient, token: str, dest: int, kind: str, data: dict[str, object]) -> None:
    r = http.post(f"/v2/ms/destination/{dest}/{kind}", params={"access_token": token}, json=data)
    assert r.status_code == 201, r.text


def refusal(relay: Relay, token: str, rcpt: str, **headers: str) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", relay.port) as smtp:
        smtp.login("acme", token)
        smtp.mail("news@shop.example")
        return smtp.rcpt(rcpt)


def test_hard_bounce_and_complaint_refused_at_rcpt(
    app: App, relay: Relay, sink: Sink, http: TestClient, token: str
) -> None:
    send(relay, message(), ["ann@example.org", "bob@example.org", "cy@example.org"], password=token)
    ann, bob, cy = (destination_of(app, f"{n}@example.org") for n in ("ann", "bob", "cy"))
    report(http, token, ann, "errors", {"status": "5.1.1", "errortype": "hard"})
    report(http, token, bob, "abuses", {"report": {"feedback-type": "abuse"}})
    report(http, token, cy, "errors", {"status": "4.2.2", "errortype": "soft"})
    code, text = refusal(relay, token, "Ann@example.org")  # ASCII case does not matter
    assert code == 550 and text.startswith(b"5.7.1")
    assert (
        b"suppressed" in text and b"bounced hard" in text and f"destination {ann}".encode() in text
    )
    code, text = refusal(relay, token, "bob@example.org")
    assert code == 550 and b"complained" in text
    assert refusal(relay, token, "cy@example.org")[0] == 250  # a soft bounce suppresses nothing
    # the other recipients of a message still go through
    sink.received.clear()
    refused = send(
        relay, message(message_id="<m9@x>"), ["ann@example.org", "dee@example.org"], password=token
    )
    assert list(refused) == ["ann@example.org"] and refused["ann@example.org"][0] == 550
    assert [r.recipients for r in sink.received] == [["dee@example.org"]]
    listed = get(http, token, "ms/suppressions")
    assert listed["total"] == 2 and list(listed) == ["start", "limit", "count", "data", "total"]
    by_email = {item["email"]: item for item in listed["data"]}
    assert by_email["ann@example.org"]["reason"] == "bounce"
    assert by_email["ann@example.org"]["destination"] == str(ann)
    assert by_email["bob@example.org"]["reason"] == "complaint"
    assert list(by_email["ann@example.org"]) == ["email", "reason", "timestamp", "destination"]


def test_unsubscribed_refused_unless_transactional(
    relay: Relay, sink: Sink, http: TestClient, token: str
) -> None:
    send(relay, message(), password=token)
    unsubscribe = UNSUBSCRIBE.search(sink.received[0].data.decode())
    assert unsubscribe is not None
    assert http.post(unsubscribe.group(1)).status_code == 200
    assert http.app.indexer.drain()  # type: ignore[attr-defined] # it counts once derived
    sink.received.clear()
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(relay, message(message_id="<m2@x>"), password=token)
    assert refused.value.smtp_code == 550 and b"5.7.1" in refused.value.smtp_error
    assert sink.received == []
    send(relay, message(message_id="<m3@x>", X_Mailstats_Transactional="yes"), password=token)
    assert len(sink.received) == 1
    assert get(http, token, "ms/suppressions")["data"][0]["reason"] == "unsubscribe"


def test_delete_and_cli(
    app: App, relay: Relay, sink: Sink, http: TestClient, token: str, settings: Settings
) -> None:
    send(relay, message(), password=token)
    ann = destination_of(app, "ann@example.org")
    report(http, token, ann, "errors", {"status": "5.1.1", "errortype": "hard",
                                        "timestamp": "2026-01-02 03:04:05"})  # fmt: skip
    assert refusal(relay, token, "ann@example.org")[0] == 550
    r = http.delete("/v2/ms/suppressions/ann@example.org", params={"access_token": token})
    assert r.status_code == 204
    assert refusal(relay, token, "ann@example.org")[0] == 250
    r = http.delete("/v2/ms/suppressions/ann@example.org", params={"access_token": token})
    assert r.status_code == 400 and r.json() == {"error": {"message": "No entity with supplied ID"}}
    # a later hard bounce puts it back
    report(http, token, ann, "errors", {"status": "5.1.1", "errortype": "hard",
                                        "timestamp": "2099-01-02 03:04:05"})  # fmt: skip
    assert refusal(relay, token, "ann@example.org")[0] == 550
    run = CliRunner()
    db = ["--db", settings.db]
    out = run.invoke(cli, ["suppressions", "add", "--account", "acme", "zed@example.org", *db])
    assert out.exit_code == 0, out.output
    code, text = refusal(relay, token, "zed@example.org")
    assert code == 550 and b"put on the suppression list" in text
    out = run.invoke(cli, ["suppressions", "list", "--account", "acme", *db])
    lines = sorted(out.output.splitlines())
    assert lines[0].startswith(f"ann@example.org\tbounce\t2099-01-02 03:04:05\t{ann}")
    assert lines[1].startswith("zed@example.org\tmanual\t")
    out = run.invoke(cli, ["suppressions", "remove", "--account", "acme", "zed@example.org", *db])
    assert out.exit_code == 0 and refusal(relay, token, "zed@example.org")[0] == 250
    out = run.invoke(cli, ["suppressions", "remove", "--account", "acme", "zed@example.org", *db])
    assert out.exit_code == 1 and "not on the list" in out.output
    out = run.invoke(cli, ["suppressions", "add", "--account", "acme", "not an address", *db])
    assert out.exit_code == 2 and "Not an email address" in out.output
    # another account sees nothing of it
    other = app.store.create_token("other", "Europe/Amsterdam")
    assert get(http, other, "ms/suppressions")["total"] == 0


def test_delete_of_what_is_no_address(http: TestClient, token: str) -> None:
    for path in ("a%00b@example.org", "x" * 400, "%C3%A9@example.org", "nobody@example.org"):
        r = http.delete(f"/v2/ms/suppressions/{path}", params={"access_token": token})
        assert r.status_code == 400 and r.json() == {
            "error": {"message": "No entity with supplied ID"}
        }
    r = http.delete("/v2/ms/suppressions/a@example.org")
    assert r.status_code == 400 and r.json() == {"error": {"message": "Invalid access token"}}
