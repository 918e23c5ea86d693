"""The click map: the emailing's HTML as recipients saw it, each tracked link marked with
its clicks and share of all clicks.

Links are known by where their href value sits in the template (links.start/stop), so the
template is changed only there: the href becomes "#" and the tag gets the link's ID and a
label, which the map's style sheet shows beside the link. The result goes into a sandboxed
iframe (no scripts, no forms) under the page's content security policy (nothing remote).
"""

from __future__ import annotations

import html as htmllib
from collections.abc import Sequence

from mailstats.store import Link

_STYLE = (
    "<style>a[data-ms-link]{outline:2px solid #d9480f;outline-offset:1px;position:relative}"
    "a[data-ms-link]::after{content:attr(data-ms-label);display:inline-block;margin-left:4px;"
    "padding:0 5px;border-radius:8px;background:#d9480f;color:#fff;font:bold 12px/18px "
    "system-ui,sans-serif;white-space:nowrap;text-decoration:none;vertical-align:middle}</style>"
)


def label(clicks: int, total: int) -> str:
    share = f"{100 * clicks / total:.0f}%" if total else "0%"
    return f"{clicks} · {share}"


def render(template: str, links: Sequence[Link], clicks: dict[int, int]) -> str:
    """The template with every tracked link marked; `clicks` maps link ID to its clicks."""
    total = sum(clicks.values())
    out: list[str] = []
    at = 0
    for link in sorted(links, key=lambda k: k.start):
        tag = template.rfind("<", at, link.start)
        if tag < 0 or link.start < at:
            continue  # not where the template says: leave the link as it is
        name_end = tag + 1
        while name_end < link.start and template[name_end].isalnum():
            name_end += 1
        n = clicks.get(link.id, 0)
        attrs = (
            f' data-ms-link="{link.id}" data-ms-clicks="{n}"'
            f' data-ms-label="{htmllib.escape(label(n, total))}"'
        )
        out.append(template[at:name_end])
        out.append(attrs)
        out.append(template[name_end : link.start])
        out.append("#")
        at = link.stop
    out.append(template[at:])
    marked = "".join(out)
    head = marked.lower().find("<head")
    if head >= 0:
        close = marked.find(">", head)
        return marked[: close + 1] + _STYLE + marked[close + 1 :]
    return _STYLE + marked
