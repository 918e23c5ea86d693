"""One incoming message read once, and each recipient's copy written from it.

The HTML part goes through tracking/render.py, the code behind `GET ms/destination/{id}/
body/html`: every http/https link becomes a tracked one, the open pixel goes before
`</body>`, and every other byte of the HTML stays as it was. A message this module cannot
take apart safely (MIME defects, an unknown charset or encoding) or one that is already
DKIM-signed is left whole: the relay forwards it byte for byte.
"""

from __future__ import annotations

import base64
import contextlib
import email.header
import email.utils
import hashlib
import io
import itertools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email import quoprimime
from email.generator import BytesGenerator
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32

from mailstats import addresses
from mailstats.tracking.render import LinkSpan, extract_links, render

__all__ = ["EMAILING_HEADER", "TRANSACTIONAL_HEADER", "BadMessage", "Incoming", "read"]

EMAILING_HEADER = "X-Mailstats-Emailing"
TRANSACTIONAL_HEADER = "X-Mailstats-Transactional"
# No re-folding of headers and CRLF line ends: a copy differs from what came in only where
# it was rewritten (compat32 keeps every other header and part as it was read).
POLICY = compat32.clone(linesep="\r\n", max_line_length=0)
_ENCODINGS = frozenset({"7bit", "8bit", "binary", "quoted-printable", "base64"})
_KEY = re.compile(r"[^\x00-\x1f\x7f]{1,200}")
# A URL in plain text, up to a space, an angle bracket or a quote; trailing punctuation
# of the sentence around it is not part of it.
_TEXT_URL = re.compile(r"""https?://[^\s<>"]+""", re.IGNORECASE)
_TRAILING = ".,;:!?)]}'"
_CONTROLS = re.compile(r"[\x00-\x1f\x7f]+")


class BadMessage(ValueError):
    """A control header the relay cannot accept; the message says which."""


@dataclass
class Incoming:
    """What the relay needs of a message, and the parsed message its copies are made from."""

    raw: bytes
    untracked: str | None  # why it goes on unchanged, or None
    emailing_key: str = ""
    transactional: bool = False
    subject: str = ""
    from_name: str = ""
    from_email: str = ""
    message_id: str | None = None
    html: str | None = None
    links: list[LinkSpan] = field(default_factory=list)
    text_urls: list[str] = field(default_factory=list)
    _msg: Message | None = None
    _html_part: Message | None = None
    _text_part: Message | None = None
    _text: str | None = None
    _present: frozenset[str] = frozenset()
    _spans: dict[int, tuple[int, int]] | None = None  # id(part) -> its body's bytes in raw

    def urls(self, track_text: bool) -> list[str]:
        """Every URL a copy tracks, HTML links first."""
        return [link.url for link in self.links] + (self.text_urls if track_text else [])

    def copy(
        self,
        click: Callable[[str], str],
        pixel: str,
        headers: Mapping[str, str],
        *,
        track_text: bool = False,
        trap: str | None = None,
    ) -> bytes:
        """One recipient's copy: links through `click(url)`, the pixel, and `headers` where
        the message has none of that name. Copies are made one after another."""
        assert self._msg is not None and self.untracked is None
        bodies: list[tuple[Message, bytes]] = []
        if self._html_part is not None and self.html is not None:
            spans = [(link.start, link.end, click(link.url)) for link in self.links]
            bodies.append(
                (self._html_part, _encoded(self._html_part, render(self.html, spans, pixel, trap)))
            )
        if track_text and self._text_part is not None and self._text is not None:
            text = _TEXT_URL.sub(lambda m: _tracked(m, click), self._text)
            bodies.append((self._text_part, _encoded(self._text_part, text)))
        added = {n: v for n, v in headers.items() if n.lower() not in self._present}
        if self._spans is not None:
            return self._spliced(bodies, added)
        return self._generated(bodies, added)

    def _spliced(self, bodies: list[tuple[Message, bytes]], added: Mapping[str, str]) -> bytes:
        """The message as it came, with only the rewritten bodies and the headers changed."""
        assert self._spans is not None
        raw = self.raw
        end = raw.index(b"\r\n\r\n") + 2
        head = _without(raw[:end], (EMAILING_HEADER, TRANSACTIONAL_HEADER))
        head += b"".join(f"{n}: {v}\r\n".encode("ascii") for n, v in added.items())
        edits = sorted((*self._spans[id(part)], _crlf(body)) for part, body in bodies)
        pieces, done = [head], end
        for start, stop, body in edits:
            if raw[start:stop].endswith(b"\r\n") is False and body.endswith(b"\r\n"):
                body = body[:-2]  # the line end before a boundary belongs to the boundary
            pieces += (raw[done:start], body)
            done = stop
        pieces.append(raw[done:])
        return b"".join(pieces)

    def _generated(self, bodies: list[tuple[Message, bytes]], added: Mapping[str, str]) -> bytes:
        """The message written out again from its parsed form (when it cannot be spliced)."""
        msg = self._msg
        assert msg is not None
        for part, body in bodies:
            part.set_payload(body.decode("ascii", "surrogateescape"))
        for name in (EMAILING_HEADER, TRANSACTIONAL_HEADER):
            del msg[name]
        for name, value in added.items():
            del msg[name]  # this header is the one the previous copy got
            msg[name] = value
        out = io.BytesIO()
        BytesGenerator(out, mangle_from_=False, policy=POLICY).flatten(msg)
        return out.getvalue()


