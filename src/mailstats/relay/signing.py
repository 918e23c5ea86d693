"""DKIM signing of each copy after it was rewritten (a signature made before the relay would
no longer verify, which is why a signed message passes the relay untouched)."""

from __future__ import annotations

from pathlib import Path

import dkim

__all__ = ["Signer"]

# The headers a copy's signature covers, where present (RFC 6376 section 5.4.1's choice).
_HEADERS = [
    b"From", b"To", b"Cc", b"Subject", b"Date", b"Message-ID", b"Reply-To", b"MIME-Version",
    b"Content-Type", b"Content-Transfer-Encoding", b"List-Unsubscribe", b"List-Unsubscribe-Post",
]  # fmt: skip


class Signer:
    """Signs copies with one key for one selector and domain."""

    def __init__(self, key_file: str, selector: str, domain: str) -> None:
        self.key = Path(key_file).read_bytes()
        self.selector = selector.encode("ascii")
        self.domain = domain.encode("idna")

    def sign(self, message: bytes) -> bytes:
        """The message with its DKIM-Signature header on top."""
        header = dkim.sign(
            message,
            self.selector,
            self.domain,
            self.key,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=[h for h in _HEADERS if _has(message, h)],
            linesep=b"\r\n",
        )
        return bytes(header) + message


def _has(message: bytes, name: bytes) -> bool:
    head = message.split(b"\r\n\r\n", 1)[0].lower()
    return head.startswith(name.lower() + b":") or b"\r\n" + name.lower() + b":" in head
