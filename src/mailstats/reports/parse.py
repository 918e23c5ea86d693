"""One entry point for any message that reaches a bounce address: find out what it is and
read it. The machine-readable formats come first (they say exactly what happened), then the
plain-language bounces, the older complaint formats, and last the auto-replies."""

from __future__ import annotations

from email.message import Message
from typing import TypeAlias

from mailstats.reports.arf import ARF_PARTS, ComplaintEvent, parse_arf, parse_forwarded
from mailstats.reports.autoreply import auto_reply
from mailstats.reports.common import (
    ReportError,
    find_part,
    find_report,
    load,
    report_type,
    subparts,
    walk,
)
from mailstats.reports.dsn import DSN_PARTS, BounceEvent, NotABounce, parse_dsn
from mailstats.reports.plain import looks_like_bounce, parse_plain
from mailstats.reports.ses import DeliveryEvent, is_notification, json_body, parse_ses

Report: TypeAlias = BounceEvent | ComplaintEvent | DeliveryEvent
ReportEvents: TypeAlias = list[Report]


def parse_report(raw: bytes) -> ReportEvents:
    """Read a raw bounce, complaint or SES notification message into events.

    A bounce gives one BounceEvent per failed or delayed recipient, a complaint one
    ComplaintEvent, an SES delivery notification DeliveryEvents. Raises NotABounce (a
    ReportError) for an auto-reply or a delivery notice, and ReportError, and nothing else,
    for anything that is not a report::

        events = parse_report(Path("bounce.eml").read_bytes())
        events[0].status, events[0].errortype, events[0].reason  # ("5.1.1", "hard", "userunknown")
    """
    try:
        return _parse(load(raw))
    except ReportError:
        raise
    except Exception as exc:  # a parser bug on hostile input must still be a ReportError
        raise ReportError(f"unreadable report ({type(exc).__name__})") from exc


def _parse(envelope: Message) -> ReportEvents:
    data = json_body(envelope)
    if data is not None and is_notification(data):
        return [*parse_ses(data, envelope)]
    machine = _machine_readable(envelope)
    if machine is not None:
        return machine
    for part in walk(envelope):  # a complaint forwarded whole, as an attachment
        if part.get_content_type() == "message/rfc822":
            inner = next(iter(subparts(part, limit=1)), None)
            if inner is not None and find_part(inner, ARF_PARTS) is not None:
                return [*parse_arf(envelope, find_report(inner))]
    why = auto_reply(envelope)
    if why and not looks_like_bounce(envelope):
        raise NotABounce(why)
    try:
        return [*parse_plain(envelope)]
    except ReportError as plain_error:
        try:
            return [*parse_forwarded(envelope)]
        except ReportError:
            pass
        if why:
            raise NotABounce(why) from None
        if looks_like_bounce(envelope):
            raise plain_error from None
    ctype = envelope.get_content_type()
    raise ReportError(
        "not a bounce or complaint: no delivery-status or feedback-report part and no "
        f"bounce text that mailstats knows (Content-Type is {ctype})"
    )


def _machine_readable(envelope: Message) -> ReportEvents | None:
    """A DSN or ARF, with or without report-type, wherever its part sits; else None."""
    report = find_report(envelope)
    is_report = report.get_content_type() == "multipart/report"
    kind = report_type(report) if is_report else ""
    if not kind:  # left out by some senders: go by the machine-readable part
        if find_part(envelope, DSN_PARTS) is not None:
            kind = "delivery-status"
        elif find_part(envelope, ARF_PARTS) is not None:
            kind = "feedback-report"
    if kind == "delivery-status":
        if find_part(envelope, DSN_PARTS) is None:
            return None  # its notice text may still say who failed and why
        return [*parse_dsn(envelope, report)]
    if kind == "feedback-report":
        return [*parse_arf(envelope, report)]
    if kind:
        if kind == "disposition-notification":
            raise NotABounce("a read receipt (report-type 'disposition-notification')")
        raise ReportError(
            f"unsupported report-type {kind!r}: expected delivery-status or feedback-report"
        )
    if is_report and not looks_like_bounce(envelope):
        raise ReportError(
            "multipart/report without report-type and without a delivery-status "
            "or feedback-report part"
        )
    return None
