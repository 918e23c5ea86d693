"""Finding the tracked links in an HTML template and rendering one recipient's copy.

Rendering changes nothing but the link values it is given and the open pixel, so the
message a recipient gets is the template byte for byte everywhere else.
"""

from __future__ import annotations

import bisect
import html as htmllib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import quote

__all__ = ["LinkSpan", "extract_links", "personalise", "render"]

_LINK_TAGS = frozenset({"a", "area"})
_TAG_NAME = re.compile(r"<[^\s/>]*")
# One attribute of a start tag, following the HTML tokenizer: a name, then optionally
# "=" and a double-quoted, single-quoted or unquoted value.
_ATTRIBUTE = re.compile(
    r"""[\s/]*(?P<name>[^\s/>][^\s/>=]*)"""
    r"""(?:\s*=\s*(?:"(?P<double>[^"]*)"|'(?P<single>[^']*)'|(?P<bare>(?!['"])[^\s>]*)))?"""
)
_NEWLINE = re.compile("\n")
_BODY_CLOSE = re.compile(r"</body", re.IGNORECASE | re.ASCII)
_FIELD = re.compile(r"\{\$(profile|subprofile)\.([A-Za-z0-9_]+)\}")
# Hidden from sight, from screen readers and from the keyboard; no text to click.
_TRAP = '<a href="{}" aria-hidden="true" tabindex="-1" style="display:none"></a>'
_PIXEL = (
    '<img src="{}" width="1" height="1" alt="" style="display:none;border:0;width:1px;height:1px">'
)


@dataclass(frozen=True)
class LinkSpan:
    """Where an href value sits in a template (quotes excluded) and the URL it holds."""

    start: int
    end: int
    url: str


def extract_links(html: str) -> list[LinkSpan]:
    """Return the http and https links of every <a> and <area> tag, in document order.

    >>> extract_links('<a href="https://example.com/?a=1&amp;b=2">x</a>')
    [LinkSpan(start=9, end=41, url='https://example.com/?a=1&b=2')]
    """
    newlines = [match.start() for match in _NEWLINE.finditer(html)]
    links: list[LinkSpan] = []
    base = 0
    while base < len(html):
        parser = _LinkParser(html, base, newlines, links)
        resume = parser.run()
        if resume is None:
            break
        base = max(resume, base + 1)
    return links


def render(
    html: str,
    replacements: Sequence[tuple[int, int, str]],
    pixel_url: str | None,
    trap_url: str | None = None,
) -> str:
    """Return html with each (start, end) span replaced, the open pixel and the trap added.

    The pixel goes just before the last </body, or at the end without one; the trap link
    (`trap_url`, an empty link that no person sees or can reach) just before the pixel.

    >>> render('<a href="x">y</a></body>', [(9, 10, "z")], None)
    '<a href="z">y</a></body>'
    """
    _check_spans(replacements, len(html))
    edits = list(replacements)
    if pixel_url is not None or trap_url is not None:
        at = _pixel_offset(html, replacements)
        pixel = "" if trap_url is None else _TRAP.format(htmllib.escape(trap_url, quote=True))
        if pixel_url is not None:
            pixel += _PIXEL.format(htmllib.escape(pixel_url, quote=True))
        edits.insert(bisect.bisect_left(edits, (at, at), key=lambda e: e[:2]), (at, at, pixel))
    pieces: list[str] = []
    done = 0
    for start, end, text in edits:
        pieces += (html[done:start], text)
        done = end
    pieces.append(html[done:])
    return "".join(pieces)


def personalise(url: str, fields: Mapping[str, object]) -> str:
    """Fill {$profile.NAME} and {$subprofile.NAME} tags with URL-encoded field values.

    A "profile.NAME" or "subprofile.NAME" key wins over a plain "NAME"; a missing field
    becomes the empty string.

    >>> personalise("https://example.com/?id={$profile.id}", {"id": "a b"})
    'https://example.com/?id=a%20b'
    """
    if "{$" not in url:
        return url
    return _FIELD.sub(lambda match: _field_value(match, fields), url)


def _field_value(match: re.Match[str], fields: Mapping[str, object]) -> str:
    scope, name = match.groups()
    value = fields.get(f"{scope}.{name}")
    if value is None:
        value = fields.get(name)
    return "" if value is None else quote(str(value), safe="")


def _check_spans(replacements: Sequence[tuple[int, int, str]], length: int) -> None:
    done = 0
    for start, end, _ in replacements:
        if start < done or end < start or end > length:
            raise ValueError(f"replacement span ({start}, {end}) is out of order or out of range")
        done = end


def _pixel_offset(html: str, spans: Sequence[tuple[int, int, str]]) -> int:
    starts = [start for start, _, _ in spans]
    for match in reversed(list(_BODY_CLOSE.finditer(html))):
        at = match.start()
        # A "</body" inside a replaced value is about to disappear; use an earlier one.
        index = bisect.bisect_right(starts, at) - 1
        if index < 0 or not spans[index][0] <= at < spans[index][1]:
            return at
    return len(html)


def _href_value(tag_text: str) -> tuple[int, int] | None:
    """Return the span of the first href value within a start tag's source text."""
    name = _TAG_NAME.match(tag_text)
    pos = name.end() if name else 0
    while (attribute := _ATTRIBUTE.match(tag_text, pos)) is not None and attribute.end() > pos:
        pos = attribute.end()
        if attribute["name"].lower() != "href":
            continue
        for group in ("double", "single", "bare"):
            if attribute[group] is not None:
                return attribute.span(group)
        return None
    return None


def _is_web_url(url: str) -> bool:
    scheme = url[:8].lower()
    return scheme.startswith("http://") or scheme == "https://"


class _LinkParser(HTMLParser):
    """Collects link spans from html[base:], reporting where to resume after a parse error."""

    def __init__(self, html: str, base: int, newlines: list[int], links: list[LinkSpan]) -> None:
        super().__init__(convert_charrefs=True)
        self._html = html
        self._base = base
        self._newlines = newlines
        self._first_newline = bisect.bisect_left(newlines, base)
        self._links = links

    def run(self) -> int | None:
        """Parse to the end; on a parse error return the offset to resume from."""
        try:
            self.feed(self._html[self._base :])
            self.close()
        except AssertionError:
            # The standard parser gives up on some malformed declarations such as
            # "<![bogus[": skip that "<" and carry on as a browser would.
            return self._offset() + 1
        return None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _LINK_TAGS:
            return
        tag_text = self.get_starttag_text()
        start = self._offset()
        if tag_text is None or not self._html.startswith(tag_text, start):
            return
        span = _href_value(tag_text)
        if span is None:
            return
        value = self._html[start + span[0] : start + span[1]]
        # Trust the span only when the parser read the same first href value.
        if htmllib.unescape(value) != _first_href(attrs):
            return
        url = htmllib.unescape(value).strip()
        if _is_web_url(url):
            self._links.append(LinkSpan(start + span[0], start + span[1], url))

    def _offset(self) -> int:
        line, column = self.getpos()
        if line == 1:
            return self._base + column
        return self._newlines[self._first_newline + line - 2] + 1 + column


def _first_href(attrs: list[tuple[str, str | None]]) -> str | None:
    return next((value for name, value in attrs if name == "href"), None)
