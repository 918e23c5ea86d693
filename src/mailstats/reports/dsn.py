"""Delivery status notifications (RFC 3464) into bounce events, one per failed recipient."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email.message import Message

from mailstats.reports import classify
from mailstats.reports.common import (
    MAX_VALUE_CHARS,
    Fields,
    ReportError,
    address,
    field_blocks,
    find_part,
    first,
    header,
    identifiers,
    original_message,
    parse_date,
)

DSN_PARTS = ("message/delivery-status", "message/global-delivery-status")
MAX_RECIPIENTS = 1000
# RFC 3464 names failed, delayed, delivered, relayed and expanded; servers also send these.
FAILED_ACTIONS = frozenset({"failed", "failure", "expired", "undeliverable", "bounced",
                            "rejected", "permanent", "dropped"})  # fmt: skip
DELAYED_ACTIONS = frozenset({"delayed", "delay", "deferred", "transient", "retry"})
_RECIPIENT_FIELDS = ("final-recipient", "original-recipient", "action", "status")

_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_REPLY_CODE = re.compile(r"([245]\d\d)(?=[\s-]|$)")

_CLASSES = {"2": "Success", "4": "Persistent transient failure", "5": "Permanent failure"}
# Subject.detail of RFC 3463 enhanced status codes, the ones bounces mostly carry.
_DETAILS = {
    "0.0": "other undefined status",
    "1.0": "other address status",
    "1.1": "bad destination mailbox address",
    "1.2": "bad destination system address",
    "1.3": "bad destination mailbox address syntax",
    "1.4": "destination mailbox address ambiguous",
    "1.6": "destination mailbox has moved",
    "1.10": "recipient address has null MX",
    "2.0": "other or undefined mailbox status",
    "2.1": "mailbox disabled, not accepting messages",
    "2.2": "mailbox full",
    "2.3": "message length exceeds administrative limit",
    "3.0": "other or undefined mail system status",
    "3.1": "mail system full",
    "3.4": "message too big for system",
    "4.0": "other or undefined network or routing status",
    "4.1": "no answer from host",
    "4.2": "bad connection",
    "4.4": "unable to route",
    "4.6": "routing loop detected",
    "4.7": "delivery time expired",
    "5.0": "other or undefined protocol status",
    "6.0": "other or undefined media error",
    "7.0": "other or undefined security status",
    "7.1": "delivery not authorized, message refused",
}


@dataclass(frozen=True)
class BounceEvent:
    """One recipient that could not be reached (an `errors` item, compat.md section 4)."""

    identifiers: tuple[str, ...]  # Message-ID, X-Mailstats-ID, VERP tags; most specific first
    recipient: str | None
    timestamp: datetime | None  # Last-Attempt-Date, Arrival-Date or the report's Date; UTC
    status: str  # enhanced status code, "5.1.1"
    errorcode: str  # SMTP reply code from the Diagnostic-Code, "550", else ""
    description: str  # the diagnostic text, else words for the status
    errortype: str  # "hard" (the address will never accept mail) or "soft"
    action: str  # "failed" or "delayed"
    reason: str = "undefined"  # one of classify.REASONS


class NotABounce(ReportError):
    """A message that reports no failure (an auto-reply, a delivery notice): nothing to
    record, and nothing wrong with it either."""


def parse_dsn(envelope: Message, report: Message) -> list[BounceEvent]:
    """The failed and delayed recipients of a delivery-status report, wherever its
    message/delivery-status part sits."""
    part = find_part(report, DSN_PARTS) or find_part(envelope, DSN_PARTS)
    if part is None:
        raise ReportError("delivery-status report has no message/delivery-status part")
    blocks = field_blocks(part)
    recipients = [b for b in blocks if any(first(b, n) for n in _RECIPIENT_FIELDS)]
    per_message = blocks[0] if blocks and blocks[0] not in recipients else []
    recipients = recipients[:MAX_RECIPIENTS]
    if not recipients:
        raise ReportError("delivery-status report has no per-recipient block")
    reported = [b for b in recipients if _action(b) in ("failed", "delayed")]
    if not reported:
        raise NotABounce("a delivery notice: no failed or delayed recipient")
    addresses = [
        address(first(b, name))
        for b in recipients
        for name in ("original-recipient", "final-recipient")
    ]
    ids = identifiers(
        envelope,
        original_message(report) or original_message(envelope),
        recipients=[a for a in addresses if a],
        more_ids=[first(per_message, "x-original-message-id")],
    )
    if not ids:
        raise ReportError("delivery-status report has no identifier of the original message")
    arrival = parse_date(first(per_message, "arrival-date"))
    fallback = arrival or parse_date(header(envelope, "date"))
    return [_bounce(b, ids, fallback) for b in reported]


def _bounce(block: Fields, ids: tuple[str, ...], fallback: datetime | None) -> BounceEvent:
    action = _action(block)
    raw_action = first(block, "action").lower()
    recipient = address(first(block, "original-recipient")) or address(
        first(block, "final-recipient")
    )
    return failure(
        ids,
        recipient,
        parse_date(first(block, "last-attempt-date")) or fallback,
        first(block, "diagnostic-code"),
        status_field=first(block, "status"),
        action=action,
        hint="expired" if raw_action.startswith("expired") else "",
    )


def failure(
    ids: tuple[str, ...],
    recipient: str,
    timestamp: datetime | None,
    diagnostic: str,
    *,
    status_field: str = "",
    action: str = "failed",
    hint: str = "",
) -> BounceEvent:
    """One failed recipient from what a report says of it, in whatever format: the status
    from the field, else the words, else what the reason implies."""
    diagnostic = _diagnostic_text(diagnostic)
    code = _REPLY_CODE.match(diagnostic)
    errorcode = code.group(1) if code else ""
    diagnostic = _join_reply_lines(diagnostic, errorcode)
    status = _status(status_field, diagnostic)
    why = hint or classify.reason(status, diagnostic)
    if not status:
        klass = errorcode[:1] if errorcode[:1] in ("4", "5") else ""
        klass = klass or ("4" if action == "delayed" else "5")
        status = classify.implied_status(why, klass)
    delayed = action == "delayed"
    return BounceEvent(
        identifiers=ids,
        recipient=recipient or None,
        timestamp=timestamp,
        status=status,
        errorcode=errorcode,
        description=diagnostic or describe_status(status),
        errortype=classify.errortype(why, status, delayed),
        action=action,
        reason=why,
    )


def _action(block: Fields) -> str:
    """failed, delayed, or what else the block says; a missing Action is read from the
    Status class, as several gateways leave it out."""
    words = first(block, "action").lower().replace(";", " ").split()
    word = words[0] if words else ""
    if word in FAILED_ACTIONS:
        return "failed"
    if word in DELAYED_ACTIONS:
        return "delayed"
    if word:
        return word
    status = _status(first(block, "status"), first(block, "diagnostic-code"))
    return {"5": "failed", "4": "delayed"}.get(status[:1], "delivered" if status else "failed")


def _diagnostic_text(value: str) -> str:
    """`smtp; 550 5.1.1 User unknown` -> `550 5.1.1 User unknown`."""
    kind, sep, text = value.partition(";")
    if sep and " " not in kind.strip():
        value = text
    return value.strip()[:MAX_VALUE_CHARS]


def _join_reply_lines(text: str, code: str) -> str:
    """`550-5.1.1 No such 550-5.1.1 user 550 5.1.1 here` -> `550 5.1.1 No such user here`."""
    if not code or not text.startswith(code + "-"):
        return text
    enhanced = _STATUS.match(text, len(code) + 1)
    head = f"{code} {enhanced.group(0)}" if enhanced else code
    repeated = rf"(?:^|\s){code}[- ]" + (
        rf"(?:{re.escape(enhanced.group(0))}\s+)?" if enhanced else ""
    )
    lines = [line.strip() for line in re.split(repeated, text)]
    return " ".join([head, *(line for line in lines if line)])


def _status(field: str, diagnostic: str) -> str:
    for text in (field, diagnostic):
        match = _STATUS.search(text)
        if match:
            return ".".join(str(int(g)) for g in match.groups())
    return ""


def describe_status(status: str) -> str:
    """Words for an enhanced status code: `5.1.1` -> `Permanent failure: bad destination ...`."""
    klass, _, detail = status.partition(".")
    words = _CLASSES.get(klass, "Unknown status")
    return f"{words}: {_DETAILS[detail]}" if detail in _DETAILS else words
