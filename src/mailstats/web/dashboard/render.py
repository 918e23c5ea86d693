"""Jinja2 templates of the dashboard, rendered with autoescaping and strict headers."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import jinja2
import orjson
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse

from mailstats.timefmt import format_time

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

# Scripts and styles only from this server; a message in the click map loads nothing remote.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline';"
        " script-src 'self'; frame-src 'self'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _json(value: Any) -> Markup:
    """JSON for a <script type="application/json"> element: nothing in it can close the tag."""
    text = orjson.dumps(value).decode()
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def _local(epoch: int, tz: ZoneInfo) -> str:
    return format_time(epoch, tz)[:16]


def _offset(epoch: int, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(epoch, tz).strftime("%z")


_ENV.filters.update(tojson_script=_json, local=_local, offset=_offset)
_ENV.globals.update(percent=_percent, urlencode=urlencode)


def page(request: Request, name: str, status: int = 200, **values: Any) -> HTMLResponse:
    session = request.scope.get("session") or {}
    html = _ENV.get_template(name).render(
        csrf=session.get("csrf", ""),
        account=values.pop("account", None),
        root=request.scope.get("root_path", "") or "/dashboard",
        **values,
    )
    return HTMLResponse(html, status_code=status, headers=HEADERS)
