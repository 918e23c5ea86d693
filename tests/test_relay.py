"""The SMTP relay, over real SMTP: smtplib sends to the relay on a loopback port, and a real
SMTP server (tests/smtp_sink.py) is its next hop, on both backends."""

from __future__ import annotations

import email
import email.policy
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage, Message
from typing import Any

import pytest
from starlette.testclient import TestClient

from mailstats.relay import Background, Relay
from mailstats.settings import Settings
from mailstats.web.app import App
from tests.helpers import body_html
from tests.smtp_sink import Sink

HTML = (
    "<html><head><title>Sale</title></head><body>\n"
    '<p>Hello <a href="https://shop.example/a?x=1&amp;y=2">A</a>\n'
    "<a href='https://shop.example/b'>B</a> <a href=\"mailto:x@shop.example\">mail</a></p>\n"
    "</body></html>\n"
)
TEXT = "Hello, see https://shop.example/a?x=1&y=2 and https://shop.example/b.\n"


@pytest.fixture
def sink() -> Iterator[Sink]:
    with Sink() as s:
        yield s


def relay_settings(settings: Settings, sink: Sink, **more: Any) -> Settings:
    return settings.replace(
        smtp_listen="127.0.0.1:0", smtp_next_hop=f"127.0.0.1:{sink.port}", **more
    )


@pytest.fixture
def relay(app: App, settings: Settings, sink: Sink) -> Iterator[Relay]:
    with Background(relay_settings(settings, sink), app.store) as r:
        yield r


