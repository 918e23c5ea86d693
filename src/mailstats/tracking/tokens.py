"""Short signed tokens that carry a destination ID and a link ID in tracking URLs.

A token is the URL-safe base64 (no padding) of two LEB128 varints and a truncated
HMAC-SHA256, so a forged or altered token never names a destination or a link.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hmac
import secrets

__all__ = ["Purpose", "Signer", "new_secret"]

MAX_ID = 2**63 - 1
_MAC_SIZE = 12
# Two one-byte varints at least, two nine-byte varints at most, plus the MAC.
_MIN_CHARS = -(-(2 + _MAC_SIZE) * 4 // 3)
_MAX_CHARS = -(-(18 + _MAC_SIZE) * 4 // 3)


class Purpose(enum.Enum):
    """What a token is for; a token signed for one purpose never verifies for another."""

    CLICK = "c"
    OPEN = "o"
    UNSUBSCRIBE = "u"


_PREFIX = {purpose: purpose.value.encode("ascii") for purpose in Purpose}


def new_secret() -> bytes:
    """Return 32 random bytes suitable as a signing secret."""
    return secrets.token_bytes(32)


class Signer:
    """Signs and verifies tracking tokens with one secret.

    >>> signer = Signer(b"a secret of some length")
    >>> token = signer.sign(Purpose.CLICK, 42, 7)
    >>> signer.verify(Purpose.CLICK, token)
    (42, 7)
    >>> signer.verify(Purpose.OPEN, token) is None
    True
    """

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise ValueError("the signing secret must not be empty")
        self._secret = bytes(secret)

    def sign(self, purpose: Purpose, destination_id: int, link_id: int = 0) -> str:
        """Return the token for a destination and a link (0: no link)."""
        if not 1 <= destination_id <= MAX_ID:
            raise ValueError(f"destination_id must be between 1 and {MAX_ID}")
        if not 0 <= link_id <= MAX_ID:
            raise ValueError(f"link_id must be between 0 and {MAX_ID}")
        payload = bytearray()
        _write_varint(payload, destination_id)
        _write_varint(payload, link_id)
        payload += self._mac(purpose, payload)
        return base64.urlsafe_b64encode(payload).rstrip(b"=").decode("ascii")

    def verify(self, purpose: Purpose, token: str) -> tuple[int, int] | None:
        """Return (destination_id, link_id) for a valid token, None for anything else."""
        data = _decode(token)
        if data is None:
            return None
        mac_start = len(data) - _MAC_SIZE
        ids = _read_ids(data, mac_start)
        if ids is None:
            return None
        if not hmac.compare_digest(self._mac(purpose, data[:mac_start]), data[mac_start:]):
            return None
        return ids

    def _mac(self, purpose: Purpose, payload: bytes | bytearray) -> bytes:
        return hmac.digest(self._secret, _PREFIX[purpose] + payload, "sha256")[:_MAC_SIZE]


def _decode(token: str) -> bytes | None:
    if not _MIN_CHARS <= len(token) <= _MAX_CHARS or not token.isascii():
        return None
    raw = token.encode("ascii")
    try:
        data = base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
    except (binascii.Error, ValueError):
        return None
    # The decoder skips stray characters and ignores unused low bits; re-encoding
    # rejects both, so exactly one string decodes to each payload.
    if base64.urlsafe_b64encode(data).rstrip(b"=") != raw:
        return None
    return data


def _write_varint(out: bytearray, value: int) -> None:
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _read_varint(data: bytes, pos: int, end: int) -> tuple[int, int] | None:
    """Return (value, next position), or None for a truncated, overlong or padded varint."""
    value = 0
    shift = 0
    # Nine groups of seven bits hold MAX_ID exactly; a tenth would exceed it.
    while pos < end and shift < 63:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            # A zero final group after the first adds nothing: not the canonical form.
            return (value, pos) if byte or not shift else None
        shift += 7
    return None


def _read_ids(data: bytes, end: int) -> tuple[int, int] | None:
    destination = _read_varint(data, 0, end)
    if destination is None or destination[0] < 1:
        return None
    link = _read_varint(data, destination[1], end)
    if link is None or link[1] != end:
        return None
    return destination[0], link[0]
