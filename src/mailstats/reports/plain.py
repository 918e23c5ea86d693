"""Bounces in plain language, as qmail, Exim, sendmail, Postfix, Gmail, Yahoo, OpenSMTPD,
Exchange, Courier, Google Groups and others write them when they send no delivery-status
part. Each family opens with a fixed sentence, names the failed addresses at the start of a
line, and quotes the remote server's answer below each; that shape is what is read here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message
from email.utils import getaddresses

from mailstats.reports.common import (
    ReportError,
    header,
    header_values,
    identifiers,
    notice_text,
    original_message,
    parse_date,
)
from mailstats.reports.dsn import MAX_RECIPIENTS, BounceEvent, failure


@dataclass(frozen=True)
class Family:
    """One way of writing a bounce: the sentence it opens with, and whether it is a delay."""

    name: str
    opening: re.Pattern[str]
    delayed: bool = False


def _family(name: str, pattern: str, delayed: bool = False) -> Family:
    return Family(name, re.compile(pattern, re.IGNORECASE), delayed)


# Delays first: their wording overlaps the failures of the same software.
FAMILIES = (
    _family("exim", r"has not yet been delivered to one or more of its\s+recipients", True),
    _family(
        "gmail",
        r"there was a temporary problem delivering your message|"
        r"delivery to the following recipient has been delayed",
        True,
    ),
    _family(
        "opensmtpd",
        r"delivery of your message has been delayed|"
        r"temporary failure has occurred while attempting to deliver",
        True,
    ),
    _family(
        "sendmail",
        r"warning: could not send message for past|"
        r"the following addresses had transient non-fatal errors",
        True,
    ),
    _family("postfix", r"#{5} THIS IS A WARNING ONLY|delayed mail \(still being retried\)", True),
    _family("courier", r"delayed mail|has not been delivered to the following recipients", True),
    _family(
        "qmail",
        r"this is the qmail-send program|"
        r"i'?m afraid i wasn'?t able to deliver your message",
    ),
    _family("yahoo", r"sorry, we were unable to deliver your message"),
    _family(
        "exim",
        r"this message was created automatically by mail delivery software|"
        r"could not be delivered to one or more of its\s+recipients",
    ),
    _family(
        "postfix",
        r"this is the mail system at host|"
        r"i'?m sorry to have to inform you that your message could not",
    ),
    _family(
        "sendmail",
        r"the following addresses had permanent fatal errors|"
        r"transcript of session follows",
    ),
    _family("googlegroups", r"the group you tried to contact|googlegroups"),
    _family(
        "gmail",
        r"delivery to the following recipients? failed|"
        r"your message wasn'?t delivered to|message not delivered|"
        r"address not found|message blocked",
    ),
    _family(
        "opensmtpd",
        r"this is the mailer-daemon, please do not reply|"
        r"an error has occurred while attempting to deliver a message",
    ),
    _family(
        "exchange",
        r"delivery has failed to these recipients|"
        r"did not reach (some or all of )?the intended recipients|"
        r"the following recipient\(s\) cannot be reached|your message (to .* )?couldn'?t "
        r"be delivered|could not be delivered to the following recipients",
    ),
    _family("courier", r"running the courier mail server|undeliverable mail"),
    _family("dma", r"this is the dragonfly mail agent|there was an error delivering your mail"),
    _family(
        "generic",
        r"(permanent|fatal) (error|failure)|undeliver(able|ed)|"
        r"(could not|couldn'?t|cannot|unable to) (be )?deliver|delivery (has )?failed|"
        r"returned mail|failure notice",
    ),
)

# Where the returned message starts: nothing after this is the bounce's own words.
_COPY = re.compile(
    r"below this line is a copy of the message|this is a copy of the message|"
    r"original message (follows|headers?)|below is a copy of the original message|"
    r"headers? of the original message|message headers follow|returned message follows|"
    r"-+ ?original message ?-+|undelivered message headers?:",
    re.IGNORECASE,
)
_BOUNCE_SENDER = re.compile(r"mailer-daemon|postmaster|mail delivery|mail ?delivery ?system|"
                            r"mdaemon|noreply-dmarc|bounce", re.IGNORECASE)  # fmt: skip
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|returned mail|delivery (status notification|failure|has failed|failed)|"
    r"failure notice|mail delivery failed|delivery incomplete|delayed mail|address not found|"
    r"nondeliverable|mail system error|message not delivered|could not send|"
    r"warning: message .* delayed|delivery delayed|undelivered mail",
    re.IGNORECASE,
)
_ADDR = r"[^\s<>()\[\]\"',;:@]+@[A-Za-z0-9][A-Za-z0-9.-]*\.[A-Za-z]{2,}"
# A line that starts with a failed address: `<a@b>:`, `  a@b`, `a@b (a@b)`, `a@b: 550 ...`.
_ADDR_LINE = re.compile(
    rf"^[ \t]*(?:\*\*\s*|-\s*)?<?({_ADDR})>?(?:<mailto:[^>]*>)?(?:\s*\([^)]*\))?"
    rf"(?:\s+on\s+.*)?\s*(?::\s*(.*))?$"
)
_IN_SENTENCE = re.compile(
    rf"(?:delivered to|delivering your (?:mail|message) to|wasn'?t delivered to|"
    rf"couldn'?t be delivered to|message to|recipient|deliver to)\s+<?({_ADDR})>?",
    re.IGNORECASE,
)
_REPLY = re.compile(r"(?<![\d.#])[245]\d\d[ -]")
_TRAILER = re.compile(
    r"giving up on [\d.:a-f]+\.?|i'?m not going to try again;.*|"
    r"(no action is required on your part|delivery attempts will continue).*",
    re.IGNORECASE | re.DOTALL,
)
_LEAD = re.compile(r"^\(?(remote host said|the error that the other server returned was|"
                   r"the response (from the remote server )?was|remote server returned|"
                   r"reason|diagnostic[- ]code)\s*:?\s*", re.IGNORECASE)  # fmt: skip
MAX_TEXT = 64 * 1024
MAX_LINE = 1000  # SMTP's own limit; longer lines name no address (and cost the regexes)


def looks_like_bounce(envelope: Message) -> bool:
    """What the headers say: a bounce comes from a mailer daemon, or says so in its
    subject, or names its failed recipients in X-Failed-Recipients (Exim)."""
    return bool(
        header(envelope, "x-failed-recipients")
        or _BOUNCE_SENDER.search(header(envelope, "from"))
        or _BOUNCE_SUBJECT.search(header(envelope, "subject"))
    )


def parse_plain(envelope: Message) -> list[BounceEvent]:
    """The failed recipients of a plain-language bounce; ReportError when it is none."""
    text = notice_text(envelope)[:MAX_TEXT]
    cut = _COPY.search(text)
    notice = text[: text.rfind("\n", 0, cut.start()) + 1] if cut else text
    family = next((f for f in FAMILIES if f.opening.search(notice)), None)
    if family is None or (family.name == "generic" and not looks_like_bounce(envelope)):
        raise ReportError("no delivery-status part and no bounce text that mailstats knows")
    found = _blocks(notice)
    for value in header_values(envelope, "x-failed-recipients"):
        for _, addr in getaddresses([value]):
            if addr and addr.lower() not in {a.lower() for a, _ in found}:
                found.append((addr, ""))
    if not found:
        lines = (line for line in notice.splitlines() if len(line) <= MAX_LINE)
        sentence = next((m for line in lines if (m := _IN_SENTENCE.search(line))), None)
        found = [(sentence.group(1), sentence.string.strip())] if sentence else []
    if not found:
        raise ReportError(f"a {family.name} bounce that names no failed address")
    original = original_message(envelope)
    ids = identifiers(envelope, original, recipients=[a for a, _ in found])
    if not ids:
        raise ReportError("bounce has no identifier of the original message")
    when = parse_date(header(envelope, "date"))
    action = "delayed" if family.delayed else "failed"
    if len(found) == 1 and not found[0][1].strip():  # named only in a header
        found = [(found[0][0], _paragraph_of(notice, family.opening))]
    return [
        failure(ids, addr, when, _description(said, notice, len(found) == 1), action=action)
        for addr, said in found[:MAX_RECIPIENTS]
    ]


def _paragraph_of(text: str, pattern: re.Pattern[str]) -> str:
    """The paragraph in which `pattern` is found: the bounce's own sentence of why."""
    for paragraph in re.split(r"\n\s*\n", text):
        if pattern.search(paragraph):
            return paragraph
    return ""


