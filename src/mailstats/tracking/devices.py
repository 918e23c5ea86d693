"""The device class of a user agent, from the maintained ua-parser rules."""

from __future__ import annotations

import functools

import ua_parser

_MOBILE_OS = {
    "iOS",
    "Android",
    "Windows Phone",
    "BlackBerry OS",
    "KaiOS",
    "Symbian OS",
    "Firefox OS",
}
_DESKTOP_OS = {"Windows", "Mac OS X", "macOS", "Linux", "Ubuntu", "Chrome OS", "ChromeOS", "Fedora",
               "Debian", "FreeBSD", "OpenBSD", "Windows NT"}  # fmt: skip
_IMAGE_PROXIES = ("GoogleImageProxy", "YahooMailProxy", "ggpht.com")
_TABLET_DEVICES = ("iPad", "Kindle", "Nexus 7", "Nexus 9", "Nexus 10", "Galaxy Tab", "Surface")


@functools.lru_cache(maxsize=8192)
def device(useragent: str) -> str:
    """`desktop`, `tablet`, `mobile` or `unknown`.

    >>> device("Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15")
    'tablet'
    """
    if not useragent or any(proxy in useragent for proxy in _IMAGE_PROXIES):
        return "unknown"  # a mail provider's image proxy hides the reader's device
    if "MSOffice" in useragent or "Microsoft Outlook" in useragent:
        return "desktop"
    result = ua_parser.parse(useragent)
    os_family = result.os.family if result.os else ""
    device_family = result.device.family if result.device else ""
    if any(name in device_family for name in _TABLET_DEVICES) or "Tablet" in useragent:
        return "tablet"
    if os_family == "Android" and "Mobile" not in useragent:
        return "tablet"
    if os_family in _MOBILE_OS or "Mobile" in useragent:
        return "mobile"
    if os_family in _DESKTOP_OS or os_family.startswith("Windows"):
        return "desktop"
    return "unknown"


@functools.lru_cache(maxsize=8192)
def os_name(useragent: str) -> str:
    """The operating system's family as ua-parser names it, or `unknown`.

    >>> os_name("Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15")
    'iOS'
    """
    result = ua_parser.parse(useragent) if useragent else None
    family = result.os.family if result is not None and result.os else ""
    return family if family and family != "Other" else "unknown"


@functools.lru_cache(maxsize=8192)
def client_name(useragent: str) -> str:
    """The browser or mail client's family as ua-parser names it, or `unknown`.

    >>> client_name("Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0")
    'Firefox'
    """
    if "Microsoft Outlook" in useragent or "MSOffice" in useragent:
        return "Outlook"
    result = ua_parser.parse(useragent) if useragent else None
    family = result.user_agent.family if result is not None and result.user_agent else ""
    return family if family and family != "Other" else "unknown"
