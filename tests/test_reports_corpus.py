"""The labelled samples of every format family (fixtures/reports/labels.json): each is read
into exactly the events its label names, with the labelled status, reason and hard/soft."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mailstats.reports import (
    BounceEvent,
    ComplaintEvent,
    DeliveryEvent,
    NotABounce,
    ReportError,
    parse_report,
)

FIXTURES = Path(__file__).parent / "fixtures" / "reports"
LABELS: dict[str, dict[str, Any]] = json.loads((FIXTURES / "labels.json").read_text())
KIND = {BounceEvent: "errors", ComplaintEvent: "abuses", DeliveryEvent: "deliveries"}
REPORTS = {name: label for name, label in LABELS.items() if not label.get("not_a_bounce")}
NOT_BOUNCES = [name for name, label in LABELS.items() if label.get("not_a_bounce")]


def as_label(event: BounceEvent | ComplaintEvent | DeliveryEvent, want: dict[str, Any]) -> Any:
    """The event in the label's terms, with only the keys the label gives."""
    seen: dict[str, Any] = {"kind": KIND[type(event)], "recipient": event.recipient}
    if isinstance(event, BounceEvent):
        seen.update(status=event.status, reason=event.reason, errortype=event.errortype,
                    errorcode=event.errorcode, action=event.action)  # fmt: skip
    return {k: seen[k] for k in want}


@pytest.mark.parametrize("name", sorted(REPORTS))
def test_labelled_sample(name: str) -> None:
    events = parse_report((FIXTURES / name).read_bytes())
    wanted = REPORTS[name]["events"]
    assert [as_label(e, w) for e, w in zip(events, wanted, strict=False)] == wanted
    assert len(events) == len(wanted)
    for event in events:
        assert event.identifiers and event.timestamp is not None
        if isinstance(event, BounceEvent):
            assert event.description  # the server's words, or words for the status


@pytest.mark.parametrize("name", sorted(NOT_BOUNCES))
def test_auto_replies_and_notices_are_not_bounces(name: str) -> None:
    with pytest.raises(NotABounce):
        parse_report((FIXTURES / name).read_bytes())


def test_every_family_has_samples() -> None:
    families = {label["family"] for label in LABELS.values()}
    assert families >= {
        "dsn", "arf", "qmail", "exim", "postfix", "sendmail", "gmail", "yahoo", "opensmtpd",
        "exchange", "courier", "googlegroups", "dma", "ses", "forwarded", "autoreply",
    }  # fmt: skip


def test_plain_bounce_words_are_the_remote_servers() -> None:
    [event] = parse_report((FIXTURES / "plain/qmail_mailbox_full.eml").read_bytes())
    assert isinstance(event, BounceEvent)
    assert event.description == "552 5.2.2 <ruud@mailhost.example>: Mailbox full"
    [event] = parse_report((FIXTURES / "plain/exim_user_unknown.eml").read_bytes())
    assert isinstance(event, BounceEvent)
    assert event.description == (
        "550 5.1.1 <sanne@example.org>: Recipient address rejected: User unknown in local "
        "recipient table"
    )
    [event] = parse_report((FIXTURES / "plain/office365_ndr.eml").read_bytes())
    assert isinstance(event, BounceEvent)
    assert event.description.startswith("550 5.1.10 RESOLVER.ADR.RecipientNotFound")


def test_plain_bounce_names_its_original_by_message_id_and_verp() -> None:
    [event] = parse_report((FIXTURES / "plain/sendmail_user_unknown.eml").read_bytes())
    assert event.identifiers == ("ms-SmaiLUnk42@mail.example.com", "ms-SmaiLUnk42")


def test_a_returned_bounce_inside_a_bounce_is_not_read_as_the_outer_one() -> None:
    inner = (FIXTURES / "dsn/postfix_user_unknown.eml").read_bytes()
    outer = (
        b"From: MAILER-DAEMON@relay.example\nTo: bounces+ms-0uterB0unce@mail.example.com\n"
        b'Subject: Undeliverable\nContent-Type: multipart/mixed; boundary="o"\n\n'
        b"--o\nContent-Type: text/plain\n\nThis is the mail system at host relay.example.\n\n"
        b"<ops@relay.example>: 550 5.1.1 user unknown\n\n"
        b"--o\nContent-Type: message/rfc822\n\n" + inner + b"\n--o--\n"
    )
    [event] = parse_report(outer)
    assert isinstance(event, BounceEvent)
    assert event.recipient == "ops@relay.example"


def test_not_a_report_is_refused_with_its_reason() -> None:
    with pytest.raises(ReportError, match="not a bounce or complaint") as caught:
        parse_report(b"From: a@example.org\nSubject: hello\n\nHi!\n")
    assert not isinstance(caught.value, NotABounce)


BOUNCE_HEAD = (
    b"From: MAILER-DAEMON@x.example\nSubject: Undelivered Mail Returned to Sender\n"
    b"To: bounces+ms-AbcdEfgh12@mail.example.com\n\nThis is the mail system at host x.\n\n"
)


@pytest.mark.parametrize(
    "raw",
    [
        BOUNCE_HEAD + b"a@" + b"a." * 30000 + b"!\n",
        BOUNCE_HEAD + b"<" + b"a@b." * 15000 + b"\n",
        BOUNCE_HEAD + b"x" * 60000 + b"\n",
        BOUNCE_HEAD
        + b"\n".join(b"<u%d@example.org>: 550 5.1.1 user unknown" % i for i in range(3000)),
        b"From: MAILER-DAEMON@x\nSubject: failure notice\nContent-Type: text/html\n\n"
        + b"<a " * 80000,
        b"From: MAILER-DAEMON@x\nSubject: failure notice\n\n"
        + (b"delivered to a@" + b"b." * 400 + b" ") * 100,
    ],
    ids=["long-domain", "dotted-line", "long-line", "many-addresses", "unclosed-html", "sentences"],
)
def test_hostile_plain_text_is_read_or_refused(raw: bytes) -> None:
    """Shapes that make careless patterns backtrack for minutes (pytest-timeout bounds it)."""
    try:
        events = parse_report(raw)
    except ReportError as exc:
        assert str(exc)
    else:
        assert 0 < len(events) <= 1000
