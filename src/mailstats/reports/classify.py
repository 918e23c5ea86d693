"""Why a message bounced: one reason from a documented set, and whether that means never.

The reason comes from the remote server's words where they are specific, else from the
enhanced status code (RFC 3463), else from words that only hint. `hard` is kept for the
reasons that mean the address will never accept mail; everything else may heal (a full
mailbox, a block list, a policy) and is `soft`, so it never suppresses a good address.
"""

from __future__ import annotations

import re

REASONS = (
    "userunknown",  # no such mailbox at the destination
    "hostunknown",  # no such domain, or a domain that accepts no mail (null MX)
    "hasmoved",  # the mailbox has moved and forwards nothing
    "mailboxfull",
    "exceedlimit",  # the message exceeds the recipient's own size limit
    "suspend",  # the mailbox exists but is disabled or inactive
    "blocked",  # the sending host or IP is refused (block list, reputation)
    "rejected",  # the sender address or domain is refused
    "policyviolation",  # the receiver's policy refused this message
    "spamdetected",
    "virusdetected",
    "authfailure",  # SPF, DKIM or DMARC failed
    "requireptr",  # the sending IP has no reverse DNS
    "notcompliantrfc",  # the message breaks the RFCs (headers, syntax)
    "ratelimited",
    "toomanyconn",
    "mesgtoobig",  # larger than the receiving system takes
    "contenterror",  # attachments, MIME or content the receiver will not take
    "securityerror",  # TLS or other transport security
    "networkerror",  # no connection, timeouts, loops
    "systemerror",  # the receiving system failed
    "systemfull",  # the receiving system is out of space
    "mailererror",  # a local delivery program failed
    "expired",  # retried until the queue lifetime ran out
    "suppressed",  # the sending service refused to try (Amazon SES suppression list)
    "undefined",
)
HARD_REASONS = frozenset({"userunknown", "hostunknown", "hasmoved"})

_RULES = tuple[tuple[str, re.Pattern[str]], ...]


def _rules(*pairs: tuple[str, str]) -> _RULES:
    return tuple((reason, re.compile(pattern, re.IGNORECASE)) for reason, pattern in pairs)


# Words that settle the reason whatever the code says; checked in this order, so a block
# list named "spamhaus" is `blocked` before "spam" can make it `spamdetected`.
_STRONG = _rules(
    (
        "hostunknown",
        r"host or domain name not found|host not found|domain not found|"
        r"host unknown|unknown host|no such domain|unrouteable address|name service error|domain (name )?does not exist|"
        r"nxdomain|does not accept (any )?mail|null mx|domain (is )?not (valid|exist)|"
        r"unroutable address|dns error",
    ),
    (
        "userunknown",
        r"user ?unknown|unknown (user|recipient|local part|mailbox)|"
        r"no such (user|mailbox|recipient|person|address)|recipient (not found|unknown|invalid)|"
        r"(address|account|mailbox|user|recipient)[^.;]{0,40}(does not|doesn'?t|did not) exist|"
        r"invalid (recipient|mailbox|address|user)|mailbox not found|user not found|"
        r"not a valid (mailbox|recipient|user)|no mailbox here|recipnotfound|"
        r"doesn'?t have an? [\w.-]+ account|address (couldn'?t|could not) be found|"
        r"addressee unknown|bad destination mailbox|no valid recipients|"
        r"unknown or illegal alias|recipient address rejected: access denied|"
        r"no mailbox by that name|not our customer",
    ),
    ("hasmoved", r"has moved|no longer (with|at|available at)|address has changed"),
    (
        "mailboxfull",
        r"mailbox (is )?full|over ?quota|quota exceeded|exceeded (storage|quota)|"
        r"out of storage|insufficient storage|mailbox size limit|disk quota|inbox is full|"
        r"storage (space )?(limit|allocation)",
    ),
    (
        "suspend",
        r"(account|mailbox|user)[^.;]{0,30}(disabled|suspended|inactive|deactivated|"
        r"expired|locked|closed|blocked for)|mailbox disabled|not accepting (messages|mail)",
    ),
    ("virusdetected", r"virus|malware|infected|trojan"),
    (
        "requireptr",
        r"reverse (dns|hostname|lookup)|ptr record|no ptr|rdns|"
        r"cannot find your hostname",
    ),
    (
        "authfailure",
        r"\bspf\b|\bdkim\b|\bdmarc\b|sender policy framework|"
        r"not authenticated|unauthenticated|authentication (check )?fail",
    ),
    (
        "rejected",
        r"relay access denied|relaying denied|not permitted to relay|relay not permitted|"
        r"unable to relay",
    ),
    (
        "blocked",
        r"blocked using|black ?list|block ?list|spamhaus|\brbl\b|dnsbl|spamcop|"
        r"sorbs|barracuda|reputation|client host rejected|listed (at|in|on)|"
        r"ip address [^.]{0,40}blocked|poor sender",
    ),
    ("spamdetected", r"spam|unsolicited|junk mail|bulk (e-?mail|mail)|content filter"),
    ("blocked", r"banned|your ip|access denied|connection refused by|blocked by|has been blocked"),
    ("toomanyconn", r"too many (connections|concurrent|sessions)"),
    (
        "ratelimited",
        r"rate limit|rate of|too many (messages|emails|mails)|throttl|"
        r"sending limit|try again later|temporarily (deferred|rate)",
    ),
    (
        "mesgtoobig",
        r"message (is )?too (big|large)|size exceeds|exceeds (the )?(maximum|"
        r"size)|message size|message length exceeds|too large",
    ),
    (
        "expired",
        r"expired|retry time ?out|retry timeout exceeded|"
        r"too long in (the )?queue|could not be delivered within|delivery time|"
        r"message timed out|queue lifetime",
    ),
    ("systemfull", r"insufficient system storage|system (is )?full|out of disk"),
    (
        "notcompliantrfc",
        r"rfc ?[25]?822|rfc ?5322|rfc ?532[12]|not rfc|malformed|"
        r"header (is )?(invalid|missing)|missing (required )?header|syntax error",
    ),
    ("securityerror", r"\btls\b|starttls|encryption required|certificate"),
    ("mailererror", r"command died|mailer error|pipe to |procmail|exit (status|code)"),
    (
        "networkerror",
        r"connection (timed out|refused|reset)|timed out|no route to host|"
        r"network is unreachable|lost connection|mail loop|loop detected|too many hops|"
        r"no answer|(accept|refused) our requests? to connect|could not connect|"
        r"unable to connect",
    ),
)

