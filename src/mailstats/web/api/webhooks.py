"""Webhook endpoints of an account: added, listed, enabled again, replayed, removed, and
their recent delivery attempts. Delivery itself is mailstats.webhooks.dispatcher's."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import Response

from mailstats.errors import InvalidParameter
from mailstats.kinds import KINDS
from mailstats.store.webhooks import BOTS, Delivery, Webhook
from mailstats.timefmt import format_time
from mailstats.web import context, params
from mailstats.webhooks.network import check_url

_NEW_FIELDS = {"url", "kinds", "bots"}


def webhook_item(hook: Webhook, tz: ZoneInfo) -> dict[str, Any]:
    """An endpoint as the API and the CLI show it (never its secret)."""
    return {
        "ID": str(hook.id),
        "url": hook.url,
        "kinds": list(hook.kinds),
        "bots": hook.bots,
        "state": "enabled" if hook.enabled else "disabled",
        "created": format_time(hook.created, tz),
        "disabled": None if hook.disabled_at is None else format_time(hook.disabled_at, tz),
        "failures": hook.failures,
        "pending": hook.pending,
        "delivered": str(hook.delivered_id),
        "retry": format_time(int(hook.next_at), tz) if hook.attempts and hook.next_at else None,
    }


def delivery_item(d: Delivery, tz: ZoneInfo) -> dict[str, Any]:
    return {
        "ID": str(d.id),
        "message": d.message_id,
        "attempt": d.attempt,
        "timestamp": format_time(int(d.at), tz),
        "events": d.events,
        "first": None if d.first_id is None else str(d.first_id),
        "last": None if d.last_id is None else str(d.last_id),
        "status": d.status,
        "latency": round(d.latency_ms, 1),
        "error": d.error,
    }


def _object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidParameter("Request body must be a JSON object")
    return data


def new_webhook(data: Any) -> tuple[str, list[str], str]:
    """url, kinds and bots from a request body (or the CLI's options), checked."""
    body = _object(data)
    unknown = sorted(set(body) - _NEW_FIELDS)
    if unknown:
        raise InvalidParameter(f"Unknown parameter {unknown[0]!r}")
    url = body.get("url")
    if not isinstance(url, str):
        raise InvalidParameter("Parameter 'url' is required: the https:// URL to post to")
    kinds = body.get("kinds", list(KINDS))
    if (
        not isinstance(kinds, list)
        or not kinds
        or not all(isinstance(k, str) and k in KINDS for k in kinds)
        or len(set(kinds)) != len(kinds)
    ):
        raise InvalidParameter(
            f"Invalid value for parameter 'kinds': a list of {', '.join(KINDS)}, each once"
        )
    bots = body.get("bots", "include")
    if bots not in BOTS:
        raise InvalidParameter("Invalid value for parameter 'bots': use include or exclude")
    return url, kinds, bots


async def create(request: Request) -> Response:
    """POST ms/webhooks: 201, the ID in X-Created, the signing secret in the body (once)."""
    account = await context.account(request)
    url, kinds, bots = new_webhook(await context.json_body(request))
    st = context.state(request)
    check_url(url, st.settings.webhook_allowed_networks)
    webhook_id, secret = await context.run(st.store.webhooks.create, account.id, url, kinds, bots)
    out = context.json({"ID": str(webhook_id), "secret": secret}, status=201)
    out.headers["X-Created"] = str(webhook_id)
    return out


async def list_all(request: Request) -> Response:
    """GET ms/webhooks (paged), oldest first."""
    account = await context.account(request)
    paging = params.parse_paging(context.query(request))
    st = context.state(request)
    tz = st.zone(account.timezone)
    start, limit = (paging.start, paging.limit) if paging.start >= 0 else (0, 0)
    found = await context.run(st.store.webhooks.all, account.id, start, limit)
    return context.envelope(paging, [webhook_item(h, tz) for h in found.rows], found.total)


async def get_one(request: Request) -> Response:
    """GET ms/webhook/$id."""
    account = await context.account(request)
    st = context.state(request)
    hook = await context.run(st.store.webhooks.get, account.id, context.path_id(request))
    return context.json(webhook_item(hook, st.zone(account.timezone)))


async def update(request: Request) -> Response:
    """PUT ms/webhook/$id with {"state": "enabled"} (again, after failures) or "disabled"."""
    account = await context.account(request)
    webhook_id = context.path_id(request)
    body = _object(await context.json_body(request))
    state = body.get("state")
    if set(body) != {"state"} or state not in ("enabled", "disabled"):
        raise InvalidParameter("Invalid value for parameter 'state': use enabled or disabled")
    st = context.state(request)
    hook = await context.run(
        st.store.webhooks.set_enabled, account.id, webhook_id, state == "enabled"
    )
    return context.json(webhook_item(hook, st.zone(account.timezone)))


async def delete(request: Request) -> Response:
    """DELETE ms/webhook/$id: the endpoint and what waits for it (204)."""
    account = await context.account(request)
    st = context.state(request)
    await context.run(st.store.webhooks.remove, account.id, context.path_id(request))
    return Response(b"", status_code=204)


async def deliveries(request: Request) -> Response:
    """GET ms/webhook/$id/deliveries (paged): recent attempts, newest first."""
    account = await context.account(request)
    webhook_id = context.path_id(request)
    paging = params.parse_paging(context.query(request))
    st = context.state(request)
    tz = st.zone(account.timezone)
    start, limit = (paging.start, paging.limit) if paging.start >= 0 else (0, 0)
    found = await context.run(st.store.webhooks.deliveries, account.id, webhook_id, start, limit)
    return context.envelope(paging, [delivery_item(d, tz) for d in found.rows], found.total)


def since_id(value: Any) -> int:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        value = int(value)  # JSON's 12.0 is an integer too
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise InvalidParameter("Invalid value for parameter 'since_id': an event ID, 0 or more")
    return value


async def replay(request: Request) -> Response:
    """POST ms/webhook/$id/replay with {"since_id": N}: events above N are pushed again."""
    account = await context.account(request)
    webhook_id = context.path_id(request)
    body = _object(await context.json_body(request))
    if set(body) != {"since_id"}:
        raise InvalidParameter("Parameter 'since_id' is required, and nothing else")
    since = since_id(body["since_id"])
    st = context.state(request)
    queued = await context.run(st.store.webhooks.replay, account.id, webhook_id, since)
    return context.json({"queued": queued})
