"""GET and PUT ms/settings: the account's privacy settings (store/privacy.py)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from mailstats.errors import InvalidParameter
from mailstats.store import privacy
from mailstats.web import context


async def get(request: Request) -> Response:
    """GET ms/settings: {"ip", "useragent", "retention": {kind: days or null}}."""
    account = await context.account(request)
    found = await context.run(privacy.get, context.state(request).store, account.id)
    return context.json(found.as_json())


async def put(request: Request) -> Response:
    """PUT ms/settings with some of the keys: the settings after the change."""
    account = await context.account(request)
    data = await context.json_body(request)
    if not isinstance(data, dict):
        raise InvalidParameter("Request body must be a JSON object of settings")
    found = await context.run(privacy.put, context.state(request).store, account.id, data)
    return context.json(found.as_json())
