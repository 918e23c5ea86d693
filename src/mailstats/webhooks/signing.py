"""Standard Webhooks signatures: `v1,` + base64 HMAC-SHA256 of `id.timestamp.body`.

The key is the secret's base64 part (after `whsec_`), so receivers can verify with any of
that specification's libraries.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

PREFIX = "whsec_"


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value.

    >>> signature("whsec_" + "QUJD", "msg_1", 1700000000, b"[]")[:3]
    'v1,'
    """
    key = base64.b64decode(secret.removeprefix(PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers of one attempt."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, message_id, timestamp, body),
    }
