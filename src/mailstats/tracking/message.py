"""One recipient's message: tracked HTML, text, headers and the whole MIME message."""

from __future__ import annotations

import email.policy
import email.utils
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from html.parser import HTMLParser
from urllib.parse import urlsplit

from mailstats.store import Destination, Emailing, Link
from mailstats.tracking.render import render
from mailstats.tracking.tokens import Purpose, Signer


@dataclass(frozen=True)
class Urls:
    """The signed URLs of one destination."""

    click: Callable[[int], str]
    pixel: str
    unsubscribe: str
    message_id: str
    trap: str | None = None  # the trap link's click URL, rendered where no person sees it


def message_id(base_url: str, dest: Destination) -> str:
    """The destination's own Message-ID; its key is also the VERP tag of the bounce address."""
    return f"<{dest.message_key}@{urlsplit(base_url).hostname or 'localhost'}>"


def urls(base_url: str, signer: Signer, dest: Destination, trap: Link | None = None) -> Urls:
    """The signed tracking URLs of one destination, under the public base URL; `trap`:
    the emailing's trap link."""
    sign = signer.sign
    return Urls(
        click=lambda link_id: f"{base_url}/c/{sign(Purpose.CLICK, dest.id, link_id)}",
        pixel=f"{base_url}/o/{sign(Purpose.OPEN, dest.id)}",
        unsubscribe=f"{base_url}/u/{sign(Purpose.UNSUBSCRIBE, dest.id)}",
        message_id=message_id(base_url, dest),
        trap=None if trap is None else f"{base_url}/c/{sign(Purpose.CLICK, dest.id, trap.id)}",
    )


def html(emailing: Emailing, links: Sequence[Link], urls: Urls) -> str:
    """The template with each tracked link replaced, the open pixel and the trap added."""
    spans = [(k.start, k.stop, urls.click(k.id)) for k in links]
    return render(emailing.html, spans, urls.pixel, urls.trap)


class _Text(HTMLParser):
    """Readable text from HTML: block ends become line breaks, links keep their URL."""

    BLOCKS = frozenset({"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "table"})

    def __init__(self, hrefs: dict[str, str]) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.hrefs = hrefs
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "script", "head"):
            self.skip += 1
        elif tag == "a":
            href = dict(attrs).get("href") or ""
            if href.strip() in self.hrefs:
                self.out.append(f" <{self.hrefs[href.strip()]}> ")
        elif tag in self.BLOCKS:
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "head"):
            self.skip = max(0, self.skip - 1)
        elif tag in self.BLOCKS:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.out.append(" ".join(data.split()) if data.strip() else "")


def text(emailing: Emailing, links: Sequence[Link], urls: Urls) -> str:
    """The text version: as registered, with tracked URLs, or else derived from the HTML."""
    if emailing.text:
        out = emailing.text
        for link in sorted(links, key=lambda k: -len(k.url)):
            out = out.replace(link.url, urls.click(link.id))
        return out
    parser = _Text({link.url: urls.click(link.id) for link in links})
    parser.feed(emailing.html)
    parser.close()
    lines = (line.strip() for line in "".join(parser.out).splitlines())
    return "\n".join(line for line in lines if line) + "\n"


def headers(emailing: Emailing, urls: Urls) -> dict[str, str]:
    """The headers the sender adds: Message-ID, VERP Return-Path, RFC 8058 unsubscribe."""
    domain = emailing.from_email.rpartition("@")[2] or "localhost"
    key = urls.message_id.strip("<>").partition("@")[0]
    return {
        "Message-ID": urls.message_id,
        "Return-Path": f"<bounces+{key}@{domain}>",
        "List-Unsubscribe": f"<{urls.unsubscribe}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def mime(emailing: Emailing, dest: Destination, links: Sequence[Link], urls: Urls) -> bytes:
    """The whole message for this destination: headers, text and HTML alternatives."""
    # An internationalised address (RFC 6531) goes into the headers as UTF-8
    utf8 = not (dest.email.isascii() and emailing.from_email.isascii())
    msg = EmailMessage(policy=email.policy.SMTPUTF8 if utf8 else email.policy.SMTP)
    if emailing.from_email.isascii():
        msg["From"] = Address(emailing.from_name, addr_spec=emailing.from_email)
    else:  # Address() takes no non-ASCII local part; the header parser does (RFC 6532)
        name = emailing.from_name.replace("\\", "\\\\").replace('"', '\\"')
        msg["From"] = f'"{name}" <{emailing.from_email}>' if name else emailing.from_email
    msg["To"] = dest.email
    msg["Subject"] = emailing.subject
    msg["Date"] = email.utils.formatdate(dest.created_at, localtime=False)
    msg["MIME-Version"] = "1.0"
    for name, value in headers(emailing, urls).items():
        msg[name] = value
    msg.set_content(text(emailing, links, urls))
    # As bytes, so that the HTML part is exactly body/html (text content gets a newline added)
    body = html(emailing, links, urls).encode()
    msg.add_alternative(body, "text", "html", cte="base64", params={"charset": "utf-8"})
    return msg.as_bytes()
