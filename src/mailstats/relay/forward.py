"""Handing copies to the next hop, the MTA that delivers them, and reading its answers.

Each copy is its own SMTP transaction (its own envelope sender, the destination's bounce
address) on one connection per incoming message. What the next hop says about each copy
decides the relay's one answer to the sender (see `verdict`).
"""

from __future__ import annotations

import smtplib
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Copy", "NextHop", "Reply", "verdict"]


@dataclass(frozen=True)
class Reply:
    code: int
    text: str

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


@dataclass(frozen=True)
class Copy:
    sender: str
    recipients: tuple[str, ...]
    data: bytes


_UNREACHABLE = "4.4.1 Next hop not reachable, try again later"


class NextHop:
    """The MTA at host:port; `send` never raises, it answers a Reply per copy.

    Connections are kept open between messages (at most `keep`, each for `idle` seconds).
    One used within the last `fresh` seconds is used as it is; should the next hop have
    dropped it meanwhile, that shows at the first MAIL, before anything could be accepted,
    and the copies go on a new connection. An older one is checked with NOOP first.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        helo: str,
        timeout: float = 120.0,
        keep: int = 16,
        idle: float = 30.0,
        fresh: float = 2.0,
    ) -> None:
        self.host = host
        self.port = port
        self.helo = helo
        self.timeout = timeout
        self.keep = keep
        self.idle = idle
        self.fresh = fresh
        self._kept: list[tuple[float, smtplib.SMTP]] = []
        self._lock = threading.Lock()

    def send(
        self, copies: Sequence[Copy], mail_options: Sequence[str], rcpt_options: Sequence[str]
    ) -> list[Reply]:
        replies: list[Reply] = []
        try:
            smtp, unchecked = self._connection()
        except (OSError, smtplib.SMTPException) as exc:
            return [Reply(451, f"{_UNREACHABLE} ({_why(exc)})")] * len(copies)
        try:
            for copy in copies:
                try:
                    replies.append(self._one(smtp, copy, mail_options, rcpt_options, unchecked))
                except _Stale:  # dropped while kept: nothing was sent on it, so start anew
                    _close(smtp)
                    smtp = self._connect()
                    replies.append(self._one(smtp, copy, mail_options, rcpt_options, False))
                unchecked = False
        except (OSError, smtplib.SMTPException) as exc:
            # The connection broke: nothing more was accepted.
            lost = Reply(451, f"{_UNREACHABLE} ({_why(exc)})")
            replies += [lost] * (len(copies) - len(replies))
            _close(smtp)
        else:
            self._give_back(smtp)
        return replies

    def close(self) -> None:
        with self._lock:
            kept, self._kept = self._kept, []
        for _, smtp in kept:
            _close(smtp)

    def _connection(self) -> tuple[smtplib.SMTP, bool]:
        """A connection, and whether it is a kept one used as it is (not checked)."""
        now = time.monotonic()
        while True:
            with self._lock:
                if not self._kept:
                    break
                since, smtp = self._kept.pop()
            if now - since < self.fresh:
                return smtp, True
            if now - since < self.idle:
                try:
                    if smtp.noop()[0] == 250:
                        return smtp, False
                except (OSError, smtplib.SMTPException):
                    pass
            _close(smtp)
        return self._connect(), False

    def _connect(self) -> smtplib.SMTP:
        smtp = smtplib.SMTP(self.host, self.port, local_hostname=self.helo, timeout=self.timeout)
        smtp.ehlo_or_helo_if_needed()
        return smtp

    def _give_back(self, smtp: smtplib.SMTP) -> None:
        with self._lock:
            if len(self._kept) < self.keep:
                self._kept.append((time.monotonic(), smtp))
                return
        _close(smtp)

    def _one(
        self,
        smtp: smtplib.SMTP,
        copy: Copy,
        mail_options: Sequence[str],
        rcpt_options: Sequence[str],
        unchecked: bool = False,
    ) -> Reply:
        options = _supported(smtp, copy, mail_options)
        if isinstance(options, Reply):
            return options
        try:
            code, text = smtp.mail(copy.sender, options)
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            if unchecked:
                raise _Stale from exc
            raise
        if unchecked and code == 421:  # the next hop is closing this idle connection
            raise _Stale
        if code != 250:
            return _reset(smtp, code, text)
        for rcpt in copy.recipients:
            code, text = smtp.rcpt(rcpt, list(rcpt_options))
            if code not in (250, 251):
                return _reset(smtp, code, text)
        try:
            code, text = smtp.data(copy.data)
        except smtplib.SMTPDataError as exc:  # DATA itself refused (not 354)
            code, text = exc.smtp_code, _bytes(exc.smtp_error)
        if code != 250:
            return _reset(smtp, code, text)
        return Reply(code, text.decode("utf-8", "replace"))


class _Stale(Exception):
    """A kept connection turned out closed at its first command."""


def _close(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):
        smtp.close()


def _supported(smtp: smtplib.SMTP, copy: Copy, options: Sequence[str]) -> list[str] | Reply:
    """The MAIL parameters to pass on, or why the next hop cannot take this copy."""
    out = [o for o in options if o.upper() in ("SMTPUTF8", "BODY=8BITMIME")]
    utf8 = not all(a.isascii() for a in (copy.sender, *copy.recipients))
    if utf8 and "SMTPUTF8" not in (o.upper() for o in out):
        out.append("SMTPUTF8")
    if any(o.upper() == "SMTPUTF8" for o in out) and not smtp.has_extn("smtputf8"):
        return Reply(553, "5.6.7 The next hop does not take internationalised addresses")
    if any(o.upper() == "BODY=8BITMIME" for o in out) and not smtp.has_extn("8bitmime"):
        return Reply(554, "5.6.3 The next hop does not take 8-bit data")
    # A SIZE of the whole copy lets the next hop refuse it before the data is sent.
    if smtp.has_extn("size"):
        out.append(f"SIZE={len(copy.data)}")
    return out


def _bytes(text: bytes | str) -> bytes:
    return text if isinstance(text, bytes) else text.encode("utf-8", "replace")


def _reset(smtp: smtplib.SMTP, code: int, text: bytes) -> Reply:
    reply = Reply(code, text.decode("utf-8", "replace").replace("\n", " "))
    if code == 421:
        raise smtplib.SMTPServerDisconnected(str(reply))
    smtp.rset()
    return reply


def _why(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    return type(exc).__name__ if not str(exc) else str(exc)[:200].replace("\n", " ")


def verdict(replies: Sequence[Reply], skipped: int = 0) -> Reply:
    """The relay's answer for a message from what the next hop said about each copy.

    Every copy accepted: 250. Any copy answered 4xx (or not reachable): 451, so that the
    sender keeps the message and tries again; copies already accepted are then sent again
    with it (one recipient per message avoids that). Otherwise a 5xx is passed back.
    """
    taken = sum(1 for r in replies if r.ok)
    if taken == len(replies):
        note = f"; {skipped} unsubscribed recipient(s) skipped" if skipped else ""
        return Reply(250, f"2.0.0 OK: {taken} copy(ies) forwarded{note}")
    bad = [r for r in replies if not r.ok]
    soft = next((r for r in bad if r.code < 500), None)
    if soft is not None:
        return Reply(451, f"4.4.0 Next hop answered: {soft}; {taken} of {len(replies)} accepted")
    hard = bad[0]
    code = hard.code if 500 <= hard.code < 600 else 554
    return Reply(
        code, f"{_enhanced(hard)} Next hop answered: {hard}; {taken} of {len(replies)} accepted"
    )


def _enhanced(reply: Reply) -> str:
    first = reply.text.split(" ", 1)[0]
    parts = first.split(".")
    if len(parts) == 3 and all(p.isdigit() for p in parts) and parts[0] == "5":
        return first
    return "5.0.0"
