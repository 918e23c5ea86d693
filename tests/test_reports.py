"""Bounce (DSN) and complaint (ARF) messages read into events: the fixtures in
fixtures/reports, edge cases built from them, and fuzzing."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mailstats.reports
from mailstats.reports import (
    BounceEvent,
    ComplaintEvent,
    DeliveryEvent,
    NotABounce,
    ReportError,
    parse_report,
)

FIXTURES = Path(__file__).parent / "fixtures" / "reports"


def read(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def utc(year: int, month: int, day: int, hour: int, minute: int, second: int) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def bounce(tag: str, **fields: object) -> BounceEvent:
    """The usual event: the Message-ID and the VERP tag both name the sent message."""
    defaults: dict[str, object] = {
        "identifiers": (f"{tag}@mail.example.com", tag),
        "errortype": "hard",
        "action": "failed",
    }
    return BounceEvent(**{**defaults, **fields})  # type: ignore[arg-type]


BOUNCES: dict[str, list[BounceEvent]] = {
    "dsn/postfix_user_unknown.eml": [
        bounce(
            "ms-Abc123XyZ",
            recipient="bob.jansen@example.org",
            timestamp=utc(2024, 3, 5, 10, 15, 1),  # Arrival-Date: no Last-Attempt-Date
            status="5.1.1",
            errorcode="550",
            description="550 5.1.1 <bob.jansen@example.org>: Recipient address rejected: "
            "User unknown in virtual mailbox table",
            reason="userunknown",
        )
    ],
    "dsn/gmail_no_such_user.eml": [
        bounce(
            "ms-Gm4iLb0unc",
            recipient="no.such.user@gmail.com",
            timestamp=utc(2024, 3, 5, 12, 31, 22),  # Last-Attempt-Date, from -0800
            status="5.1.1",
            errorcode="550",
            description="550 5.1.1 The email account that you tried to reach does not exist. "
            "Please try double-checking the recipient's email address for typos or unnecessary "
            "spaces. For more information, go to https://support.google.com/mail/?p=NoSuchUser "
            "a9-20020a05600c1d0900b004129f28e2e4si1234567wms.171 - gsmtp",
            reason="userunknown",
        )
    ],
    "dsn/exchange_online_ndr.eml": [
        bounce(
            "ms-Ex9Ch4nGe1",
            recipient="j.doe@contoso.com",
            timestamp=utc(2024, 3, 6, 9, 12, 40),
            status="5.1.10",
            errorcode="550",
            description="550 5.1.10 RESOLVER.ADR.RecipientNotFound; "
            "Recipient not found by SMTP address lookup",
            reason="userunknown",  # Exchange's 5.1.10 is not a null MX: its words say so
        )
    ],
    "dsn/yahoo_no_account.eml": [
        bounce(
            "ms-Yh00Ac9tNo",
            recipient="gone.user@yahoo.com",
            timestamp=utc(2024, 3, 7, 16, 20, 3),
            status="5.0.0",
            errorcode="554",
            description="554 delivery error: dd This user doesn't have a yahoo.com account "
            "(gone.user@yahoo.com) [0] - mta4471.mail.bf1.yahoo.com",
            reason="userunknown",
        )
    ],
    "dsn/exim_mailbox_disabled.eml": [
        bounce(
            "ms-Kx82PqLm0z",
            # Message-ID, then X-Mailstats-ID (stripped), then the VERP tag
            identifiers=("ms-Kx82PqLm0z@mail.example.com", "Kx82PqLm0z", "ms-Kx82PqLm0z"),
            recipient="alice@example.net",
            timestamp=utc(2024, 3, 8, 7, 1, 12),  # no dates in the report: its Date header
            status="5.0.0",
            errorcode="550",
            description="550 5.2.1 <alice@example.net>: mailbox is disabled",
            errortype="soft",  # a disabled mailbox may be enabled again
            reason="suspend",
        )
    ],
    "dsn/postfix_delayed.eml": [
        bounce(
            "ms-De1ay3dT4x",
            recipient="info@slow.example.net",
            timestamp=utc(2024, 3, 9, 10, 18, 7),
            status="4.4.1",
            errorcode="",
            description="connect to mx.slow.example.net[203.0.113.25]:25: Connection timed out",
            errortype="soft",
            action="delayed",
            reason="networkerror",
        )
    ],
    "dsn/sendmail_two_recipients.eml": [  # the delivered recipient is left out
        bounce(
            "ms-Tw0Rcpt5Qa",
            recipient="dave@example.org",
            timestamp=utc(2024, 3, 10, 10, 48, 26),
            status="5.1.1",
            errorcode="550",
            description="550 5.1.1 <dave@example.org>... User unknown",
            reason="userunknown",
        )
    ],
}


def complaint(
    tag: str, recipient: str | None, timestamp: datetime, **report: object
) -> ComplaintEvent:
    fields = {k.replace("_", "-"): v for k, v in report.items()}
    return ComplaintEvent((f"{tag}@mail.example.com", tag), recipient, timestamp, fields)


COMPLAINTS: dict[str, list[ComplaintEvent]] = {
    "arf/yahoo_fbl.eml": [
        complaint(
            "ms-Yf8lCmP1nt",
            "jane.roe@yahoo.com",
            utc(2024, 3, 11, 9, 29, 58),
            feedback_type="abuse",
            user_agent="Yahoo!-Mail-Feedback/2.0",
            version="0.1",
            original_mail_from="<bounces+ms-Yf8lCmP1nt@mail.example.com>",
            original_rcpt_to=["<jane.roe@yahoo.com>"],
            arrival_date="Mon, 11 Mar 2024 09:29:58 +0000",
            reported_domain=["example.com"],
            authentication_results=[
                "mta4008.mail.gq1.yahoo.com from=example.com; domainkeys=neutral (no sig); "
                "from=example.com; dkim=pass (ok)"
            ],
        )
    ],
    "arf/outlook_jmrp.eml": [
        complaint(
            "ms-Jm7rPhOtm4",
            "sam.visser@outlook.com",  # from X-HmXmrOriginalRecipient
            utc(2024, 3, 12, 14, 41, 2),
            feedback_type="abuse",
            user_agent="Hotmail FBL",
            version="0.1",
            arrival_date="Tue, 12 Mar 2024 07:41:02 -0700",
            source_ip="192.0.2.25",
            reported_domain=["example.com"],
        )
    ],
    "arf/aol_fbl.eml": [
        complaint(
            "ms-A0lScmp9Xq",
            None,  # redacted
            utc(2024, 3, 13, 13, 58, 10),  # Received-Date, the older name of Arrival-Date
            feedback_type="abuse",
            user_agent="AOL SComp",
            version="0.1",
            received_date="Wed, 13 Mar 2024 09:58:10 -0400 (EDT)",
            source_ip="192.0.2.25",
            reported_domain=["mail.example.com"],
            redacted_address="redacted@",
        )
    ],
    "arf/gmail_fbl.eml": [
        complaint(
            "ms-GfB7lOop3r",
            "pieter.de.vries@gmail.com",
            utc(2024, 3, 14, 8, 2, 17),
            feedback_type="abuse",
            user_agent="Gmail-Feedback/1.0",
            version="1",
            original_mail_from="bounces+ms-GfB7lOop3r@mail.example.com",
            original_rcpt_to=["pieter.de.vries@gmail.com"],
            arrival_date="Thu, 14 Mar 2024 01:02:17 -0700",
            source_ip="2001:db8:1::25",
            reported_domain=["example.com"],
            authentication_results=[
                "mx.google.com; spf=pass (google.com: domain of "
                "bounces+ms-GfB7lOop3r@mail.example.com designates 2001:db8:1::25 as permitted "
                "sender) smtp.mailfrom=bounces+ms-GfB7lOop3r@mail.example.com",
                "mx.google.com; dkim=pass header.i=@example.com header.s=ms2024 "
                "header.b=Qm9ndXNT; dmarc=pass (p=QUARANTINE sp=QUARANTINE dis=NONE) "
                "header.from=example.com",
            ],
            incidents="1",
        )
    ],
    "arf/headers_only.eml": [  # text/rfc822-headers; X-Mailstats-ID repeats the tag
        complaint(
            "ms-Hd7rOnLy2k",
            "kees@isp.example.net",
            utc(2024, 3, 15, 16, 31, 12),
            feedback_type="abuse",  # sent as "Abuse"
            user_agent="ReturnPathFBL/2.0",
            version="1",
            original_mail_from="<bounces+ms-Hd7rOnLy2k@mail.example.com>",
            original_rcpt_to=["<kees@isp.example.net>"],
            arrival_date="Fri, 15 Mar 2024 17:31:12 +0100",
            source_ip="192.0.2.25",
            reported_domain=["example.com"],
        )
    ],
    "arf/multiple_uris.eml": [
        complaint(
            "ms-Ur1sM4nY9k",
            "lotte@spamwatch.example",
            utc(2024, 3, 16, 19, 58, 1),
            feedback_type="fraud",
            user_agent="SpamWatch-ARF/3.2",
            version="1",
            original_mail_from="<bounces+ms-Ur1sM4nY9k@mail.example.com>",
            original_rcpt_to=["<lotte@spamwatch.example>", "<maarten@spamwatch.example>"],
            arrival_date="Sat, 16 Mar 2024 19:58:01 +0000",
            source_ip="192.0.2.25",
            incidents="3",
            reported_domain=["example.com", "t.example.com"],
            reported_uri=[
                "https://t.example.com/c/Ur1sM4nY9k.1",
                "https://t.example.com/c/Ur1sM4nY9k.2",
                "https://www.example.com/account/verify?ref=spring",
                "mailto:unsubscribe@example.com",
            ],
        )
    ],
}

MALFORMED: dict[str, str] = {
    "dsn/malformed_no_identifiers.eml": r"no identifier of the original message",
    "arf/malformed_missing_feedback_type.eml": r"no Feedback-Type",
    "arf/malformed_no_feedback_part.eml": r"no message/feedback-report part",
    "arf/malformed_no_identifiers.eml": r"no identifier of the original message",
    "plain/malformed_no_address.eml": r"a postfix bounce that names no failed address",
    "plain/malformed_no_identifiers.eml": r"no identifier of the original message",
    "plain/malformed_human_reply.eml": r"not a bounce or complaint: .*text/plain",
}

EXPECTED: dict[str, list[BounceEvent] | list[ComplaintEvent]] = {**BOUNCES, **COMPLAINTS}


LABELS: dict[str, dict[str, Any]] = json.loads((FIXTURES / "labels.json").read_text())


def test_every_fixture_is_checked() -> None:
    found = {str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*.eml")}
    assert found == set(EXPECTED) | set(MALFORMED) | set(LABELS)
    assert set(EXPECTED) <= set(LABELS) and not set(MALFORMED) & set(LABELS)
    for kind in ("dsn", "arf", "plain", "ses", "forwarded", "autoreply"):
        assert sum(name.startswith(kind) for name in found) >= 3


@pytest.mark.parametrize("name", list(BOUNCES))
def test_bounces(name: str) -> None:
    assert parse_report(read(name)) == BOUNCES[name]


@pytest.mark.parametrize("name", list(COMPLAINTS))
def test_complaints(name: str) -> None:
    events = parse_report(read(name))
    assert events == COMPLAINTS[name]
    assert isinstance(events[0], ComplaintEvent)
    assert json.loads(json.dumps(events[0].report)) == events[0].report


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
@pytest.mark.parametrize("name", list(EXPECTED))
def test_line_endings_do_not_matter(name: str, newline: bytes) -> None:
    raw = read(name).replace(b"\r\n", b"\n").replace(b"\n", newline)
    assert parse_report(raw) == EXPECTED[name]


@pytest.mark.parametrize(("name", "message"), list(MALFORMED.items()))
def test_malformed(name: str, message: str) -> None:
    with pytest.raises(ReportError, match=message):
        parse_report(read(name))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "empty report"),
        (b" \r\n\r\n", "empty report"),
        ("Content-Type: multipart/report", "must be bytes, not str"),
        (None, "must be bytes, not NoneType"),
        (b"\x00\xff\xfe garbage", "not a bounce or complaint"),
        (b"Content-Type: multipart/report; boundary=x\n\n--x--\n", "without report-type"),
    ],
)
def test_not_a_report(raw: object, message: str) -> None:
    with pytest.raises(ReportError, match=message):
        parse_report(raw)  # type: ignore[arg-type]


def test_report_error_is_a_value_error() -> None:
    assert issubclass(ReportError, ValueError)
    assert issubclass(NotABounce, ReportError)
    assert mailstats.reports.__all__ == [
        "HARD_REASONS",
        "REASONS",
        "BounceEvent",
        "ComplaintEvent",
        "DeliveryEvent",
        "NotABounce",
        "Report",
        "ReportError",
        "ReportEvents",
        "parse_report",
    ]


def test_bytearray_and_memoryview() -> None:
    raw = read("dsn/postfix_user_unknown.eml")
    expected = BOUNCES["dsn/postfix_user_unknown.eml"]
    assert parse_report(bytearray(raw)) == expected  # type: ignore[arg-type]
    assert parse_report(memoryview(raw)) == expected  # type: ignore[arg-type]


def test_recipient_plus_address_is_not_a_verp_tag() -> None:
    raw = read("dsn/malformed_no_identifiers.eml")
    forwarded = raw.replace(
        b"To: postmaster@", b"X-Original-To: jan+news@example.net\nTo: postmaster@"
    )
    with pytest.raises(ReportError, match="no identifier"):
        parse_report(forwarded)
    verp = raw.replace(b"To: postmaster@mail", b"To: bounces+ms-Q1w2E3r4T5@mail", 1)
    [event] = parse_report(verp)
    assert event.identifiers == ("ms-Q1w2E3r4T5",)
    assert event.recipient == "jan+news@example.net"


def test_report_wrapped_in_multipart_mixed() -> None:
    inner = read("dsn/exim_mailbox_disabled.eml")
    head, _, body = inner.partition(b"\n\n")
    content_type = re.search(rb"Content-Type: [^\n]+", head)
    assert content_type is not None
    outer = (
        b"To: bounces+ms-Kx82PqLm0z@mail.example.com\n"
        b"Date: Fri, 08 Mar 2024 08:01:12 +0100\n"
        b'Content-Type: multipart/mixed; boundary="wrap"\n\n'
        b"--wrap\n" + content_type.group(0) + b"\n\n" + body + b"\n--wrap\n"
        b"Content-Type: text/plain\n\nThis message was scanned for viruses.\n--wrap--\n"
    )
    assert parse_report(outer) == BOUNCES["dsn/exim_mailbox_disabled.eml"]


def test_missing_report_type_is_inferred() -> None:
    raw = read("dsn/exim_mailbox_disabled.eml").replace(b"report-type=delivery-status; ", b"")
    assert parse_report(raw) == BOUNCES["dsn/exim_mailbox_disabled.eml"]
    raw = read("arf/aol_fbl.eml").replace(b"report-type=feedback-report;", b"")
    assert parse_report(raw) == COMPLAINTS["arf/aol_fbl.eml"]


def test_base64_delivery_status() -> None:
    raw = read("dsn/yahoo_no_account.eml")
    start = raw.index(b"Reporting-MTA:")
    end = raw.index(b"\n------=_Part", start)
    encoded = base64.encodebytes(raw[start:end])
    raw = raw[:start] + encoded + raw[end:]
    raw = raw.replace(
        b"delivery-status\nContent-Transfer-Encoding: 7bit",
        b"delivery-status\nContent-Transfer-Encoding: base64",
    )
    assert parse_report(raw) == BOUNCES["dsn/yahoo_no_account.eml"]


def test_no_diagnostic_code_describes_the_status() -> None:
    raw = read("dsn/postfix_user_unknown.eml")
    raw = re.sub(rb"Diagnostic-Code:[^\n]*\n    [^\n]*\n", b"", raw)
    [event] = parse_report(raw)
    assert isinstance(event, BounceEvent)
    assert (event.errorcode, event.status, event.errortype) == ("", "5.1.1", "hard")
    assert event.description == "Permanent failure: bad destination mailbox address"


def test_failed_with_transient_status_is_soft() -> None:
    raw = read("dsn/postfix_delayed.eml")
    raw = raw.replace(b"Action: delayed", b"Action: failed").replace(b"4.4.1", b"4.4.7")
    [event] = parse_report(raw)
    assert isinstance(event, BounceEvent)
    assert (event.action, event.status, event.errortype) == ("failed", "4.4.7", "soft")


def test_unreadable_dates_are_none() -> None:
    raw = read("dsn/exim_mailbox_disabled.eml").replace(b"Fri, 08 Mar 2024 08:01:12", b"sometime")
    [event] = parse_report(raw)
    assert event.timestamp is None


def test_huge_input_is_cut_not_refused() -> None:
    raw = read("dsn/postfix_user_unknown.eml")
    end = raw.rindex(b"\n--4TqH2k1Zp8z9sW")
    big = raw[:end] + b"\n" + b"x" * 100 + (b"\n" + b"y" * 76) * 200_000 + raw[end:]
    assert len(big) > 10_000_000
    assert parse_report(big) == BOUNCES["dsn/postfix_user_unknown.eml"]


def check(raw: bytes) -> None:
    """Anything at all: either events that make sense, or a ReportError."""
    try:
        events = parse_report(raw)
    except ReportError as exc:
        assert str(exc)
        return
    assert events
    for event in events:
        assert event.identifiers
        assert event.timestamp is None or event.timestamp.tzinfo is UTC
        if isinstance(event, ComplaintEvent):
            json.dumps(event.report)
        elif isinstance(event, DeliveryEvent):
            assert event.attempts == 1
        else:
            assert event.reason in mailstats.reports.REASONS
            assert event.errortype in ("hard", "soft")
            assert event.action in ("failed", "delayed")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_raise_only_report_error(raw: bytes) -> None:
    check(raw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(set(EXPECTED) | set(MALFORMED) | set(LABELS))),
    cut=st.floats(min_value=0, max_value=1),
    length=st.integers(min_value=0, max_value=200),
    insert=st.binary(max_size=64),
)
def test_damaged_fixtures_raise_only_report_error(
    name: str, cut: float, length: int, insert: bytes
) -> None:
    raw = read(name)
    at = int(len(raw) * cut)
    check(raw[:at] + insert + raw[at + length :])


@settings(max_examples=200, deadline=None)
@given(
    report_type=st.sampled_from(["delivery-status", "feedback-report", ""]),
    part=st.sampled_from(["message/delivery-status", "message/feedback-report"]),
    fields=st.text(alphabet=st.characters(codec="utf-8"), max_size=500),
    original=st.text(max_size=300),
)
def test_arbitrary_report_fields_raise_only_report_error(
    report_type: str, part: str, fields: str, original: str
) -> None:
    raw = (
        "To: bounces+ms-T@mail.example.com\n"
        f'Content-Type: multipart/report; report-type="{report_type}"; boundary="b"\n\n'
        f"--b\nContent-Type: {part}\n\n{fields}\n"
        f"--b\nContent-Type: text/rfc822-headers\n\n{original}\n--b--\n"
    )
    check(raw.encode("utf-8", "surrogatepass"))
