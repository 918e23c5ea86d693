"""The relay's STARTTLS and DKIM signing, with keys and a certificate made by openssl here."""

from __future__ import annotations

import base64
import re
import smtplib
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import dkim
import pytest

from mailstats.relay import Background
from mailstats.relay.server import _loopback
from mailstats.settings import Settings
from mailstats.web.app import App
from tests.smtp_sink import Sink
from tests.test_relay import message, parsed, part, relay_settings, send


@pytest.fixture
def sink() -> Iterator[Sink]:
    with Sink() as s:
        yield s


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def test_dkim_signature_after_rewriting(
    app: App, settings: Settings, sink: Sink, token: str, tmp_path: Path
) -> None:
    key, public = tmp_path / "dkim.pem", tmp_path / "dkim.pub"
    openssl("genrsa", "-traditional", "-out", str(key), "2048")
    openssl("rsa", "-in", str(key), "-pubout", "-outform", "DER", "-out", str(public))
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public.read_bytes())
    signed = relay_settings(
        settings, sink, dkim_key=str(key), dkim_selector="s1", dkim_domain="shop.example"
    )
    with Background(signed, app.store) as relay:
        send(relay, message(), password=token)
    [got] = sink.received
    assert got.data.startswith(
        b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=shop.example;"
    )
    copy = parsed(got.data)
    assert 'href="http://t.test/c/' in part(copy, "text/html").get_content()  # rewritten first

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"s1._domainkey.shop.example."
        return record

    assert dkim.verify(got.data, dnsfunc=dns)
    assert not dkim.verify(got.data.replace(b"Autumn sale", b"Autumn sa1e"), dnsfunc=dns)


def test_starttls_then_auth(
    app: App, settings: Settings, sink: Sink, token: str, tmp_path: Path
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
            str(cert), "-days", "2", "-subj", "/CN=relay.test")  # fmt: skip
    tls = relay_settings(settings, sink, smtp_tls_cert=str(cert), smtp_tls_key=str(key))
    with Background(tls, app.store) as relay, smtplib.SMTP("127.0.0.1", relay.port) as smtp:
        smtp.ehlo()
        assert "starttls" in smtp.esmtp_features
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        smtp.starttls(context=context)
        smtp.ehlo()
        assert "auth" in smtp.esmtp_features
        smtp.login("acme", token)
        smtp.sendmail("news@shop.example", ["ann@example.org"], message())
    assert len(sink.received) == 1


def test_auth_in_the_clear_only_from_loopback() -> None:
    """Which peers may AUTH before STARTTLS (the relay sets this for each connection)."""
    assert _loopback(("127.0.0.1", 4000)) and _loopback(("::1", 4000, 0, 0))
    assert not _loopback(("192.0.2.10", 4000)) and not _loopback(("2001:db8::1", 4000, 0, 0))
    assert not _loopback(None)


def test_settings_that_go_together(settings: Settings) -> None:
    from mailstats.errors import InvalidParameter

    for bad in ({"smtp_tls_cert": "x.pem"}, {"dkim_key": "k.pem"}, {"smtp_listen": "nohost"},
                {"smtp_next_hop": "host:99999"}, {"smtp_max_bytes": 10}):  # fmt: skip
        with pytest.raises(InvalidParameter, match=re.escape(next(iter(bad)))):
            settings.replace(**bad)
