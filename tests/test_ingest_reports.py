"""Report emails and SNS notifications on POST ms/reports(/sns), on both backends: every
format family, several recipients per bounce, not-a-bounce answers, signatures checked."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from starlette.testclient import TestClient

from mailstats.reports.sns import string_to_sign
from mailstats.settings import Settings
from mailstats.web.app import App, create_app
from tests.helpers import (
    add_destinations,
    error,
    mailing,
    make_emailing,
    message_key,
    page,
    report_with_key,
    total,
)
from tests.test_reports_corpus import LABELS, NOT_BOUNCES, REPORTS

FIXTURES = Path(__file__).parent / "fixtures" / "reports"
PUBLIC = "http://t.example.com"


def post(http: TestClient, token: str, raw: bytes) -> httpx.Response:
    return http.post(f"/v2/ms/reports?access_token={token}", content=raw,
                     headers={"content-type": "message/rfc822"})  # fmt: skip


def stored(http: TestClient, token: str) -> dict[str, int]:
    return {k: total(http, token, f"ms/{k}") for k in ("errors", "abuses", "deliveries")}


def test_every_labelled_sample_is_stored_on_its_destination(
    app: App, http: TestClient, token: str
) -> None:
    """One emailing per sample, with a destination for every recipient its label names."""
    wrong = {}
    for name, label in sorted(REPORTS.items()):
        emailing = make_emailing(http, token, "<p>Hi</p>")
        people = [e.get("recipient") or f"x{n}@example.org" for n, e in enumerate(label["events"])]
        dests = add_destinations(http, token, emailing, *({"email": p} for p in people))
        r = post(http, token, report_with_key(name, message_key(app, dests[0])))
        if (r.status_code, r.headers.get("x-created")) != (201, str(len(dests))):
            wrong[name] = (r.status_code, r.text, r.headers.get("x-created"))
            continue
        for dest, want in zip(dests, label["events"], strict=True):
            items = page(http, token, f"ms/destination/{dest}/{want['kind']}")["data"]
            if len(items) != 1:
                wrong[name] = items
            elif want["kind"] == "errors" and (items[0]["status"], items[0]["errortype"]) != (
                want["status"], want["errortype"]
            ):  # fmt: skip
                wrong[name] = items[0]
    assert wrong == {}


def test_auto_replies_answer_not_a_bounce_and_store_nothing(
    app: App, http: TestClient, token: str, m: Any
) -> None:
    key = message_key(app, m.destinations[0])
    for name in NOT_BOUNCES:
        r = post(http, token, report_with_key(name, key))
        assert r.status_code == 200 and r.content == b"", (name, r.text)
        assert r.headers["x-created"] == "0" and r.headers["x-not-a-bounce"], name
    assert stored(http, token) == {"errors": 0, "abuses": 0, "deliveries": 0}


def test_several_recipients_one_error_each_and_x_created_counts_what_is_stored(
    app: App, http: TestClient, token: str
) -> None:
    emailing = make_emailing(http, token, "<p>Hi</p>")
    one, two, three = add_destinations(
        http, token, emailing, *({"email": e} for e in ("One@Example.org", "two@example.org",
                                                         "three@example.org"))
    )  # fmt: skip
    raw = report_with_key("dsn/three_recipients.eml", message_key(app, one))
    r = post(http, token, raw)
    assert (r.status_code, r.headers["x-created"]) == (201, "3")
    for dest, errortype in ((one, "hard"), (two, "soft"), (three, "soft")):
        [item] = page(http, token, f"ms/destination/{dest}/errors")["data"]
        assert item["errortype"] == errortype
    again = post(http, token, raw)
    assert (again.status_code, again.headers["x-created"]) == (201, "0")  # stored before
    assert total(http, token, "ms/errors") == 3


def test_recipients_that_are_no_destination_count_once_for_the_named_one(
    app: App, http: TestClient, token: str
) -> None:
    mm = mailing(app, http, token, destinations=1)  # r0@example.org only
    raw = report_with_key("plain/exim_two_recipients.eml", message_key(app, mm.destinations[0]))
    r = post(http, token, raw)
    assert (r.status_code, r.headers["x-created"]) == (201, "1")
    assert total(http, token, "ms/errors") == 1


def test_bad_input_is_a_400_and_stores_nothing(app: App, http: TestClient, token: str) -> None:
    for raw, message in [
        (b"From: a@example.org\nSubject: hi\n\nHello there\n", "not a bounce or complaint"),
        ((FIXTURES / "plain/malformed_no_address.eml").read_bytes(), "names no failed address"),
        (b'Subject: AWS Notification\n\n{"notificationType": "Bounce"}', "no 'mail' object"),
        (b"\xff\xfe\x00" * 1000, "not a bounce or complaint"),
    ]:
        assert message in error(post(http, token, raw))
    assert stored(http, token) == {"errors": 0, "abuses": 0, "deliveries": 0}


# --- SNS over HTTP ----------------------------------------------------------------------


def make_certificate(tmp: Path, name: str) -> tuple[rsa.RSAPrivateKey, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    path = tmp / f"{name}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, path


def sign(message: dict[str, Any], key: rsa.RSAPrivateKey, version: str = "1") -> dict[str, Any]:
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    signed = {**message, "SignatureVersion": version}
    raw = key.sign(string_to_sign(signed), padding.PKCS1v15(), algorithm)
    return {**signed, "Signature": base64.b64encode(raw).decode()}


@pytest.fixture
def sns_app(settings: Settings, tmp_path: Path) -> Iterator[tuple[App, rsa.RSAPrivateKey]]:
    key, pem = make_certificate(tmp_path, "sns-test")
    app = create_app(settings.replace(sns_certificates=str(pem)))
    yield app, key
    app.close()


def sns_post(http: TestClient, token: str, message: dict[str, Any]) -> httpx.Response:
    return http.post(f"/v2/ms/reports/sns?access_token={token}", content=json.dumps(message),
                     headers={"content-type": "text/plain; charset=UTF-8"})  # fmt: skip


def test_sns_notification_with_a_trusted_signature_is_stored(
    sns_app: tuple[App, rsa.RSAPrivateKey], tmp_path: Path
) -> None:
    app, key = sns_app
    token = app.store.create_token("acme", "Europe/Amsterdam")
    with TestClient(app, base_url=PUBLIC) as http:
        mm = mailing(app, http, token, destinations=1)
        text = (FIXTURES / "ses/sns_bounce.json").read_text()
        message = json.loads(text.replace("ms-SnsB0unce7", message_key(app, mm.destinations[0])))
        for version in ("1", "2"):
            r = sns_post(http, token, sign(message, key, version))
            assert r.status_code == 201, r.text
        [item] = page(http, token, "ms/errors")["data"]  # the same notification twice: once
        assert (item["status"], item["errortype"]) == ("5.1.1", "hard")

        stranger, _ = make_certificate(tmp_path, "stranger")
        forged = sign(message, stranger)
        assert "does not match any trusted certificate" in error(sns_post(http, token, forged))
        tampered = {**sign(message, key), "Message": message["Message"].replace("5.1.1", "4.2.2")}
        assert "does not match" in error(sns_post(http, token, tampered))
        unsigned = {**message, "Signature": "", "SignatureVersion": "1"}
        assert "Signature" in error(sns_post(http, token, unsigned))
        assert "not valid JSON" in error(
            http.post(f"/v2/ms/reports/sns?access_token={token}", content=b"{")
        )
        confirm = sign({"Type": "SubscriptionConfirmation", "MessageId": "m1", "Token": "t",
                        "TopicArn": "arn:aws:sns:eu-west-1:1:x", "Message": "confirm",
                        "SubscribeURL": "https://sns.example/confirm", "Timestamp": "now"}, key)  # fmt: skip
        r = sns_post(http, token, confirm)
        assert (r.status_code, r.headers["x-created"]) == (200, "0")
        assert total(http, token, "ms/errors") == 1


def test_sns_is_refused_until_certificates_are_set(http: TestClient, token: str) -> None:
    message = json.loads((FIXTURES / "ses/sns_bounce.json").read_text())
    assert "set sns_certificates" in error(sns_post(http, token, message))


def test_a_bad_certificate_file_is_a_settings_error(settings: Settings, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(Exception, match="sns_certificates"):
        settings.replace(sns_certificates=str(bad))


def test_labels_cover_the_sns_sample() -> None:
    assert "ses/sns_bounce.json" not in LABELS  # posted over HTTP above, not as an email


# --- extended=true: the reason ----------------------------------------------------------


def test_reasons_only_with_extended_and_counted_in_statistics(
    app: App, http: TestClient, token: str
) -> None:
    emailing = make_emailing(http, token, "<p>Hi</p>")
    one, two, three = add_destinations(http, token, emailing, *({"email": e} for e in (
        "one@example.org", "two@example.org", "three@example.org")))  # fmt: skip
    assert post(http, token, report_with_key("dsn/three_recipients.eml",
                                             message_key(app, one))).status_code == 201  # fmt: skip
    r = http.post(f"/v2/ms/destination/{two}/errors?access_token={token}",
                  json={"status": "5.7.1", "description": "blocked using zen.spamhaus.org",
                        "errortype": "soft"})  # fmt: skip
    assert r.status_code == 201
    plain = page(http, token, f"ms/emailing/{emailing}/errors")["data"]
    assert all("reason" not in item for item in plain)
    assert list(plain[0]) == ["ID", "mailing", "timestamp", "status", "errorcode",
                              "description", "errortype", "destination", "profile",
                              "subprofile"]  # fmt: skip
    extended = page(http, token, f"ms/emailing/{emailing}/errors", "extended=true")["data"]
    assert [i["reason"] for i in extended] == ["userunknown", "mailboxfull", "suspend", "blocked"]
    assert [{k: v for k, v in i.items() if k != "reason"} for i in extended] == plain
    only = page(http, token, "ms/errors", "extended=true&fields[]=reason==mailboxfull")
    assert [i["destination"] for i in only["data"]] == [str(two)]

    stats = http.get(f"/v2/ms/emailing/{emailing}/statistics", params={"access_token": token})
    assert stats.json()["errors"] == {"total": 4, "unique": 3}
    counted = http.get(f"/v2/ms/emailing/{emailing}/statistics",
                       params={"access_token": token, "extended": "true"}).json()  # fmt: skip
    assert counted["errors"] == {"total": 4, "unique": 3, "reasons": {
        "blocked": 1, "mailboxfull": 1, "suspend": 1, "userunknown": 1}}  # fmt: skip
    # extended=true adds the errors' reasons and the implied opens, nothing else
    assert counted["impressions"] == {**stats.json()["impressions"], "implied": 0}
    assert {k: v for k, v in counted.items() if k not in ("errors", "impressions")} == {
        k: v for k, v in stats.json().items() if k not in ("errors", "impressions")
    }
    bad = http.post(f"/v2/ms/destination/{three}/errors?access_token={token}",
                    json={"status": "5.1.1", "reason": "gone"})  # fmt: skip
    assert "Invalid value for 'reason'" in error(bad)
