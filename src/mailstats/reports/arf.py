"""Abuse feedback reports (ARF, RFC 5965) into complaint events."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from email.utils import getaddresses

from mailstats.reports.common import (
    Fields,
    ReportError,
    address,
    field_blocks,
    find_part,
    first,
    header,
    header_values,
    identifiers,
    original_message,
    parse_date,
    values,
)

ARF_PARTS = ("message/feedback-report",)
# RFC 5965 section 3.2 and RFC 6591: the fields that may appear more than once.
REPEATABLE = ("original-rcpt-to", "reported-uri", "reported-domain", "authentication-results")
MAX_FIELDS = 100


@dataclass(frozen=True)
class ComplaintEvent:
    """One complaint about one message (an `abuses` item, compat.md section 4)."""

    identifiers: tuple[str, ...]  # Message-ID, X-Mailstats-ID, VERP tags; most specific first
    recipient: str | None
    timestamp: datetime | None  # Arrival-Date (or Received-Date), else the report's Date; UTC
    # The feedback fields by lowercased name: lists for REPEATABLE fields, else strings.
    report: dict[str, object] = field(hash=False)


def parse_arf(envelope: Message, report: Message) -> list[ComplaintEvent]:
    """The complaint in a multipart/report; report-type=feedback-report."""
    part = find_part(report, ARF_PARTS)
    if part is None:
        raise ReportError("feedback report has no message/feedback-report part")
    fields = [f for block in field_blocks(part) for f in block]
    if not first(fields, "feedback-type"):
        raise ReportError("feedback report has no Feedback-Type field")
    original = original_message(report)
    rcpts = [a for a in map(address, values(fields, "original-rcpt-to")) if a]
    # Hotmail / Outlook.com (JMRP) leave Original-Rcpt-To out and name the recipient here.
    recipient = next(iter(rcpts), "") or address(header(original, "x-hmxmroriginalrecipient"))
    ids = identifiers(
        envelope,
        original,
        recipients=[*rcpts, recipient],
        verp_addresses=values(fields, "original-mail-from"),
    )
    if not ids:
        raise ReportError("feedback report has no identifier of the original message")
    timestamp = (
        parse_date(first(fields, "arrival-date"))
        or parse_date(first(fields, "received-date"))  # the older name, still sent by some
        or parse_date(header(envelope, "date"))
    )
    event = ComplaintEvent(ids, recipient or None, timestamp, report_fields(fields))
    return [event]


def report_fields(fields: Fields) -> dict[str, object]:
    """The feedback fields as a JSON-ready dict; Feedback-Type lowercased (it is a token)."""
    report: dict[str, object] = {}
    for name, value in fields:
        if name in REPEATABLE:
            listed = report.setdefault(name, [])
            if isinstance(listed, list) and len(listed) < MAX_FIELDS:
                listed.append(value)
        elif name not in report and len(report) < MAX_FIELDS:
            report[name] = value.lower() if name == "feedback-type" else value
    return report


_COMPLAINT_SENDER = re.compile(r"abuse|complaint|fbl|feedback|scomp|spam|junk", re.IGNORECASE)
_COMPLAINT_SUBJECT = re.compile(
    r"complaint|abuse|spam report|reported as spam|tos notification|feedback loop|\bfbl\b|"
    r"junk (mail )?report|unsolicited",
    re.IGNORECASE,
)


def parse_forwarded(envelope: Message) -> list[ComplaintEvent]:
    """A complaint in the older formats: an abuse desk's or a provider's message (AOL's
    Client TOS Notification, Hotmail's JMRP before ARF) with the original message attached
    but no feedback-report part. Recognised by its sender or subject and the attachment."""
    original = original_message(envelope)
    hotmail = header(original, "x-hmxmroriginalrecipient")
    said = (header(envelope, "from"), header(envelope, "subject"))
    if original is None or not (
        hotmail or _COMPLAINT_SENDER.search(said[0]) or _COMPLAINT_SUBJECT.search(said[1])
    ):
        raise ReportError("not a complaint: no feedback-report part and no forwarded message")
    recipient = address(hotmail) or next(
        (a for _, a in getaddresses(header_values(original, "to")[:1]) if a), ""
    )
    ids = identifiers(envelope, original, recipients=[recipient] if recipient else [])
    if not ids:
        raise ReportError("forwarded complaint has no identifier of the original message")
    report: dict[str, object] = {"feedback-type": "abuse", "format": "forwarded"}
    sender = next((a for _, a in getaddresses([said[0]]) if a), "")
    if sender:
        report["user-agent"] = sender
    arrival = header(original, "date")
    if arrival:
        report["arrival-date"] = arrival
    when = parse_date(header(envelope, "date")) or parse_date(arrival)
    return [ComplaintEvent(ids, recipient or None, when, report)]
