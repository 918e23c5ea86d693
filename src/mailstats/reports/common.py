"""What DSN and ARF parsing share: the error, finding the MIME parts, field blocks and the
identifiers that lead back to the message that was sent."""

from __future__ import annotations

import base64
import binascii
import quopri
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from email.message import Message
from email.parser import BytesParser
from email.policy import Policy, compat32
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any, TypeVar, overload

# Reports are small; what makes one big is the returned original message, which comes after
# the machine-readable part, so cutting the input keeps everything we read.
MAX_REPORT_BYTES = 2 * 1024 * 1024
MAX_PARTS = 5000  # MIME parts, delivery-status blocks included
MAX_HEADER_CHARS = 4096  # of a header value the email package parses parameters from
MAX_FIELD_CHARS = 256 * 1024  # of one machine-readable part
MAX_VALUE_CHARS = 2048  # of one field value, after unfolding
MAX_IDENTIFIER_CHARS = 998  # the longest a header line may be, so longer is not an ID

Fields = list[tuple[str, str]]  # (lowercased name, unfolded value), in order

_FIELD = re.compile(r"([\x21-\x39\x3b-\x7e]+)[ \t]*:(.*)", re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_SPACE = re.compile(r"\s+")
_ANGLE_ID = re.compile(r"<([^<>\s]+)>")
_T = TypeVar("_T")


class ReportError(ValueError):
    """The input is not a DSN or ARF report that can be read; the message says why."""


def load(raw: object) -> Message:
    """The whole message, parsed leniently and cut at MAX_REPORT_BYTES."""
    if isinstance(raw, bytearray | memoryview):
        raw = bytes(raw)
    if not isinstance(raw, bytes):
        raise ReportError(f"a report must be bytes, not {type(raw).__name__}")
    if not raw.strip():
        raise ReportError("empty report")
    return parse_message(raw[:MAX_REPORT_BYTES])


class _Part(Message):
    """A message whose header values are cut short when read: the email package parses
    parameters in quadratic time, so a hostile Content-Type would otherwise take minutes."""

    @overload
    def get(self, name: str, failobj: None = None) -> str | None: ...
    @overload
    def get(self, name: str, failobj: _T) -> str | _T: ...
    def get(self, name: str, failobj: object = None) -> object:
        value = super().get(name, failobj)
        if value is None or value is failobj:
            return value
        text = value if isinstance(value, str) else str(value)
        return text[:MAX_HEADER_CHARS] if len(text) > MAX_HEADER_CHARS else value


def parse_message(raw: bytes) -> Message:
    """The email package's lenient parse (compat32), stopped after MAX_PARTS parts."""
    parts = 0

    def new_part(policy: Policy[Any] = compat32) -> Message:
        nonlocal parts
        parts += 1
        if parts > MAX_PARTS:
            raise ReportError(f"too many MIME parts (more than {MAX_PARTS})")
        return _Part(policy)

    return BytesParser(new_part, policy=compat32).parsebytes(raw)


RETURNED = ("message/rfc822", "message/global", "text/rfc822-headers", "text/rfc822",
            "message/global-headers", "message/rfc822-headers")  # fmt: skip
MAX_DEPTH = 8


def walk(msg: Message, depth: int = 0) -> list[Message]:
    """The message and its parts depth-first, without entering a returned message: a
    bounce of a bounce must not be read as the inner one."""
    found = [msg]
    if depth < MAX_DEPTH and msg.get_content_maintype() == "multipart":
        for part in subparts(msg):
            found += walk(part, depth + 1)
    return found[:MAX_PARTS]


def find_report(envelope: Message) -> Message:
    """The multipart/report part (at any depth: gateways wrap reports in multipart/mixed),
    else the envelope itself."""
    return next((p for p in walk(envelope) if p.get_content_type() == "multipart/report"), envelope)


def report_type(report: Message) -> str:
    value = report.get_param("report-type")
    if isinstance(value, tuple):  # RFC 2231 form
        value = value[2]
    return clean(value if isinstance(value, str) else "").lower()


def subparts(msg: Message, limit: int = 100) -> list[Message]:
    payload = msg.get_payload() if msg.is_multipart() else None
    if not isinstance(payload, list):
        return []
    return [p for p in payload[:limit] if isinstance(p, Message)]


def find_part(root: Message, types: Iterable[str]) -> Message | None:
    """The first part of one of `types`, at any depth outside returned messages."""
    wanted = set(types)
    return next((p for p in walk(root) if p.get_content_type() in wanted), None)


def clean(value: str, limit: int = MAX_VALUE_CHARS) -> str:
    """Unfold, drop control characters and undo the parser's surrogate escapes."""
    text = _raw(value[: limit * 4]).decode("utf-8", "replace")
    text = _CONTROL.sub(" ", text)
    return _SPACE.sub(" ", text).strip()[:limit]


def header_values(msg: Message | None, name: str) -> list[str]:
    """Every value of one header, cleaned; raw so that odd bytes cannot make it raise."""
    if msg is None:
        return []
    name = name.lower()
    return [clean(str(v)) for n, v in msg.raw_items() if n.lower() == name]


def header(msg: Message | None, name: str) -> str:
    values = header_values(msg, name)
    return values[0] if values else ""


def field_blocks(part: Message) -> list[Fields]:
    """The blocks of `Name: value` fields of a machine-readable part (RFC 3464 section 2)."""
    return parse_fields(_part_text(part))


def _part_text(part: Message) -> str:
    if not part.is_multipart():
        return body_bytes(part)[:MAX_FIELD_CHARS].decode("utf-8", "replace")
    # The parser split the message/* part into header blocks: put the text back together.
    chunks = []
    for sub in subparts(part, limit=1000):
        lines = [_raw(f"{n}: {v}") for n, v in sub.raw_items()]
        body = body_bytes(sub)
        if body.strip():
            lines += [b"", body]
        chunks.append(b"\n".join(lines))
    data = b"\n\n".join(chunks)[:MAX_FIELD_CHARS]
    encoding = header(part, "content-transfer-encoding").lower()
    if encoding == "base64":
        try:
            data = base64.b64decode(data)
        except (binascii.Error, ValueError):
            return ""
    elif encoding == "quoted-printable":
        data = quopri.decodestring(data)
    return data.decode("utf-8", "replace")


def body_bytes(part: Message) -> bytes:
    """A leaf part's body, transfer encoding undone; unlike get_payload() it never decodes
    with the part's charset parameter, which may be anything."""
    if part.is_multipart():
        return b""
    value = part.get_payload(decode=True)
    return value if isinstance(value, bytes) else b""


def part_text(part: Message, limit: int = MAX_FIELD_CHARS) -> str:
    """A leaf part's text in its declared charset (utf-8 when that is unknown)."""
    data = body_bytes(part)[:limit]
    charset = part.get_content_charset() or "utf-8"
    try:
        return data.decode(charset, "replace")
    except LookupError:
        return data.decode("utf-8", "replace")


_TAG = re.compile(r"<[^<>]*>")  # never across another "<": linear on unclosed tags
_BREAK = re.compile(r"<\s*(br|/p|/div|/tr|/li|/h\d)\b[^>]*>", re.IGNORECASE)
_ENTITIES = {"&nbsp;": " ", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&#39;": "'", "&amp;": "&"}


def notice_text(root: Message) -> str:
    """What a person would read of the message: its text/plain parts outside any returned
    message, else its HTML with the tags taken out."""
    parts = [p for p in walk(root) if not p.is_multipart()]
    plain = [part_text(p) for p in parts if p.get_content_type() == "text/plain"]
    if any(t.strip() for t in plain):
        return "\n\n".join(plain)[:MAX_FIELD_CHARS]
    html = [part_text(p) for p in parts if p.get_content_type() == "text/html"]
    text = _TAG.sub("", _BREAK.sub("\n", "\n".join(html)))
    for entity, char in _ENTITIES.items():
        text = text.replace(entity, char)
    return text[:MAX_FIELD_CHARS]


def _raw(text: str) -> bytes:
    """Back to the bytes the parser read (it keeps undecodable bytes as surrogates)."""
    return text.encode("utf-8", "surrogateescape")


def parse_fields(text: str) -> list[Fields]:
    blocks: list[Fields] = []
    current: list[list[str]] = []
    for line in text[:MAX_FIELD_CHARS].splitlines():
        if not line.strip():
            if current:
                blocks.append([(n, clean(v)) for n, v in current])
                current = []
        elif line[0] in " \t":
            if current and len(current[-1][1]) < MAX_VALUE_CHARS * 4:
                current[-1][1] += " " + line
        elif match := _FIELD.match(line):
            current.append([match.group(1).lower(), match.group(2)])
    if current:
        blocks.append([(n, clean(v)) for n, v in current])
    return blocks


def first(fields: Fields, name: str) -> str:
    return next((v for n, v in fields if n == name), "")


def values(fields: Fields, name: str) -> list[str]:
    return [v for n, v in fields if n == name]


def address(value: str) -> str:
    """`rfc822; <bob@example.org>` -> `bob@example.org`."""
    kind, sep, rest = value.partition(";")
    if sep and "@" not in kind:
        value = rest
    return value.strip().strip("<>").strip()


def original_message(root: Message) -> Message | None:
    """The headers of the returned message: message/rfc822 or text/rfc822-headers."""
    for part in walk(root):
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "message/global", "message/global-headers"):
            inner = subparts(part, limit=1)
            if inner:
                return inner[0]
        elif ctype in ("text/rfc822-headers", "text/rfc822", "message/rfc822-headers"):
            return parse_message(body_bytes(part)[:MAX_FIELD_CHARS])
    return None


def message_id(value: str) -> str:
    match = _ANGLE_ID.search(value)
    if match:
        return match.group(1)
    return value if value and " " not in value else ""


def identifiers(
    envelope: Message,
    original: Message | None,
    recipients: Iterable[str],
    more_ids: Iterable[str] = (),
    verp_addresses: Iterable[str] = (),
) -> tuple[str, ...]:
    """Every value that may lead back to the sent message, most specific first.

    The Message-ID of the returned message, then other Message-IDs the report gives
    (`more_ids`), then `X-Mailstats-ID`, then VERP tags: `bounces+TAG@...` in the report's own
    To / Delivered-To / X-Original-To, in `verp_addresses` and in the returned Return-Path.
    Recipient addresses are skipped: their `+` is the recipient's own.
    """
    found = [message_id(header(original, "message-id")), *map(message_id, more_ids)]
    found += header_values(original, "x-mailstats-id")
    skip = {r.lower() for r in recipients}
    addresses = [
        *header_values(envelope, "to"),
        *header_values(envelope, "delivered-to"),
        *header_values(envelope, "x-original-to"),
        *verp_addresses,
        *header_values(original, "return-path"),
    ]
    found += _verp_tags(addresses, skip)
    return tuple(dict.fromkeys(i for i in found if i and len(i) <= MAX_IDENTIFIER_CHARS))


def _verp_tags(fields: list[str], skip: set[str]) -> list[str]:
    tags = []
    for _, addr in getaddresses(fields[:50]):
        local, at, _domain = addr.strip().rpartition("@")
        if not at or addr.strip().lower() in skip:
            continue
        _, plus, tag = local.strip('"').partition("+")
        if plus and tag:
            tags.append(tag)
    return tags


def parse_date(value: str) -> datetime | None:
    """An RFC 5322 date as an aware UTC datetime; None when it cannot be read."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
        if parsed.tzinfo is None:  # "-0000": UTC, origin unknown
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except Exception:
        return None