def read(raw: bytes) -> Incoming:
    """Read a message as it came in over SMTP. Raises BadMessage for a bad control header."""
    msg = BytesParser(policy=POLICY).parsebytes(raw)
    key = _header(msg, EMAILING_HEADER)
    if key is not None and not _KEY.fullmatch(key.strip()):
        raise BadMessage(f"{EMAILING_HEADER} must be 1 to 200 characters without controls")
    transactional = (_header(msg, TRANSACTIONAL_HEADER) or "").strip().lower() == "yes"
    why = _untracked(msg)
    if why is not None:
        return Incoming(raw, why, transactional=transactional)
    subject = _header(msg, "Subject") or ""
    from_name, from_email = email.utils.parseaddr(_header(msg, "From") or "")
    if not addresses.valid(from_email):
        return Incoming(raw, "no valid From address", transactional=transactional)
    if key is None:
        # The documented default: messages without the header are one emailing per From
        # address and Subject.
        seed = f"{from_email.lower()}\n{subject}".encode("utf-8", "surrogatepass")
        key = "auto:" + hashlib.sha256(seed).hexdigest()[:32]
    inc = Incoming(
        raw,
        None,
        emailing_key=key.strip(),
        transactional=transactional,
        subject=subject,
        from_name=from_name,
        from_email=from_email,
        message_id=(msg.get("Message-ID") or "").strip() or None,
        _msg=msg,
        _present=frozenset(name.lower() for name in msg),
    )
    inc._html_part = _body_part(msg, "text/html")
    if inc._html_part is not None:
        inc.html = _text_of(inc._html_part)
        if inc.html is None or "\x00" in inc.html:
            return Incoming(raw, "HTML part not readable", transactional=transactional)
        inc.links = extract_links(inc.html)
    inc._text_part = _body_part(msg, "text/plain")
    if inc._text_part is not None:
        inc._text = _text_of(inc._text_part)
        if inc._text is None:
            return Incoming(raw, "text part not readable", transactional=transactional)
        found = (_url(m.group()) for m in _TEXT_URL.finditer(inc._text))
        inc.text_urls = list(dict.fromkeys(found))
    inc._spans = _body_spans(raw, [p for p in (inc._html_part, inc._text_part) if p is not None])
    return inc


def _body_spans(raw: bytes, parts: list[Message]) -> dict[int, tuple[int, int]] | None:
    """Where each part's body sits in the raw message, if every one is found exactly once
    in a message with CRLF line ends throughout; None sends copies the slower way."""
    if raw.count(b"\n") != raw.count(b"\r\n") or b"\r\n\r\n" not in raw:
        return None
    body_start = raw.index(b"\r\n\r\n") + 4
    spans: dict[int, tuple[int, int]] = {}
    for part in parts:
        # As parsed, bytes beyond ASCII held as surrogates (get_payload would decode them)
        payload = getattr(part, "_payload", None)
        if not isinstance(payload, str) or not payload:
            return None
        data = payload.encode("ascii", "surrogateescape")
        at = raw.find(data, body_start)
        if at < 0 or raw.find(data, at + 1) >= 0:
            return None
        spans[id(part)] = (at, at + len(data))
    ordered = sorted(spans.values())
    if any(a[1] > b[0] for a, b in itertools.pairwise(ordered)):
        return None
    return spans


def _without(head: bytes, names: tuple[str, ...]) -> bytes:
    """A header block less the named fields (with their continuation lines)."""
    wanted = tuple(n.lower().encode() + b":" for n in names)
    out, dropping = [], False
    for line in head.split(b"\r\n")[:-1]:
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                out.append(line)
            continue
        dropping = line.lower().startswith(wanted)
        if not dropping:
            out.append(line)
    return b"".join(x + b"\r\n" for x in out)


def _crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _untracked(msg: Message) -> str | None:
    """Why a message must go on as it is, if it must."""
    if msg.get("DKIM-Signature") is not None:
        return "DKIM-signed"
    for part in msg.walk():
        if part.defects:
            return "MIME defects"
        cte = str(part.get("Content-Transfer-Encoding", "7bit")).strip().lower()
        if cte not in _ENCODINGS:
            return "unknown Content-Transfer-Encoding"
    return None


def _header(msg: Message, name: str) -> str | None:
    """A header's value with RFC 2047 words decoded; None without one."""
    value = msg.get(name)
    if value is None:
        return None
    text = str(value)
    if not text.isascii():  # raw UTF-8 (RFC 6532), held as surrogates by the parser
        text = text.encode("ascii", "surrogateescape").decode("utf-8", "replace")
    with contextlib.suppress(ValueError, LookupError, UnicodeError):
        text = str(email.header.make_header(email.header.decode_header(text)))
    return _CONTROLS.sub(" ", text).strip()


def _body_part(msg: Message, ctype: str) -> Message | None:
    """The first part of this type that is not an attachment."""
    for part in msg.walk():
        if part.get_content_type() != ctype:
            continue
        if str(part.get("Content-Disposition", "")).strip().lower().startswith("attachment"):
            continue
        return part
    return None


def _text_of(part: Message) -> str | None:
    """A text part's content, decoded; None when its charset is unknown or wrong."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return None
    charset = part.get_content_charset() or "us-ascii"
    try:
        return payload.decode(charset)
    except (LookupError, UnicodeDecodeError):
        return None


def _encoded(part: Message, text: str) -> bytes:
    """Text as a part's body in its own charset and transfer encoding."""
    data = text.encode(part.get_content_charset() or "us-ascii")
    cte = str(part.get("Content-Transfer-Encoding", "7bit")).strip().lower()
    if cte == "base64":
        return base64.encodebytes(data)
    if cte == "quoted-printable":
        return quoprimime.body_encode(data.decode("latin-1")).encode("latin-1")
    return data


def _url(found: str) -> str:
    return found.rstrip(_TRAILING)


def _tracked(match: re.Match[str], click: Callable[[str], str]) -> str:
    found = match.group()
    url = _url(found)
    return click(url) + found[len(url) :]
