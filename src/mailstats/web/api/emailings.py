"""Emailings: register one with its template (links extracted), list them, fetch one."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from mailstats.addresses import address
from mailstats.errors import InvalidParameter
from mailstats.store import Emailing
from mailstats.timefmt import format_time
from mailstats.tracking.render import extract_links
from mailstats.web import context, params

TYPES = ("mass", "individual")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def header_text(value: str | None, name: str) -> str:
    """A value that goes into a mail header: no line breaks or other control characters."""
    if value is None or _CONTROL.search(value):
        raise InvalidParameter(f"Invalid value for '{name}': no line breaks or control characters")
    return value


def _text(
    data: dict[str, Any], name: str, *, required: bool = True, limit: int = 1000
) -> str | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if (
        not isinstance(value, str)
        or (required and not value)
        or len(value) > limit
        or "\x00" in value  # text columns cannot hold NUL
    ):
        raise InvalidParameter(
            f"Invalid value for '{name}': a string of at most {limit} characters"
        )
    return value


def _emailing_input(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidParameter("Request body must be a JSON object")
    sender = data.get("from_address")
    if not isinstance(sender, dict):
        raise InvalidParameter("Invalid value for 'from_address': an object with name and email")
    tags = data.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) and len(t) <= 200 for t in tags):
        raise InvalidParameter("Invalid value for 'tags': a list of strings")
    kind = data.get("type", "mass")
    if kind not in TYPES:
        raise InvalidParameter("Invalid value for 'type': mass or individual")
    return {
        "subject": header_text(_text(data, "subject"), "subject"),
        "from_name": header_text(_text(sender, "name", required=False) or "", "name"),
        "from_email": address(_text(sender, "email", limit=320), "email"),
        "html": _text(data, "html", limit=5_000_000),
        "text": _text(data, "text", required=False, limit=5_000_000),
        "tags": tags,
        "type": kind,
    }


async def create(request: Request) -> Response:
    """POST ms/emailings: {"subject", "from_address": {"name", "email"}, "html", "tags"?}."""
    account = await context.account(request)
    fields = _emailing_input(await context.json_body(request))
    links = [(s.start, s.end, s.url) for s in extract_links(fields["html"])]
    st = context.state(request)
    emailing_id = await context.run(
        lambda: st.store.create_emailing(account.id, links=links, **fields)
    )
    return context.created([emailing_id])


def item(emailing: Emailing, tz: Any, *, tags: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": str(emailing.id),
        "timestamp": format_time(emailing.created_at, tz),
        "template": None,
        "subject": emailing.subject,
        "from_address": {"name": emailing.from_name, "email": emailing.from_email},
        "destinations": str(emailing.destinations),
        "type": emailing.type,
    }
    if tags:
        out["tags"] = emailing.tags
    return out


async def list_all(request: Request) -> Response:
    """GET ms/emailings (paged; type, fromdate, todate)."""
    account = await context.account(request)
    st = context.state(request)
    tz = st.zone(account.timezone)
    query = context.query(request)
    paging = params.parse_paging(query)
    kind = params.scalar(query, "type")
    if kind is not None and kind not in TYPES:
        raise InvalidParameter("Invalid value for parameter 'type': mass or individual")
    bounds = {}
    for name in ("fromdate", "todate"):
        raw = params.scalar(query, name)
        upper = name == "todate"
        bounds[name] = None if raw is None else params.parse_time(raw, tz, name, upper=upper)
    page = await context.run(
        lambda: st.read.emailings(
            account.id,
            start=paging.start,
            limit=paging.limit,
            total=paging.total,
            type=kind,
            **bounds,
        )
    )
    return context.envelope(paging, [item(e, tz) for e in page.rows], page.total)


async def get_one(request: Request) -> Response:
    """GET ms/emailing/$id."""
    account = await context.account(request)
    st = context.state(request)
    emailing = await context.run(st.read.emailing, account.id, context.path_id(request))
    return context.json(item(emailing, st.zone(account.timezone), tags=True))
