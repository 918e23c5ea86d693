"""Destinations: one message to one recipient; registering them, and the message as sent."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from mailstats.addresses import address
from mailstats.errors import InvalidMethod, InvalidParameter
from mailstats.ingest import whole_number
from mailstats.store import Destination, Emailing, Link
from mailstats.timefmt import format_time
from mailstats.tracking import message
from mailstats.web import context, params

MAX_BATCH = 10_000


def _id_value(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name)
    if value is None:
        return None
    text = value if isinstance(value, str) else whole_number(value)
    if text is None or len(str(text)) > 64 or "\x00" in str(text):
        raise InvalidParameter(f"Invalid value for '{name}': a string or a whole number")
    return str(text)


def _destination_input(item: Any) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise InvalidParameter("Each destination must be a JSON object")
    email = item.get("email")
    if not isinstance(email, str) or len(email) > 320:
        raise InvalidParameter("Invalid value for 'email': an email address")
    address(email, "email")
    fields = item.get("fields", {})
    if not isinstance(fields, dict) or not all(
        isinstance(v, str | int | float) and not isinstance(v, bool) and "\x00" not in f"{k}{v}"
        for k, v in fields.items()
    ):
        raise InvalidParameter("Invalid value for 'fields': an object of strings and numbers")
    return {
        "email": email,
        "profile": _id_value(item, "profile"),
        "subprofile": _id_value(item, "subprofile"),
        "fields": {str(k): str(v) for k, v in fields.items()},
    }


async def create(request: Request) -> Response:
    """POST ms/emailing/$id/destinations: one object, or a list of them."""
    account = await context.account(request)
    emailing_id = context.path_id(request)
    data = await context.json_body(request)
    items = data if isinstance(data, list) else [data]
    if not items or len(items) > MAX_BATCH:
        raise InvalidParameter(f"Send 1 to {MAX_BATCH} destinations in one call")
    rows = [_destination_input(item) for item in items]
    st = context.state(request)
    ids = await context.run(st.store.create_destinations, account.id, emailing_id, rows)
    return context.created(ids)


async def list_all(request: Request) -> Response:
    """GET ms/emailing/$id/destinations (paged)."""
    account = await context.account(request)
    emailing_id = context.path_id(request)
    paging = params.parse_paging(context.query(request))
    st = context.state(request)
    tz = st.zone(account.timezone)
    page = await context.run(
        lambda: st.read.destinations(
            account.id, emailing_id, start=paging.start, limit=paging.limit, total=paging.total
        )
    )
    data = [
        {
            "ID": str(d.id),
            "mailing": str(d.emailing_id),
            "timestampsent": format_time(d.created_at, tz),
            "profile": d.profile,
            "subprofile": d.subprofile,
        }
        for d in page.rows
    ]
    return context.envelope(paging, data, page.total)


def message_id(st: context.State, dest: Destination) -> str:
    return message.message_id(st.settings.base_url, dest)


async def get_one(request: Request) -> Response:
    """GET ms/destination/$id."""
    account = await context.account(request)
    st = context.state(request)
    dest = await context.run(st.read.destination, account.id, context.path_id(request))
    return context.json(
        {
            "ID": str(dest.id),
            "messageID": message_id(st, dest),
            "mailing": str(dest.emailing_id),
            "timestampsent": format_time(dest.created_at, st.zone(account.timezone)),
            "profile": dest.profile,
            "subprofile": dest.subprofile,
        }
    )


def _tracking_urls(st: context.State, dest: Destination, trap: Link | None = None) -> message.Urls:
    return message.urls(st.settings.base_url, st.signer, dest, trap)


def _loaded(
    st: context.State, account_id: int, destination_id: int
) -> tuple[Destination, Emailing, Any, Link | None]:
    dest = st.read.destination(account_id, destination_id)
    emailing = st.read.emailing(account_id, dest.emailing_id)
    return dest, emailing, st.read.links(emailing.id), st.read.trap_link(emailing.id)


async def body(request: Request) -> Response:
    """GET ms/destination/$id/body/{html,text,mime}: the message as that recipient gets it."""
    account = await context.account(request)
    part = request.path_params["part"]
    if part not in ("html", "text", "mime"):
        raise InvalidMethod()
    st = context.state(request)
    found = await context.run(_loaded, st, account.id, context.path_id(request))
    dest, emailing, links, trap = found
    urls = _tracking_urls(st, dest, trap)
    if part == "html":
        return Response(message.html(emailing, links, urls), media_type="text/html; charset=utf-8")
    if part == "text":
        return Response(message.text(emailing, links, urls), media_type="text/plain; charset=utf-8")
    return Response(message.mime(emailing, dest, links, urls), media_type="message/rfc822")


async def headers(request: Request) -> Response:
    """GET ms/destination/$id/headers: what the sender adds (RFC 8058 unsubscribe, Message-ID)."""
    account = await context.account(request)
    st = context.state(request)
    dest = await context.run(st.read.destination, account.id, context.path_id(request))
    emailing = await context.run(st.read.emailing, account.id, dest.emailing_id)
    return context.json(message.headers(emailing, _tracking_urls(st, dest)))
