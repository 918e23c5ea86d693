"""Auto-replies (RFC 3834, vacation, out-of-office): recognised so that they are answered as
"not a bounce" and never recorded as errors."""

from __future__ import annotations

import re
from email.message import Message

from mailstats.reports.common import header

_SUBJECT = re.compile(
    r"^(auto(matic)?[- ]?(reply|response|antwort|antwoord|risposta|respuesta)|auto:|"
    r"autoreply|out of (the )?office|ooo\b|vacation|on vacation|away from|abwesen|"
    r"afwezig|absence|absent|r[ée]ponse automatique|respuesta autom|risposta autom|"
    r"i am (currently )?(out|away)|thank you for (your|contacting)|received your message)",
    re.IGNORECASE,
)
_MARKERS = ("x-autoreply", "x-autorespond", "x-autoresponder", "x-vacation", "x-mail-autoreply")


def auto_reply(envelope: Message) -> str:
    """Why this message is an auto-reply, or "" when it is not one."""
    submitted = header(envelope, "auto-submitted").lower()
    if submitted.startswith("auto-replied"):
        return "an auto-reply (Auto-Submitted: auto-replied)"
    for name in _MARKERS:
        if header(envelope, name):
            return f"an auto-reply ({name})"
    precedence = header(envelope, "precedence").lower()
    if precedence == "auto_reply":
        return "an auto-reply (Precedence: auto_reply)"
    if _SUBJECT.search(header(envelope, "subject").strip()):
        return "an auto-reply (its subject)"
    if (
        header(envelope, "x-ms-exchange-inbox-rules-loop")
        or "oof" in header(envelope, "x-ms-exchange-generated-message-source").lower()
    ):
        return "an auto-reply (an Exchange rule)"
    return ""
