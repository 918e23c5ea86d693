"""Signing in and out of the dashboard, and the checks every page and form makes.

The session is Starlette's signed cookie (HttpOnly, SameSite=Lax, Secure when the public
URL is https). It holds who signed in (a token's or a user's ID, never a secret) and a
random CSRF token that every form sends back in a hidden field; a POST without it is
refused. Each request looks the signer up again, so a revoked token signs its sessions out.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from mailstats.errors import MailstatsError
from mailstats.store import Account
from mailstats.web import context
from mailstats.web.dashboard.render import page


class SignInNeeded(Exception):
    """Raised by a page that needs a signed-in account; answered with a redirect."""


class Forbidden(MailstatsError):
    """A form without the session's CSRF token."""

    status = 403


def csrf(request: Request) -> str:
    """The session's CSRF token, made on first use."""
    token: str | None = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(24)
    return token


async def account(request: Request) -> Account:
    """The signed-in account, or SignInNeeded."""
    via, signer = request.session.get("via"), request.session.get("signer")
    if not isinstance(via, str) or not isinstance(signer, int):
        raise SignInNeeded()
    st = context.state(request)
    found = await context.run(st.read.users.account, via, signer)
    if found is None:
        request.session.clear()
        raise SignInNeeded()
    return found


async def form(request: Request) -> dict[str, str]:
    """A submitted form's fields, once its CSRF token matches the session's."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise Forbidden("A form must be sent as application/x-www-form-urlencoded")
    raw = (await context.body(request)).decode("utf-8", "replace")
    fields = {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}
    expected = request.session.get("csrf")
    given = fields.get("csrf", "")
    if not expected or not hmac.compare_digest(given.encode(), str(expected).encode()):
        raise Forbidden("The form has expired: load the page again and resend it")
    return fields


def _next(raw: str | None, root: str) -> str:
    """Where to go after signing in: a dashboard path only, never another site."""
    if raw and raw.startswith(root + "/") and not raw.startswith("//") and "\\" not in raw:
        return raw
    return root + "/"


async def sign_in_page(request: Request) -> Response:
    csrf(request)
    return page(request, "login.html", next=request.query_params.get("next", ""), error=None)


async def sign_in(request: Request) -> Response:
    fields = await form(request)
    st = context.state(request)
    token = fields.get("token", "").strip()
    name, password = fields.get("user", "").strip(), fields.get("password", "")
    if token:
        # a read: a read node signs in with the primary down (a password may be rehashed:
        # that one goes to the primary)
        signer = await context.run(st.read.users.with_token, token)
    elif name and password:
        signer = await context.run(st.store.users.with_password, name, password)
    else:
        signer = None
    if signer is None:
        return page(
            request,
            "login.html",
            status=401,
            next=fields.get("next", ""),
            error="Unknown access token, or wrong user name or password.",
        )
    request.session.clear()  # a new session, and a new CSRF token, for the signed-in user
    request.session.update({"via": signer.via, "signer": signer.id})
    csrf(request)
    root = request.scope.get("root_path", "")
    return RedirectResponse(_next(fields.get("next"), root), status_code=303)


async def sign_out(request: Request) -> Response:
    await form(request)
    request.session.clear()
    return RedirectResponse(request.scope.get("root_path", "") + "/login", status_code=303)
