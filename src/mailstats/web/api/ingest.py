"""What the sending pipeline reports in bulk: NDJSON events, raw report emails, and Amazon
SNS notifications of SES bounces, complaints and deliveries."""

from __future__ import annotations

import logging
from functools import lru_cache

import orjson
from cryptography import x509
from starlette.requests import Request
from starlette.responses import Response

from mailstats import ingest
from mailstats.errors import InvalidParameter
from mailstats.reports import sns
from mailstats.web import context

log = logging.getLogger("mailstats.sns")


async def bulk(request: Request) -> Response:
    """POST ms/events: NDJSON, one {"kind", "destination", ...} per line; all or nothing."""
    account = await context.account(request)
    raw = await context.body(request)
    st = context.state(request)
    tz = st.zone(account.timezone)

    def load() -> int:
        events = ingest.events_from_ndjson(st.store, account, raw.splitlines(), tz)
        if not events:
            raise InvalidParameter("Request body holds no events")
        st.store.insert_events(events)
        return len(events)

    count = await context.run(load)
    return Response(b"", status_code=201, headers={"X-Created": str(count)})


def _answer(taken: ingest.Taken) -> Response:
    """201 with how many events were stored; an auto-reply or a delivery notice answers
    200 with X-Created 0 and says why in X-Not-A-Bounce, so a pipe or a retry loop is done."""
    if taken.not_a_bounce:
        headers = {"X-Created": "0", "X-Not-A-Bounce": taken.not_a_bounce}
        return Response(b"", status_code=200, headers=headers)
    return Response(b"", status_code=201, headers={"X-Created": str(taken.stored)})


async def report_mail(request: Request) -> Response:
    """POST ms/reports: one bounce, complaint or SES notification email as message/rfc822."""
    account = await context.account(request)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in ("message/rfc822", "application/octet-stream", "text/plain"):
        raise InvalidParameter("Request body must be message/rfc822")
    raw = await context.body(request)
    st = context.state(request)
    return _answer(await context.run(ingest.ingest_report, st.store, account, raw))


@lru_cache(maxsize=4)
def _trusted(path: str) -> list[x509.Certificate]:
    return sns.load_certificates(path)


async def report_sns(request: Request) -> Response:
    """POST ms/reports/sns: an SNS HTTP notification of an SES event, its signature checked
    against the certificates in `sns_certificates`. A subscription confirmation is verified
    and logged with its SubscribeURL for the operator to visit; nothing is fetched."""
    account = await context.account(request)
    st = context.state(request)
    if not st.settings.sns_certificates:
        raise InvalidParameter("SNS notifications are not enabled: set sns_certificates")
    raw = await context.body(request)
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidParameter(f"Request body is not valid JSON: {exc.msg}") from None
    if not isinstance(message, dict):
        raise InvalidParameter("Request body must be an SNS message (a JSON object)")
    try:
        sns.verify(message, _trusted(st.settings.sns_certificates))
    except sns.SignatureError as exc:
        raise InvalidParameter(f"Invalid SNS message: {exc}") from None
    if message.get("Type") != "Notification":
        log.warning(
            "SNS %s for %s: confirm it by visiting %s",
            message.get("Type"), message.get("TopicArn"), message.get("SubscribeURL"),
        )  # fmt: skip
        return Response(b"", status_code=200, headers={"X-Created": "0"})
    taken = await context.run(ingest.ingest_sns, st.store, account, message)
    return _answer(taken)
