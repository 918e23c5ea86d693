"""Email addresses as mailstats takes them: plain ones and internationalised ones (RFC 6531)."""

from __future__ import annotations

import re
from email.errors import HeaderParseError
from email.headerregistry import Address

from mailstats.errors import InvalidParameter

__all__ = ["EMAIL_PATTERN", "address", "valid"]


def _non_ascii() -> str:
    """A character class body: U+00A0 to U+FFFF less spaces and surrogates (U+0080-U+009F are
    C1 controls), written with \\u escapes so that the OpenAPI pattern reads the same."""
    ranges: list[tuple[int, int]] = []
    for code in range(0xA0, 0x10000):
        if chr(code).isspace() or 0xD800 <= code <= 0xDFFF:
            continue
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))
    return "".join(f"\\u{a:04x}" + (f"-\\u{b:04x}" if b > a else "") for a, b in ranges)


_UTF8 = _non_ascii()
# A dot-atom local part @ domain labels, where (RFC 6531) any non-ASCII character that is not
# a control or a space may stand beside the ASCII ones: hélène@example.org, ann@exämple.org.
# What every MTA takes; the OpenAPI document says so too.
_ATOM = f"[A-Za-z0-9!#$%&'*+/=?^_`{{|}}~{_UTF8}-]+"
_LABEL = f"[A-Za-z0-9{_UTF8}-]+"
EMAIL_PATTERN = f"^{_ATOM}(?:\\.{_ATOM})*@{_LABEL}(?:\\.{_LABEL})*$"
_EMAIL = re.compile(EMAIL_PATTERN)


def address(value: str | None, name: str) -> str:
    """An email address that a mail header can carry (RFC 6531 addresses included)."""
    if value is None or len(value) > 320 or not _EMAIL.match(value) or value.endswith("\n"):
        raise InvalidParameter(f"Invalid value for '{name}': an email address")
    if value.isascii():
        try:
            Address(addr_spec=value)
        except (ValueError, IndexError, HeaderParseError):
            raise InvalidParameter(f"Invalid value for '{name}': an email address") from None
    return value


def valid(value: str) -> bool:
    """True for an address `address` takes."""
    try:
        address(value, "email")
    except InvalidParameter:
        return False
    return True
