"""Amazon SES notifications (bounce, complaint, delivery) as JSON: the body of an email
from an SNS email subscription, or the `Message` of an SNS HTTP notification.

The fields are the ones Amazon documents for SES notifications and event publishing:
`notificationType` (or `eventType`), `mail` with the sent message's headers, and
`bounce`, `complaint` or `delivery`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from typing import Any

import orjson

from mailstats.reports import classify
from mailstats.reports.arf import ComplaintEvent
from mailstats.reports.common import (
    MAX_IDENTIFIER_CHARS,
    ReportError,
    clean,
    message_id,
    notice_text,
)
from mailstats.reports.common import identifiers as _identifiers
from mailstats.reports.dsn import MAX_RECIPIENTS, BounceEvent, NotABounce, failure

MAX_JSON_BYTES = 1024 * 1024

# bounceSubType -> the reason it means, where the subtype says more than the text.
_SUBTYPES = {
    "noemail": "userunknown",
    "suppressed": "suppressed",
    "onaccountsuppressionlist": "suppressed",
    "mailboxfull": "mailboxfull",
    "messagetoolarge": "mesgtoobig",
    "contentrejected": "contenterror",
    "attachmentrejected": "contenterror",
}


@dataclass(frozen=True)
class DeliveryEvent:
    """A recipient's server accepted the message (a `deliveries` item)."""

    identifiers: tuple[str, ...]
    recipient: str | None
    timestamp: datetime | None
    attempts: int = 1


SesEvent = BounceEvent | ComplaintEvent | DeliveryEvent


def json_body(envelope: Message) -> dict[str, Any] | None:
    """The JSON object an SES email carries as its body, else None."""
    text = notice_text(envelope).strip()
    if not text.startswith("{") or len(text) > MAX_JSON_BYTES:
        return None
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def is_notification(data: dict[str, Any]) -> bool:
    inner = unwrap(data)
    return isinstance(inner, dict) and isinstance(
        inner.get("notificationType", inner.get("eventType")), str
    )


def unwrap(data: dict[str, Any]) -> Any:
    """The SES notification itself: an SNS envelope holds it as a JSON string in Message."""
    message = data.get("Message")
    if data.get("Type") == "Notification" and isinstance(message, str):
        try:
            return orjson.loads(message)
        except orjson.JSONDecodeError:
            raise ReportError("SNS notification whose Message is not JSON") from None
    return data


def parse_ses(data: dict[str, Any], envelope: Message | None = None) -> list[SesEvent]:
    """The events of one SES notification (a parsed JSON object)."""
    note = unwrap(data)
    if not isinstance(note, dict):
        raise ReportError("SES notification is not a JSON object")
    kind = str(note.get("notificationType", note.get("eventType", ""))).lower()
    mail = note.get("mail")
    if not isinstance(mail, dict):
        raise ReportError("SES notification has no 'mail' object")
    if kind not in ("bounce", "complaint", "delivery"):
        raise NotABounce(
            f"an SES {kind or 'unknown'} notification, which mailstats does not record"
        )
    ids = _ids(mail, envelope)
    if not ids:
        raise ReportError("SES notification has no identifier of the original message")
    if kind == "bounce":
        return [*_bounces(_object(note, "bounce"), ids)]
    if kind == "complaint":
        return [*_complaints(_object(note, "complaint"), ids)]
    body = _object(note, "delivery")
    when = _time(body.get("timestamp"))
    recipients = _strings(body.get("recipients")) or [""]
    return [DeliveryEvent(ids, r or None, when) for r in recipients[:MAX_RECIPIENTS]]


def _object(note: dict[str, Any], name: str) -> dict[str, Any]:
    value = note.get(name)
    if not isinstance(value, dict):
        raise ReportError(f"SES notification has no '{name}' object")
    return value


def _bounces(bounce: dict[str, Any], ids: tuple[str, ...]) -> list[BounceEvent]:
    subtype = _SUBTYPES.get(str(bounce.get("bounceSubType", "")).lower(), "")
    permanent = str(bounce.get("bounceType", "")).lower() == "permanent"
    when = _time(bounce.get("timestamp"))
    recipients = bounce.get("bouncedRecipients")
    if not isinstance(recipients, list) or not recipients:
        raise ReportError("SES bounce has no bouncedRecipients")
    events = []
    for item in recipients[:MAX_RECIPIENTS]:
        if not isinstance(item, dict) or not isinstance(item.get("emailAddress"), str):
            raise ReportError("SES bounce recipient without an emailAddress")
        status = _text(item.get("status"))
        if not status and subtype:
            status = classify.implied_status(subtype, "5" if permanent else "4")
        event = failure(
            ids,
            _text(item["emailAddress"]),
            when,
            _text(item.get("diagnosticCode")),
            status_field=status,
            action="failed" if permanent else "delayed",
            hint=subtype,
        )
        events.append(event)
    return events


def _complaints(complaint: dict[str, Any], ids: tuple[str, ...]) -> list[ComplaintEvent]:
    report: dict[str, object] = {
        "feedback-type": _text(complaint.get("complaintFeedbackType")).lower() or "abuse",
        "user-agent": _text(complaint.get("userAgent")) or "Amazon SES",
    }
    for name, key in (("arrival-date", "arrivalDate"), ("feedback-id", "feedbackId")):
        if complaint.get(key):
            report[name] = _text(complaint.get(key))
    when = _time(complaint.get("arrivalDate")) or _time(complaint.get("timestamp"))
    people = complaint.get("complainedRecipients")
    recipients = [p.get("emailAddress") for p in people if isinstance(p, dict)] if isinstance(
        people, list
    ) else []  # fmt: skip
    named = [_text(r) for r in recipients if isinstance(r, str)] or [""]
    return [ComplaintEvent(ids, r or None, when, report) for r in named[:MAX_RECIPIENTS]]


def _ids(mail: dict[str, Any], envelope: Message | None) -> tuple[str, ...]:
    """The sent message's own Message-ID and X-Mailstats-ID from `mail.headers`, then VERP
    tags of the Return-Path (`mail.source`) and of the email that carried the notification."""
    found = []
    headers = mail.get("headers")
    for item in headers[:200] if isinstance(headers, list) else []:
        if isinstance(item, dict) and isinstance(item.get("value"), str):
            name = str(item.get("name", "")).lower()
            if name == "message-id":
                found.append(message_id(clean(item["value"])))
            elif name == "x-mailstats-id":
                found.append(clean(item["value"]))
    common = mail.get("commonHeaders")
    if isinstance(common, dict) and isinstance(common.get("messageId"), str):
        found.append(message_id(clean(common["messageId"])))
    verp = [_text(mail.get("source")), _text(mail.get("returnPath"))]
    recipients = _strings(mail.get("destination"))
    found += _identifiers(envelope or Message(), None, recipients, verp_addresses=verp)
    return tuple(dict.fromkeys(i for i in found if i and len(i) <= MAX_IDENTIFIER_CHARS))


def _text(value: object) -> str:
    return clean(value) if isinstance(value, str) else ""


def _strings(value: object) -> list[str]:
    return [clean(v) for v in value[:MAX_RECIPIENTS] if isinstance(v, str)] if isinstance(
        value, list
    ) else []  # fmt: skip


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