def message(
    to: str = "ann@example.org",
    *,
    subject: str = "Autumn sale",
    emailing: str | None = "autumn",
    html: str | None = HTML,
    text: str | None = TEXT,
    message_id: str | None = "<m1@shop.example>",
    **headers: str,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Shop <news@shop.example>"
    msg["To"] = to
    msg["Subject"] = subject
    if message_id:
        msg["Message-ID"] = message_id
    if emailing:
        msg["X-Mailstats-Emailing"] = emailing
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    if text is not None:
        msg.set_content(text)
    if html is not None:
        if text is None:
            msg.set_content(html, subtype="html")
        else:
            msg.add_alternative(html, subtype="html")
    return msg.as_bytes(policy=email.policy.SMTP)


def send(
    relay: Relay,
    raw: bytes,
    to: list[str] | None = None,
    *,
    user: str = "acme",
    password: str,
    sender: str = "news@shop.example",
    **options: Any,
) -> dict[str, tuple[int, bytes]]:
    with smtplib.SMTP("127.0.0.1", relay.port) as smtp:
        smtp.login(user, password)
        return smtp.sendmail(sender, to or ["ann@example.org"], raw, **options)


def parsed(data: bytes) -> Message:
    return email.message_from_bytes(data, policy=email.policy.default)


def part(msg: Message, ctype: str) -> Any:
    found = next(p for p in msg.walk() if p.get_content_type() == ctype)
    return found


def get(http: TestClient, token: str, path: str) -> Any:
    r = http.get(f"/v2/{path}", params={"access_token": token})
    assert r.status_code == 200, r.text
    return r.json()


def test_one_copy_tracked_like_body_html(
    relay: Relay, sink: Sink, http: TestClient, token: str
) -> None:
    send(relay, message(), password=token)
    [got] = sink.received
    emailings = get(http, token, "ms/emailings")["data"]
    assert [e["subject"] for e in emailings] == ["Autumn sale"]
    [dest] = get(http, token, f"ms/emailing/{emailings[0]['id']}/destinations")["data"]
    copy = parsed(got.data)
    # the HTML part is exactly what the API renders for this destination
    assert part(copy, "text/html").get_content() == body_html(http, token, int(dest["ID"]))
    assert "https://shop.example/a" not in part(copy, "text/html").get_content()
    assert "mailto:x@shop.example" in part(copy, "text/html").get_content()
    headers = get(http, token, f"ms/destination/{dest['ID']}/headers")
    assert got.sender == headers["Return-Path"].strip("<>")
    assert got.sender.startswith("bounces+") and got.sender.endswith("@shop.example")
    assert got.recipients == ["ann@example.org"]
    assert copy["List-Unsubscribe"] == headers["List-Unsubscribe"]
    assert copy["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert copy["X-Mailstats-Emailing"] is None
    assert copy["Message-ID"] == "<m1@shop.example>"  # the sender's own stays
    assert part(copy, "text/plain").get_content().replace("\r\n", "\n") == TEXT  # untouched
    # the tracked link takes a recipient where the message pointed
    link = http.get(
        body_html(http, token, int(dest["ID"])).split('href="http://t.test', 1)[1].split('"')[0]
    )
    assert link.status_code == 302
    assert link.headers["location"] == "https://shop.example/a?x=1&y=2"


def test_every_other_byte_of_the_message_unchanged(relay: Relay, sink: Sink, token: str) -> None:
    raw = message(emailing=None, Reply_To="help@shop.example")
    send(relay, raw, password=token)
    [got] = sink.received
    # the header block as it came, the added headers after it
    assert got.data.split(b"\r\n\r\n", 1)[0].startswith(raw.split(b"\r\n\r\n", 1)[0] + b"\r\n")
    text_part = raw.split(b"\r\n\r\n", 3)[2].split(b"\r\n--", 1)[0]
    assert text_part in got.data
    sent, copy = parsed(raw), parsed(got.data)
    for name in ("From", "To", "Subject", "Reply-To", "Content-Type", "MIME-Version"):
        assert copy[name] == sent[name]
    assert part(copy, "text/plain").as_bytes() == part(sent, "text/plain").as_bytes()
    html_in = part(sent, "text/html").get_content()
    html_out = part(copy, "text/html").get_content()
    assert html_out.startswith(html_in.split('href="', 1)[0])
    assert html_out.endswith("</body></html>\r\n")
    assert '<img src="http://t.test/o/' in html_out


def test_a_message_that_cannot_be_spliced_is_written_out_again(
    relay: Relay, sink: Sink, token: str
) -> None:
    """The same HTML twice (the second an attachment): its body is not found once."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "news@shop.example", "ann@example.org", "Twice"
    msg.set_content(HTML, subtype="html")
    msg.add_attachment(HTML, subtype="html", filename="copy.html")
    send(relay, msg.as_bytes(policy=email.policy.SMTP), password=token)
    copy = parsed(sink.received[0].data)
    body, attachment = (p.get_content() for p in copy.walk() if p.get_content_type() == "text/html")
    assert 'href="http://t.test/c/' in body and '<img src="http://t.test/o/' in body
    assert attachment.replace("\r\n", "\n") == HTML
    assert copy["List-Unsubscribe"].startswith("<http://t.test/u/")


def test_text_part_tracked_when_set(
    app: App, settings: Settings, sink: Sink, http: TestClient, token: str
) -> None:
    with Background(relay_settings(settings, sink, smtp_track_text=True), app.store) as relay:
        send(relay, message(), password=token)
    text = part(parsed(sink.received[0].data), "text/plain").get_content()
    assert "https://shop.example" not in text
    assert text.startswith("Hello, see http://t.test/c/") and text.endswith(".\r\n")
    path = text.split("http://t.test", 2)[2].split(".", 1)[0].strip()
    assert http.get(path).headers["location"] == "https://shop.example/b"


def test_one_copy_per_recipient_each_a_destination(
    relay: Relay, sink: Sink, http: TestClient, token: str
) -> None:
    rcpts = ["ann@example.org", "bob@example.org", "cy@example.org"]
    send(relay, message(), rcpts, password=token)
    assert sorted(r.recipients[0] for r in sink.received) == rcpts
    assert len({r.sender for r in sink.received}) == 3  # a bounce address each
    emailing = get(http, token, "ms/emailings")["data"][0]
    assert emailing["destinations"] == "3"
    # a second message with the same key joins the emailing; a retry is the same destination
    send(
        relay,
        message("dee@example.org", message_id="<m2@shop.example>"),
        ["dee@example.org"],
        password=token,
    )
    send(relay, message(), ["bob@example.org"], password=token)
    assert len(get(http, token, "ms/emailings")["data"]) == 1
    dests = get(http, token, f"ms/emailing/{emailing['id']}/destinations")["data"]
    assert len(dests) == 4
    bob = [r.sender for r in sink.received if r.recipients == ["bob@example.org"]]
    assert len(bob) == 2 and bob[0] == bob[1]


def test_without_the_header_one_emailing_per_sender_and_subject(
    relay: Relay, sink: Sink, http: TestClient, token: str
) -> None:
    send(relay, message(emailing=None, message_id="<a@x>"), password=token)
    send(relay, message(emailing=None, message_id="<b@x>"), password=token)
    send(relay, message(emailing=None, subject="Other", message_id="<c@x>"), password=token)
    subjects = sorted(e["subject"] for e in get(http, token, "ms/emailings")["data"])
    assert subjects == ["Autumn sale", "Other"]


def test_who_may_send(app: App, relay: Relay, sink: Sink, token: str) -> None:
    other = app.store.create_token("other", "Europe/Amsterdam")
    with smtplib.SMTP("127.0.0.1", relay.port) as smtp:
        smtp.ehlo()
        assert "auth" in smtp.esmtp_features  # loopback: AUTH without TLS
        code, text = smtp.mail("news@shop.example")
        assert (code, text[:5]) == (530, b"5.7.0")
    for user, password in (("acme", "wrong"), ("acme", other), ("other", token)):
        with smtplib.SMTP("127.0.0.1", relay.port) as smtp:
            with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
                smtp.login(user, password)
            assert refused.value.smtp_code == 535
    with smtplib.SMTP("127.0.0.1", relay.port) as smtp:  # AUTH LOGIN works too
        smtp.ehlo()
        smtp.user, smtp.password = "acme", token
        code, _ = smtp.auth("LOGIN", smtp.auth_login)
        assert code == 235
    assert sink.received == []
    assert app.store.emailings(1, start=0, limit=10, total=True).total == 0


def test_next_hop_down_4xx_and_5xx(
    app: App, relay: Relay, sink: Sink, http: TestClient, token: str
) -> None:
    sink.stop()
    with pytest.raises(smtplib.SMTPDataError) as down:
        send(relay, message(), password=token)
    assert down.value.smtp_code == 451 and b"4.4.1" in down.value.smtp_error
    sink.start()
    sink.data_reply = "452 4.3.1 Insufficient system storage"
    with pytest.raises(smtplib.SMTPDataError) as soft:
        send(relay, message(), password=token)
    assert soft.value.smtp_code == 451 and b"452 4.3.1" in soft.value.smtp_error
    sink.data_reply = "554 5.7.1 Not welcome here"
    with pytest.raises(smtplib.SMTPDataError) as hard:
        send(relay, message(), password=token)
    assert hard.value.smtp_code == 554 and hard.value.smtp_error.startswith(b"5.7.1")
    assert b"Not welcome here" in hard.value.smtp_error
    # nothing was kept for copies that went nowhere
    assert get(http, token, "ms/emailings")["total"] == 0
    sink.data_reply = None
    send(relay, message(), password=token)
    assert len(sink.received) == 1


def test_a_kept_connection_the_next_hop_closed_is_replaced(
    relay: Relay, sink: Sink, token: str
) -> None:
    send(relay, message(message_id="<k1@shop.example>"), password=token)
    sink.drop()  # the relay's kept connection is now closed at the other end
    assert send(relay, message(message_id="<k2@shop.example>"), password=token) == {}
    # each message reached the next hop exactly once
    ids = [parsed(r.data)["Message-ID"] for r in sink.received]
    assert ids == ["<k1@shop.example>", "<k2@shop.example>"]


def test_some_copies_refused(relay: Relay, sink: Sink, http: TestClient, token: str) -> None:
    sink.rcpt_replies["bob@example.org"] = "550 5.1.1 No such user"
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(relay, message(), ["ann@example.org", "bob@example.org"], password=token)
    assert refused.value.smtp_code == 550 and b"1 of 2 accepted" in refused.value.smtp_error
    assert [r.recipients for r in sink.received] == [["ann@example.org"]]
    emailing = get(http, token, "ms/emailings")["data"][0]
    assert emailing["destinations"] == "1"  # bob's destination was undone
    sink.rcpt_replies["bob@example.org"] = "450 4.2.1 Try later"
    with pytest.raises(smtplib.SMTPDataError) as later:
        send(relay, message(), ["ann@example.org", "bob@example.org"], password=token)
    assert later.value.smtp_code == 451


DEFECTIVE = (
    b"From: news@shop.example\r\nTo: ann@example.org\r\nSubject: broken\r\n"
    b'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="b1"\r\n\r\n'
    b'--b1\r\nContent-Type: text/html\r\n\r\n<a href="https://shop.example/a">A</a>\r\n'
)  # the closing boundary is missing
SIGNED = (
    b"DKIM-Signature: v=1; a=rsa-sha256; d=shop.example; s=s1; h=from; bh=x; b=y\r\n"
    b"From: news@shop.example\r\nTo: ann@example.org\r\nSubject: signed\r\n"
    b'Content-Type: text/html\r\n\r\n<a href="https://shop.example/a">A</a>\r\n'
)


@pytest.mark.parametrize("raw", [DEFECTIVE, SIGNED], ids=["mime-defects", "dkim-signed"])
def test_forwarded_byte_for_byte(
    raw: bytes, relay: Relay, sink: Sink, http: TestClient, token: str
) -> None:
    send(relay, raw, password=token)
    [got] = sink.received
    assert got.data == raw
    assert got.sender == "news@shop.example"
    assert relay.counts["messages untracked"] == 1
    assert get(http, token, "ms/emailings")["total"] == 0


def test_size_limit(app: App, settings: Settings, sink: Sink, token: str) -> None:
    with Background(relay_settings(settings, sink, smtp_max_bytes=4096), app.store) as relay:
        with smtplib.SMTP("127.0.0.1", relay.port) as smtp:
            smtp.ehlo()
            assert smtp.esmtp_features["size"] == "4096"
        with pytest.raises(smtplib.SMTPException) as big:
            send(relay, message(html=HTML * 50), password=token)
        assert "552" in str(big.value) and "5.3.4" in str(big.value)
        with smtplib.SMTP("127.0.0.1", relay.port) as smtp:  # no SIZE given: refused after DATA
            smtp.login("acme", token)
            smtp.mail("news@shop.example")
            smtp.rcpt("ann@example.org")
            code, text = smtp.data(message(html=HTML * 50))
            assert code == 552 and text.startswith(b"5.3.4")
    assert sink.received == []


def test_internationalised_addresses_and_8bit(
    relay: Relay, sink: Sink, http: TestClient, token: str
) -> None:
    rcpts = ["hélène@example.org", "ann@exämple.org"]
    raw = message(
        "hélène@example.org",
        subject="Été",
        html="<p>Été <a href='https://shop.example/é'>x</a></p>",
    )
    raw = email.message_from_bytes(raw, policy=email.policy.SMTPUTF8).as_bytes()
    send(relay, raw, rcpts, password=token, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    assert sorted(r.recipients[0] for r in sink.received) == sorted(rcpts)
    assert all("SMTPUTF8" in r.options and "BODY=8BITMIME" in r.options for r in sink.received)
    emailing = get(http, token, "ms/emailings")["data"][0]
    assert emailing["subject"] == "Été"
    # the API takes such addresses too
    r = http.post(
        f"/v2/ms/emailing/{emailing['id']}/destinations",
        params={"access_token": token},
        json=[{"email": "hélène@example.org"}, {"email": "ann@exämple.org"}],
    )
    assert r.status_code == 201, r.text
    mime = http.get(f"/v2/ms/destination/{r.headers['x-created'].split(',')[0]}/body/mime",
                    params={"access_token": token})  # fmt: skip
    assert mime.status_code == 200
    assert "To: hélène@example.org" in mime.content.decode()


def test_bad_input_gets_clear_replies(relay: Relay, sink: Sink, token: str) -> None:
    with smtplib.SMTP("127.0.0.1", relay.port) as smtp:
        smtp.login("acme", token)
        smtp.mail("news@shop.example")
        code, text = smtp.rcpt("not an address")
        assert code == 553 and text.startswith(b"5.1.3")
        code, _ = smtp.rcpt("ann@example.org")
        assert code == 250
        code, text = smtp.data(message(emailing="x" * 300))
        assert code == 554 and text.startswith(b"5.6.0")
    assert sink.received == []


def test_mailstats_relay_command(
    settings: Settings, sink: Sink, http: TestClient, token: str
) -> None:
    """`mailstats relay` as an operator runs it (two worker processes), until SIGTERM."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailstats", "relay", "--db", settings.db, "--public-url",
         "http://t.test", "--listen", f"127.0.0.1:{port}", "--next-hop", f"127.0.0.1:{sink.port}",
         "--workers", "2"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:  # until it listens (another process; not a timing test)
            try:
                smtp = smtplib.SMTP("127.0.0.1", port)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr
                time.sleep(0.1)
        smtp.close()
        for n in range(4):  # over four connections: both workers take some
            with smtplib.SMTP("127.0.0.1", port) as smtp:
                smtp.login("acme", token)
                smtp.sendmail("news@shop.example", [f"r{n}@example.org"], message())
    finally:
        proc.send_signal(signal.SIGTERM)
        _, said = proc.communicate(timeout=30)
    assert proc.returncode == 0, said
    assert "mailstats relay on 127.0.0.1:" in said
    assert len(sink.received) == 4
    for got in sink.received:
        assert 'href="http://t.test/c/' in part(parsed(got.data), "text/html").get_content()
    assert get(http, token, "ms/emailings")["total"] == 1


def test_destination_addresses_over_the_api(http: TestClient, token: str) -> None:
    """RFC 6531 addresses are destinations; what is no address at all still is not."""
    r = http.post(
        "/v2/ms/emailings",
        params={"access_token": token},
        json={"subject": "s", "from_address": {"email": "nouvelles@bôutique.example"}, "html": "x"},
    )
    assert r.status_code == 201, r.text
    emailing = r.headers["x-created"]
    good = ["hélène@example.org", "ann@exämple.org", "用户@例子.广告", "a.b+c@example.org"]
    bad = ["plain", "a b@example.org", "a@exa mple.org", "a\u3000b@example.org", "a@", "@b",
           "a..b@example.org", "a@b..c", "a\u0085b@example.org", "é@x\n"]  # fmt: skip
    for address in good:
        r = http.post(f"/v2/ms/emailing/{emailing}/destinations",
                      params={"access_token": token}, json={"email": address})  # fmt: skip
        assert r.status_code == 201, (address, r.text)
    created = r.headers["x-created"]
    for address in bad:
        r = http.post(f"/v2/ms/emailing/{emailing}/destinations",
                      params={"access_token": token}, json={"email": address})  # fmt: skip
        assert r.status_code == 400, address
        assert r.json() == {"error": {"message": "Invalid value for 'email': an email address"}}
    mime = http.get(f"/v2/ms/destination/{created}/body/mime", params={"access_token": token})
    assert mime.status_code == 200
    assert "From: nouvelles@bôutique.example" in mime.content.decode()


ODD = [
    b"",  # nothing at all
    b"just text, no headers at all\r\n",
    b"Subject: no from\r\n\r\nbody\r\n",
    b"From: news@shop.example\r\nContent-Type: text/html; charset=nonesuch\r\n\r\n<a href='https://x.example/'>x</a>\r\n",
    b"From: news@shop.example\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n",
    b"From: news@shop.example\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\n--x--\r\n",
    b"From: =?utf-8?q?=FF=FE?= <news@shop.example>\r\nSubject: =?bogus?q?x?=\r\n\r\n\xff\xfe\x00 binary\r\n",
    b"From: news@shop.example\r\nContent-Type: text/html\r\n\r\n<a href='https://x.example/\x00'>x</a><![bogus[</body>\r\n",
]


@pytest.mark.parametrize("raw", ODD, ids=range(len(ODD)))
def test_odd_messages_are_relayed_or_refused_never_a_local_failure(
    raw: bytes, relay: Relay, sink: Sink, token: str
) -> None:
    try:
        send(relay, raw, password=token)
    except smtplib.SMTPDataError as exc:
        assert exc.smtp_code >= 500, exc  # refused with a reason; a 451 4.3.0 would be a crash
    else:
        [got] = sink.received
        assert got.recipients == ["ann@example.org"]


def test_stopping_lets_a_message_being_relayed_get_its_answer(
    app: App, settings: Settings, sink: Sink, token: str
) -> None:
    sink.hold = threading.Event()
    answers: list[object] = []
    background = Background(relay_settings(settings, sink), app.store)
    relay = background.__enter__()

    def client() -> None:
        try:
            answers.append(send(relay, message(), password=token))
        except smtplib.SMTPException as exc:
            answers.append(exc)

    sender = threading.Thread(target=client)
    sender.start()
    assert sink.holding.wait(30)  # the copy is at the next hop, not yet answered
    stopping = threading.Thread(target=background.__exit__, args=(None, None, None))
    stopping.start()
    sink.hold.set()
    sender.join(30)
    stopping.join(30)
    assert answers == [{}]  # 250: accepted, nobody refused
    assert len(sink.received) == 1
