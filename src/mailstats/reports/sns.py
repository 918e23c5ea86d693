"""Amazon SNS HTTP(S) notifications checked before they are believed: the signature over
the documented fields, made with a certificate the operator trusts.

SNS names its signing certificate by URL; mailstats never fetches it. The operator puts the
trusted certificates (SNS's, downloaded once, or a test certificate) in a PEM file named by
the `sns_certificates` setting, and a message signed by anything else is refused.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mailstats.reports.common import ReportError

# The fields each message type signs, in the order SNS documents for the string to sign.
SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
    "UnsubscribeConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
}  # fmt: skip
_HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}


class SignatureError(ReportError):
    """An SNS message whose signature is missing, malformed or not from a trusted key."""


def load_certificates(path: str) -> list[x509.Certificate]:
    """Every certificate in a PEM file; an unreadable file is a clear error at start-up."""
    try:
        data = Path(path).read_bytes()
        certificates: list[x509.Certificate] = x509.load_pem_x509_certificates(data)
    except (OSError, ValueError) as exc:
        raise ValueError(f"sns_certificates: cannot read {path}: {exc}") from None
    if not certificates:
        raise ValueError(f"sns_certificates: no certificate in {path}")
    return certificates


def string_to_sign(message: dict[str, Any]) -> bytes:
    """`Name\\nvalue\\n` for each signed field present, in the documented order."""
    kind = message.get("Type")
    names = SIGNED_FIELDS.get(kind) if isinstance(kind, str) else None
    if names is None:
        raise SignatureError(f"not an SNS message: Type is {kind!r}")
    lines = []
    for name in names:
        value = message.get(name)
        if value is None and name == "Subject":
            continue  # signed only when the notification has one
        if not isinstance(value, str):
            raise SignatureError(f"SNS {kind} without {name}")
        lines.append(f"{name}\n{value}\n")
    return "".join(lines).encode()


def verify(
    message: dict[str, Any], trusted: list[x509.Certificate], now: datetime | None = None
) -> None:
    """Raise SignatureError unless a trusted, current certificate signed `message`."""
    version = message.get("SignatureVersion")
    algorithm = _HASHES.get(version) if isinstance(version, str) else None
    if algorithm is None:
        raise SignatureError(f"unsupported SNS SignatureVersion {version!r}")
    signature = message.get("Signature")
    try:
        raw = base64.b64decode(signature, validate=True) if isinstance(signature, str) else b""
    except (binascii.Error, ValueError):
        raw = b""
    if not raw:
        raise SignatureError("SNS message without a readable Signature")
    signed = string_to_sign(message)
    moment = now or datetime.now(UTC)
    for certificate in trusted:
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            continue
        if not certificate.not_valid_before_utc <= moment <= certificate.not_valid_after_utc:
            continue
        try:
            key.verify(raw, signed, padding.PKCS1v15(), algorithm())
        except InvalidSignature:
            continue
        return
    raise SignatureError("SNS signature does not match any trusted certificate")
