"""ms/subject?email=...: everything stored about an address (GET), and its erasure (DELETE)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from mailstats.errors import InvalidParameter
from mailstats.store import subjects
from mailstats.web import context


def _email(request: Request) -> str:
    values = context.query(request).get("email")
    email = values[-1].strip() if values else ""
    if not email or len(email) > 320 or "\x00" in email or "@" not in email:
        raise InvalidParameter("Invalid value for parameter 'email': an email address")
    return email


async def get(request: Request) -> Response:
    """GET ms/subject?email=...: one JSON document of every stored item about the address."""
    account = await context.account(request)
    email = _email(request)
    st = context.state(request)
    found = await context.run(subjects.access, st.store, account.id, email)
    return context.json(subjects.document(found, st.zone(account.timezone)))


async def delete(request: Request) -> Response:
    """DELETE ms/subject?email=...: the address erased; a receipt of what was cleared."""
    account = await context.account(request)
    email = _email(request)
    st = context.state(request)
    receipt = await context.run(subjects.erase, st.store, account.id, email)
    return context.json(receipt.as_json(st.zone(account.timezone)))