# Words too common to settle anything on their own: only when the status does not.
_WEAK = _rules(
    ("userunknown", r"mailbox unavailable|recipient address rejected"),
    ("policyviolation", r"policy|prohibited|not (allowed|permitted|authorized)"),
    ("contenterror", r"content|attachment|mime"),
    (
        "rejected",
        r"sender address rejected|sender rejected|rejected|refused|denied|"
        r"not have permission",
    ),
    (
        "systemerror",
        r"local (configuration )?error|temporary (local )?(failure|problem)|"
        r"service (not )?(un)?available",
    ),
)

# subject.detail -> reason (RFC 3463 and its registry), for when the words say nothing.
_DETAILS = {
    "1.0": "userunknown", "1.1": "userunknown", "1.2": "hostunknown", "1.3": "userunknown",
    "1.4": "userunknown", "1.6": "hasmoved", "1.7": "rejected", "1.8": "rejected",
    "1.10": "hostunknown",
    "2.0": "undefined", "2.1": "suspend", "2.2": "mailboxfull", "2.3": "exceedlimit",
    "2.4": "systemerror",
    "3.0": "systemerror", "3.1": "systemfull", "3.2": "systemerror", "3.3": "systemerror",
    "3.4": "mesgtoobig", "3.5": "systemerror",
    "4.0": "networkerror", "4.1": "networkerror", "4.2": "networkerror",
    "4.3": "systemerror", "4.4": "hostunknown", "4.5": "toomanyconn", "4.6": "networkerror",
    "4.7": "expired",
    "5.0": "systemerror", "5.1": "systemerror", "5.2": "notcompliantrfc", "5.3": "exceedlimit",
    "5.4": "systemerror", "5.5": "systemerror",
    "6.0": "contenterror", "6.1": "contenterror", "6.2": "contenterror",
    "6.3": "contenterror", "6.4": "contenterror", "6.5": "contenterror",
    "6.6": "contenterror",
    "7.0": "securityerror", "7.1": "policyviolation", "7.2": "rejected",
    "7.3": "securityerror", "7.4": "securityerror", "7.5": "securityerror",
    "7.6": "securityerror", "7.7": "securityerror", "7.8": "securityerror",
    "7.9": "securityerror", "7.10": "securityerror", "7.13": "suspend", "7.14": "rejected",
    "7.15": "rejected", "7.16": "mesgtoobig", "7.17": "hasmoved", "7.18": "hasmoved",
    "7.20": "authfailure", "7.21": "authfailure", "7.22": "authfailure",
    "7.23": "authfailure", "7.24": "authfailure", "7.25": "requireptr",
    "7.26": "authfailure", "7.27": "rejected", "7.28": "ratelimited", "7.29": "authfailure",
    "7.30": "authfailure",
}  # fmt: skip

# The status a reason implies when the message gives none (the class comes from the
# reply code or the action).
IMPLIED_DETAIL = {
    "userunknown": "1.1", "hostunknown": "1.2", "hasmoved": "1.6", "mailboxfull": "2.2",
    "exceedlimit": "2.3", "suspend": "2.1", "blocked": "7.1", "rejected": "7.1",
    "policyviolation": "7.1", "spamdetected": "7.1", "virusdetected": "7.1",
    "authfailure": "7.26", "requireptr": "7.25", "notcompliantrfc": "6.0",
    "ratelimited": "7.28", "toomanyconn": "4.5", "mesgtoobig": "3.4", "contenterror": "6.0",
    "securityerror": "7.0", "networkerror": "4.0", "systemerror": "3.0",
    "systemfull": "3.1", "mailererror": "0.0", "expired": "4.7", "suppressed": "0.0",
    "undefined": "0.0",
}  # fmt: skip


def reason(status: str, text: str) -> str:
    """The reason for one failure: `reason("5.1.1", "550 5.1.1 User unknown")` is
    `"userunknown"`; the words come first because servers reuse codes loosely (5.7.1 for
    spam, block lists and policy alike; Exchange's 5.1.10 for an unknown recipient)."""
    for name, pattern in _STRONG:
        if pattern.search(text):
            return name
    detail = status.partition(".")[2]
    # X.Y.0 is "other" within its subject: words that only hint say more than it does.
    if detail in _DETAILS and not detail.endswith(".0"):
        return _DETAILS[detail]
    for name, pattern in _WEAK:
        if pattern.search(text):
            return name
    if detail in _DETAILS:
        return _DETAILS[detail]
    return "undefined"


def errortype(reason_: str, status: str, delayed: bool = False) -> str:
    """`hard` only for a permanent failure whose reason means never; else `soft`."""
    if delayed or status.startswith("4"):
        return "soft"
    return "hard" if reason_ in HARD_REASONS else "soft"


def implied_status(reason_: str, klass: str) -> str:
    """`implied_status("mailboxfull", "4")` is `"4.2.2"`."""
    return f"{klass}.{IMPLIED_DETAIL.get(reason_, '0.0')}"