def _blocks(notice: str) -> list[tuple[str, str]]:
    """(address, the text below it up to the next address) for each failed address."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in notice.splitlines():
        match = _ADDR_LINE.match(line) if len(line) <= MAX_LINE else None
        if match:
            addr = match.group(1)
            current = found.setdefault(addr.lower(), [addr])
            if match.group(2):
                current.append(match.group(2))
        elif current is not None:
            current.append(line)
    return [(lines[0], "\n".join(lines[1:])) for lines in found.values()]


def _description(said: str, notice: str, only: bool) -> str:
    """The remote server's answer: from its reply code to the end of that paragraph, else
    the first words below the address (a local failure has no reply code)."""
    for text in (said, notice if only else ""):
        reply = _reply(text) or _after_lead(text)
        if reply:
            return reply
    paragraphs = [p for p in re.split(r"\n\s*\n", said) if p.strip()]
    words = " ".join(paragraphs[0].split()) if paragraphs else ""
    return _TRAILER.sub("", _LEAD.sub("", words)).strip()


def _after_lead(text: str) -> str:
    """The words after "The response was:" and its kin, when they carry no reply code."""
    for paragraph in re.split(r"\n\s*\n", text):
        lines = [line.strip() for line in paragraph.splitlines()]
        for i, line in enumerate(lines):
            lead = _LEAD.match(line)
            if lead and lead.group(1).lower() not in ("reason", "diagnostic code"):
                words = " ".join(" ".join([line[lead.end() :], *lines[i + 1 :]]).split())
                return _TRAILER.sub("", words).strip()
    return ""


def _reply(text: str) -> str:
    for paragraph in re.split(r"\n\s*\n", text):
        lines = [line.strip() for line in paragraph.splitlines()]
        for i, line in enumerate(lines):
            bracketed = line.startswith("(") and line.endswith(")")
            line = _LEAD.sub("", line.lstrip("<> ").strip("'"))
            line = line[:-1] if bracketed else line  # sendmail's "(reason: 550 ...)"
            match = _REPLY.search(line)
            # At the line's start, or after "host x[1.2.3.4] said:" and the like.
            if match and (match.start() <= 20 or line[: match.start()].rstrip().endswith(":")):
                rest = [line[match.start() :], *(x.lstrip("<> ") for x in lines[i + 1 :])]
                words = " ".join(" ".join(rest).split()).rstrip("'>")
                return _TRAILER.sub("", words).strip().rstrip("'")
    return ""
