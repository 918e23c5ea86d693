"""The OpenAPI 3.1 document of the whole HTTP surface, served at ``/openapi.json``.

Built from the route table and the event kinds, so it cannot name a route the app lacks. It
says what the code does, not what REST APIs usually do: every API failure is a 400 with
Copernica's error body, and IDs are strings of digits. The test suite fuzzes the app with it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mailstats import __version__
from mailstats.addresses import EMAIL_PATTERN
from mailstats.ingest import REPORTED
from mailstats.kinds import KINDS, Column, Kind, filterable
from mailstats.reports import REASONS
from mailstats.verdicts import REASONS as VERDICT_REASONS
from mailstats.verdicts import VERDICTS
from mailstats.web import openapi_charts, openapi_privacy, openapi_webhooks, ops, params
from mailstats.web.api import (
    charts,
    destinations,
    emailings,
    events,
    ingest,
    settings,
    statistics,
    subjects,
    suppressions,
    webhooks,
)
from mailstats.web.errors import JSON

__all__ = ["build", "document"]

Schema = dict[str, Any]
# A route's path and method -> the (path, operation) pairs it serves: {kind} and {part}
# expand to one documented path each, so every kind's items get their own schema.
Builder = Callable[[str, str], Iterator[tuple[str, Schema]]]

DEVICES = ("desktop", "tablet", "mobile", "unknown")
PARTS = {"html": "text/html", "text": "text/plain", "mime": "message/rfc822"}
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
UINT64_MAX = 2**64 - 1  # orjson reads larger JSON integers as floats, which the API refuses

# --- what the parsers accept, as regular expressions ----------------------------------------

_YEAR = "(?:19[7-9][0-9]|[2-9][0-9]{3})"  # timefmt.parse_time takes 1970 to 9999
_MONTH_DAY = (
    "(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"
    "|(?:0[13-9]|1[0-2])-(?:29|30)"
    "|(?:0[13578]|1[02])-31)"
)
_LEAP_DAY = (  # leap days from 2000 on; the server also takes 1972 to 1996
    "(?:[2-9][0-9](?:0[48]|[2468][048]|[13579][26])|(?:[2468][048]|[3579][26])00)-02-29"
)
_CLOCK = "(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
# timefmt.parse_time: a real calendar date, then optionally a time after a space or a T.
_TIME = f"(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_DAY})(?:[ T]{_CLOCK})?"
_INTEGER = "[+-]?0*[0-9]{1,18}"
_COMPARE = "(?:==|!=|<>|<=|>=|=|<|>)"
_ANY_OPERATOR = "(?:==|!=|<>|<=|>=|=~|!~|=|<|>)"


def fields_pattern(kind: Kind) -> str:
    """What ``params.parse_condition`` accepts on this kind: ``NAME OP VALUE``."""
    names: dict[str, list[str]] = {"id": [], "time": [], "text": []}
    for name, type_ in filterable(kind).items():
        names[type_].append(re.escape(name))
    choices = (
        f"(?:{'|'.join(names['id'])})\\s*{_COMPARE}\\s*{_INTEGER}",
        f"(?:{'|'.join(names['time'])})\\s*{_COMPARE}\\s*{_TIME}",
        f"(?:{'|'.join(names['text'])})\\s*{_ANY_OPERATOR}[^\\x00]*",
    )
    return f"^\\s*(?:{'|'.join(choices)})\\s*$"


# --- schemas --------------------------------------------------------------------------------

TEXT: Schema = {"type": "string"}
NO_NUL = "^[^\\x00]*$"  # text columns cannot hold NUL
# what goes into a mail header: no line breaks or other control characters
HEADER_TEXT: Schema = {
    "type": "string",
    "maxLength": 1000,
    "pattern": "^[^\\x00-\\x08\\x0a-\\x1f\\x7f]*$",
}
EMAIL: Schema = {"type": "string", "maxLength": 320, "pattern": EMAIL_PATTERN}
NULLABLE_TEXT: Schema = {"type": ["string", "null"]}
TIME_IN: Schema = {"type": "string", "pattern": f"^\\s*{_TIME}\\s*$"}
TIME_OUT: Schema = {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{8}$"}
ID_OUT: Schema = {"type": "string", "pattern": "^[1-9][0-9]*$"}
COUNT_OUT: Schema = {"type": "string", "pattern": "^(?:0|[1-9][0-9]*)$"}
TALLY: Schema = {"type": "integer", "minimum": 0}
INT64: Schema = {"type": "integer", "format": "int64", "minimum": INT64_MIN, "maximum": INT64_MAX}
ATTEMPTS: Schema = {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
# Copernica's booleans: any value but NUL (refused in every query value) is accepted, and
# true, yes and numbers of magnitude 1 or more mean true.
FLAG: Schema = {"type": "string", "pattern": "^[^\\x00]*$", "examples": ["true", "yes", "1", "0"]}
# A string or a number: the API stores str(value).
SCALAR: Schema = {
    "type": ["string", "integer", "null"],
    "minimum": INT64_MIN,
    "maximum": UINT64_MAX,
    "pattern": NO_NUL,
}
EXTERNAL_ID: Schema = {**SCALAR, "maxLength": 64}


def ref(section: str, name: str) -> Schema:
    return {"$ref": f"#/components/{section}/{name}"}


def _object(properties: dict[str, Schema], required: Sequence[str] | None = None) -> Schema:
    """An answer object: these keys in this order, and nothing else."""
    return {
        "type": "object",
        "required": list(properties if required is None else required),
        "additionalProperties": False,
        "properties": properties,
    }


def _column(kind: Kind, column: Column) -> Schema:
    if column.name == "device":
        return {"type": "string", "enum": list(DEVICES)}
    if column.type == "int":
        return ATTEMPTS
    if column.type == "json":
        return {"type": ["object", "null"]}
    # A reported event may leave any column out; tracked ones always have ip and user agent.
    out = dict(NULLABLE_TEXT if kind.name in REPORTED else TEXT)
    if column.max_length:
        out["maxLength"] = column.max_length  # longer values are cut on write
    return out


# Fields that several answers share, by name; any other is a plain string.
FIELDS: dict[str, Schema] = {
    "ID": ID_OUT,
    "mailing": ID_OUT,
    "destination": ID_OUT,
    "timestamp": TIME_OUT,
    "timestampsent": TIME_OUT,
    "profile": NULLABLE_TEXT,
    "subprofile": NULLABLE_TEXT,
}


# The fields `extended=true` adds to clicks and opens.
EXTENDED: dict[str, Schema] = {
    "verdict": {"type": "string", "enum": list(VERDICTS)},
    "reasons": {"type": "array", "items": {"type": "string", "enum": list(VERDICT_REASONS)}},
}


def _named(*names: str) -> Schema:
    return _object({name: FIELDS.get(name, TEXT) for name in names})


# Where an event came from (kinds.GEO_FIELDS), with `extended=true`.
GEO: dict[str, Schema] = {
    "country": {"type": "string", "pattern": "^([A-Z]{2})?$", "description": "ISO 3166-1 "
                "alpha-2 of the address, empty when unknown, private or not looked up."},
    "asn": {"type": ["integer", "null"], "minimum": 0, "description": "The network's "
            "autonomous system number; null where the data has none."},
    "asnorg": {"type": ["string", "null"], "description": "The network's organisation."},
}  # fmt: skip


def item(kind: Kind) -> Schema:
    """One item of a statistics list, its fields in API order; those of `extended=true`
    (the extended columns, kinds.EXTRAS, the geo fields) allowed, not required."""
    shown = kind.extended()
    columns = {c.name: c for c in shown.columns}
    properties = {
        f: _column(shown, columns[f])
        if f in columns
        else GEO.get(f) or EXTENDED.get(f, FIELDS.get(f, TEXT))
        for f in shown.fields
    }
    return _object(properties, required=list(kind.fields))


def reported(kind: Kind) -> Schema:
    """The JSON object the pipeline posts for one event of a reported kind."""
    properties: Schema = {
        "timestamp": {**TIME_IN, "type": ["string", "null"], "description": "Default: now."},
        "key": {
            "type": ["string", "null"],
            "minLength": 1,
            "maxLength": 200,
            "description": "Idempotency key: the same key twice stores one event.",
        },
    }
    for column in kind.columns:
        if column.type == "int":
            properties[column.name] = {**ATTEMPTS, "type": ["integer", "null"]}
        elif column.type == "json":
            properties[column.name] = {"type": ["object", "null"]}
        elif column.name == "reason":
            properties[column.name] = {
                "type": ["string", "null"],
                "enum": [*REASONS, None],
                "description": "Default: read from status and description.",
            }
        else:
            properties[column.name] = SCALAR
    return {"type": "object", "properties": properties}


def _page(items: Schema) -> Schema:
    """Copernica's list envelope; `total` is left out when `total` is false."""
    count = {"type": "integer", "minimum": 0, "maximum": 1000}
    return _object(
        {
            "start": INT64,
            "limit": {**INT64, "maximum": 1000},
            "count": count,
            "data": {"type": "array", "items": items, "maxItems": 1000},
            "total": TALLY,
        },
        required=["start", "limit", "count", "data"],
    )


EMAILING: Schema = {
    "id": ID_OUT,
    "timestamp": TIME_OUT,
    "template": {"type": "null"},
    "subject": TEXT,
    "from_address": _object({"name": TEXT, "email": TEXT}),
    "destinations": COUNT_OUT,
    "type": {"type": "string", "enum": list(emailings.TYPES)},
}
# With `extended=true`: implied opens and the errors' reasons.
_STATISTICS_EXTRA: dict[str, Schema] = {
    "impressions": {"implied": TALLY},
    "errors": {"reasons": {"type": "object", "additionalProperties": TALLY}},
}
STATISTICS = ("abuses", "clicks", "deliveries", "errors", "impressions", "retries", "unsubscribes")
SCHEMAS: dict[str, Schema] = {
    "Error": _object({"error": _object({"message": TEXT})}),
    "Emailing": _object(EMAILING),
    "EmailingWithTags": _object({**EMAILING, "tags": {"type": "array", "items": TEXT}}),
    "DestinationItem": _named("ID", "mailing", "timestampsent", "profile", "subprofile"),
    "Destination": _named("ID", "messageID", "mailing", "timestampsent", "profile", "subprofile"),
    "Headers": _named("Message-ID", "Return-Path", "List-Unsubscribe", "List-Unsubscribe-Post"),
    "Suppression": _object(
        {
            "email": TEXT,
            "reason": {"type": "string", "enum": ["bounce", "complaint", "manual", "unsubscribe"]},
            "timestamp": TIME_OUT,
            "destination": {"type": ["string", "null"], "pattern": "^[1-9][0-9]*$"},
        }
    ),
    "Statistics": _object(
        {"destinations": COUNT_OUT}
        | {
            n: _object(
                {"total": TALLY}
                | ({} if n == "deliveries" else {"unique": TALLY})
                | _STATISTICS_EXTRA.get(n, {}),
                required=["total"] if n == "deliveries" else ["total", "unique"],
            )
            for n in STATISTICS
        }
    ),
    "StatisticsByCountry": _object(
        {
            "groups": {
                "type": "array",
                "items": _object(
                    {"country": GEO["country"]}
                    | {
                        n: _object(
                            {"total": TALLY}
                            | ({} if n == "deliveries" else {"unique": TALLY})
                            | ({"reasons": {"type": "object"}} if n == "errors" else {}),
                            required=["total"] if n == "deliveries" else ["total", "unique"],
                        )
                        for n in STATISTICS
                    }
                ),
            }
        }
    ),
    "NewEmailing": {
        "type": "object",
        "required": ["subject", "from_address", "html"],
        "properties": {
            "subject": HEADER_TEXT | {"minLength": 1},
            "from_address": {
                "type": "object",
                "required": ["email"],
                "properties": {
                    "name": HEADER_TEXT | {"type": ["string", "null"]},
                    "email": EMAIL,
                },
            },
            "html": {"type": "string", "minLength": 1, "maxLength": 5_000_000, "pattern": NO_NUL},
            "text": {"type": ["string", "null"], "maxLength": 5_000_000, "pattern": NO_NUL},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 200}},
            "type": {"type": "string", "enum": list(emailings.TYPES)},
        },
    },
    "NewDestination": {
        "type": "object",
        "required": ["email"],
        "properties": {
            "email": EMAIL,
            "profile": EXTERNAL_ID,
            "subprofile": EXTERNAL_ID,
            "fields": {
                "type": "object",
                "propertyNames": {"pattern": NO_NUL},
                "additionalProperties": {"type": ["string", "number"], "pattern": NO_NUL},
                "description": "Values for the template's {$profile.NAME} tags.",
            },
        },
    },
    **{f"Reported{name.title()}": reported(KINDS[name]) for name in REPORTED},
    **{f"{name.title()}Item": item(kind) for name, kind in KINDS.items()},
    **openapi_charts.SCHEMAS,
    **openapi_privacy.SCHEMAS,
    **openapi_webhooks.SCHEMAS,
}

# --- parameters and responses ---------------------------------------------------------------


def _query(name: str, schema: Schema, description: str, **extra: Any) -> Schema:
    return {"name": name, "in": "query", "description": description, "schema": schema, **extra}


PARAMETERS: dict[str, Schema] = {
    "start": _query("start", INT64, "Offset into the ordered result; default 0."),
    "limit": _query("limit", INT64, "Page size; default 100, above 1000 clamped to 1000."),
    "total": _query("total", FLAG, "Count the selection into `total`; default true."),
    "begintime": _query("begintime", TIME_IN, "Inclusive lower bound, in the account's zone."),
    "endtime": _query("endtime", TIME_IN, "Inclusive upper bound, in the account's zone."),
    "unique": _query("unique", FLAG, "The earliest event per destination (clicks: and link) only."),
    "bots": _query(
        "bots",
        {"type": "string", "enum": ["include", "exclude", "only"]},
        "Machine clicks and opens: `include` (default, every event), `exclude` (settled human"
        " events only; `unique`: the earliest human one) or `only` (settled machine events).",
    ),
    "extended": _query(
        "extended",
        {"type": "string", "enum": list(params.EXTENDED_VALUES)},
        "Add mailstats' own fields: device, os, client, verdict, reasons, country, asn, asnorg"
        " (clicks and opens), reason (errors); in statistics, implied opens and error reasons.",
    ),
    "format": _query(
        "format",
        {"type": "string", "enum": ["ndjson", "csv"]},
        "The whole selection, unpaged, streamed as NDJSON or CSV instead of a JSON page.",
    ),
    "groupby": _query(
        "groupby",
        {"type": "string", "enum": ["country"]},
        "One statistics object per country of origin instead, adding up to the whole.",
    ),
    "type": _query("type", {"type": "string", "enum": list(emailings.TYPES)}, "Emailing type."),
    "fromdate": _query("fromdate", TIME_IN, "Emailings registered at or after this time."),
    "todate": _query("todate", TIME_IN, "Emailings registered at or before this time."),
}
PAGING = [ref("parameters", n) for n in ("start", "limit", "total")]
BOUNDS = [ref("parameters", n) for n in ("begintime", "endtime")]


def _path_id(path: str) -> Schema:
    word = path.split("/")[3]
    return {
        "name": "id",
        "in": "path",
        "required": True,
        "description": f"The {word}'s ID, a positive integer of at most 18 digits. Any other "
        "value, or another account's ID, answers 400 `No entity with supplied ID`.",
        "schema": {"type": "string", "pattern": "^0{0,17}[1-9][0-9]{0,17}$", "maxLength": 18},
    }


def _fields(kind: Kind) -> Schema:
    return _query(
        "fields[]",
        {"type": "array", "items": {"type": "string", "pattern": fields_pattern(kind)}},
        "Filters, ANDed: `NAME OP VALUE`, OP one of == != <> < > <= >= =~ !~ (the last two "
        f"LIKE, text fields only); NAME one of {', '.join(filterable(kind))}. "
        "PHP's `fields[0]=` works too.",
        style="form",
        explode=True,
    )


def _content(media_type: str, schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {media_type: {"schema": schema}}}


RESPONSES: dict[str, Schema] = {
    "Error": _content(
        JSON,
        ref("schemas", "Error"),
        "Every API failure, Content-Type exactly application/json. Messages clients match "
        "on: `Invalid access token`, `Invalid method`, `No entity with supplied ID`; "
        "a bad parameter is named in the message.",
    ),
    "RateLimited": {
        **_content(JSON, ref("schemas", "Error"), "Too many requests for this token."),
        "headers": {
            "Retry-After": {
                "required": True,
                "description": "Seconds to wait.",
                "schema": {"type": "string", "pattern": "^[1-9][0-9]*$"},
            }
        },
    },
    "Created": {
        "description": "Stored; the body is empty.",
        "headers": {
            "X-Created": {
                "required": True,
                "description": "The new IDs, comma separated; for ingestion, how many events.",
                "schema": {"type": "string", "pattern": "^[0-9]+(?:, [0-9]+)*$"},
            }
        },
    },
}
FAILURES = {"400": ref("responses", "Error"), "429": ref("responses", "RateLimited")}
CREATED = {"201": ref("responses", "Created")}


def _ok(media_type: str, schema: Schema, description: str = "OK") -> dict[str, Schema]:
    return {"200": _content(media_type, schema, description)}


# --- one builder per endpoint of the route table --------------------------------------------


def _operation_id(method: str, path: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", f"{method}{path}").strip("_")


def _operation(
    method: str,
    path: str,
    summary: str,
    responses: dict[str, Schema],
    parameters: Sequence[Schema] = (),
    body: dict[str, Schema] | None = None,
) -> Schema:
    op: Schema = {
        "operationId": _operation_id(method, path),
        "summary": summary,
        "parameters": [*([_path_id(path)] if "{id}" in path else []), *parameters],
        "responses": {**responses, **FAILURES},
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": body}
    return op


def _one(
    summary: str,
    responses: dict[str, Schema],
    parameters: Sequence[Schema] = (),
    body: dict[str, Schema] | None = None,
) -> Builder:
    def build(path: str, method: str) -> Iterator[tuple[str, Schema]]:
        yield path, _operation(method, path, summary, responses, parameters, body)

    return build


def _list_events(path: str, method: str) -> Iterator[tuple[str, Schema]]:
    for name, kind in KINDS.items():
        here = path.replace("{kind}", name)
        ok = _ok(JSON, _page(ref("schemas", f"{name.title()}Item")), "A page of events.")
        ok["200"]["content"]["application/x-ndjson"] = {"schema": TEXT}  # format=ndjson
        ok["200"]["content"]["text/csv"] = {"schema": TEXT}  # format=csv: header row, items
        params = [*PAGING, *BOUNDS, ref("parameters", "unique"), _fields(kind)]
        params += [ref("parameters", "format"), ref("parameters", "bots")]
        params.append(ref("parameters", "extended"))
        yield here, _operation(method, here, f"List {name}, oldest first", ok, params)


def _report_event(path: str, method: str) -> Iterator[tuple[str, Schema]]:
    for name in REPORTED:
        here = path.replace("{kind}", name)
        body = {JSON: {"schema": ref("schemas", f"Reported{name.title()}")}}
        yield here, _operation(method, here, f"Report one of {name}", CREATED, body=body)


def _body(path: str, method: str) -> Iterator[tuple[str, Schema]]:
    for part, media_type in PARTS.items():
        here = path.replace("{part}", part)
        ok = _ok(media_type, TEXT, "The message as this recipient gets it.")
        yield here, _operation(method, here, f"The message as sent: {part}", ok)


def _document(path: str, method: str) -> Iterator[tuple[str, Schema]]:
    yield (
        path,
        {
            "operationId": _operation_id(method, path),
            "summary": "This document",
            "security": [],
            "responses": _ok(JSON, {"type": "object"}),
        },
    )


_NEW_DESTINATIONS = {
    "anyOf": [
        ref("schemas", "NewDestination"),
        {
            "type": "array",
            "items": ref("schemas", "NewDestination"),
            "minItems": 1,
            "maxItems": destinations.MAX_BATCH,
        },
    ]
}
_NDJSON = (
    'One {"kind", "destination", ...} object per line; kind one of '
    f"{', '.join(REPORTED)}, the rest as when reporting one event. All lines or none."
)
_REPORT_TYPES = ("message/rfc822", "application/octet-stream", "text/plain")
_SNS = (
    "The JSON message SNS posts (Type Notification, SubscriptionConfirmation or "
    "UnsubscribeConfirmation); refused unless signed by a certificate in sns_certificates."
)
NOT_A_BOUNCE = {
    "200": {
        "description": "Read, and nothing to record: an auto-reply, a delivery notice, or an "
        "SNS subscription message. The body is empty.",
        "headers": {
            "X-Created": {"required": True, "schema": {"type": "string", "enum": ["0"]}},
            "X-Not-A-Bounce": {
                "required": False,
                "description": "Why the message is not a bounce.",
                "schema": {"type": "string"},
            },
        },
    }
}


@functools.cache
def _served() -> bytes:
    from mailstats.web.app import ROUTES  # late: the route table names this module

    return orjson.dumps(build(ROUTES))


async def document(request: Request) -> Response:
    """GET /openapi.json: this document, built on the first call."""
    return Response(_served(), media_type=JSON)


_EMAIL_PATH: Schema = {
    "name": "email",
    "in": "path",
    "required": True,
    "description": "A suppressed address (ASCII letters in any case).",
    "schema": {"type": "string", "maxLength": 320},
}


BUILDERS: dict[Callable[..., Any], Builder] = {
    emailings.list_all: _one(
        "List emailings",
        _ok(JSON, _page(ref("schemas", "Emailing"))),
        [*PAGING, *(ref("parameters", n) for n in ("type", "fromdate", "todate"))],
    ),
    emailings.create: _one(
        "Register an emailing", CREATED, body={JSON: {"schema": ref("schemas", "NewEmailing")}}
    ),
    emailings.get_one: _one("One emailing", _ok(JSON, ref("schemas", "EmailingWithTags"))),
    ingest.bulk: _one(
        "Report events in bulk",
        CREATED,
        body={"application/x-ndjson": {"schema": {"type": "string", "description": _NDJSON}}},
    ),
    ingest.report_mail: _one(
        "Ingest one bounce, complaint or SES notification email",
        {**CREATED, **NOT_A_BOUNCE},
        body={t: {"schema": {"type": "string", "format": "binary"}} for t in _REPORT_TYPES},
    ),
    ingest.report_sns: _one(
        "Ingest one Amazon SNS notification of an SES event, its signature checked",
        {**CREATED, **NOT_A_BOUNCE},
        body={"text/plain": {"schema": {"type": "string", "description": _SNS}}},
    ),
    destinations.list_all: _one(
        "List an emailing's destinations",
        _ok(JSON, _page(ref("schemas", "DestinationItem"))),
        PAGING,
    ),
    destinations.create: _one(
        "Register destinations, one or a list", CREATED, body={JSON: {"schema": _NEW_DESTINATIONS}}
    ),
    destinations.get_one: _one("One destination", _ok(JSON, ref("schemas", "Destination"))),
    destinations.body: _body,
    destinations.headers: _one("Headers the sender adds", _ok(JSON, ref("schemas", "Headers"))),
    statistics.get: _one(
        "Totals and uniques per kind (with groupby=country: per country)",
        _ok(JSON, {"oneOf": [ref("schemas", "Statistics"), ref("schemas", "StatisticsByCountry")]}),
        [
            *BOUNDS,
            ref("parameters", "bots"),
            ref("parameters", "extended"),
            ref("parameters", "groupby"),
        ],
    ),
    suppressions.list_all: _one(
        "The suppression list: addresses the relay refuses",
        _ok(JSON, _page(ref("schemas", "Suppression"))),
        PAGING,
    ),
    suppressions.delete: _one(
        "Take an address off the suppression list",
        {"204": {"description": "Off the list: later messages reach it."}},
        [_EMAIL_PATH],
    ),
    settings.get: _one("The account's privacy settings", _ok(JSON, ref("schemas", "Settings"))),
    settings.put: _one(
        "Change privacy settings (for events derived from now on)",
        _ok(JSON, ref("schemas", "Settings")),
        body={JSON: {"schema": ref("schemas", "SettingsChange")}},
    ),
    subjects.get: _one(
        "Every stored item about an address (subject access)",
        _ok(JSON, ref("schemas", "Subject")),
        [openapi_privacy.EMAIL_QUERY],
    ),
    subjects.delete: _one(
        "Erase an address: personal fields cleared, every event and count kept",
        _ok(JSON, ref("schemas", "ErasureReceipt")),
        [openapi_privacy.EMAIL_QUERY],
    ),
    **{
        getattr(webhooks, name): builder
        for name, builder in openapi_webhooks.builders(_one, _ok, _page, PAGING).items()
    },
    events.list_events: _list_events,
    events.report_event: _report_event,
    document: _document,
    charts.get: openapi_charts.charts_builder(_operation, _ok),
    ops.healthz: openapi_charts.probe("The process answers", {"200": "ok"}),
    ops.readyz: openapi_charts.probe(
        "Database reachable, spool under its threshold",
        {"200": "ready", "503": "not ready, and the reasons"},
    ),
}

# --- tracking: plain ASGI handlers in front of the route table ------------------------------

_TOKEN = {
    "name": "token",
    "in": "path",
    "required": True,
    "description": "A signed token from a message; anything else answers 404.",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{19,40}$"},
}
_NOT_FOUND = _content("text/plain", TEXT, "Not a valid token, or its destination or link is gone.")
_CLICK = {
    "302": {
        "description": "Stored (not on HEAD); on to the link, personalised.",
        "headers": {"Location": {"required": True, "schema": TEXT}},
    }
}
_OPEN = _ok("image/gif", {"type": "string", "format": "binary"}, "Stored (not on HEAD); a GIF.")
TRACKING: dict[str, dict[str, dict[str, Schema]]] = {
    "/c/{token}": {"get": _CLICK, "head": _CLICK},
    "/o/{token}": {"get": _OPEN, "head": _OPEN},
    "/u/{token}": {
        "get": _ok("text/html", TEXT, "A confirmation form; nothing is stored."),
        "head": _ok("text/html", TEXT, "As GET, without the body."),
        "post": _ok("text/html", TEXT, "Unsubscribed: stored, and a confirmation."),
    },
}
_TRACKING_SUMMARY = {"c": "Follow a link", "o": "The open pixel", "u": "Unsubscribe"}


def _tracking(path: str, method: str, responses: dict[str, Schema]) -> Schema:
    return {
        "operationId": _operation_id(method, path),
        "summary": _TRACKING_SUMMARY[path[1]],
        "tags": ["tracking"],
        "security": [],
        "parameters": [_TOKEN],
        "responses": {**responses, "404": _NOT_FOUND},
    }


def build(routes: Sequence[BaseRoute]) -> Schema:
    """The document of this route table plus the tracking endpoints.

    >>> from mailstats.web.app import ROUTES
    >>> sorted(build(ROUTES)["paths"]["/v2/ms/destination/{id}/errors"])
    ['get', 'post']
    """
    paths: dict[str, dict[str, Schema]] = {}
    for route in routes:
        if not isinstance(route, Route):
            raise TypeError(f"no builder for {route!r}")
        # Starlette answers HEAD on every GET route by itself; only declared methods count.
        for method in sorted((route.methods or set()) - {"HEAD"}):
            for path, operation in BUILDERS[route.endpoint](route.path, method.lower()):
                # Tagged by resource: the handler's module (emailings, events, ...).
                operation["tags"] = [route.endpoint.__module__.rpartition(".")[2]]
                paths.setdefault(path, {})[method.lower()] = operation
    for path, methods in TRACKING.items():
        paths[path] = {m: _tracking(path, m, responses) for m, responses in methods.items()}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mailstats",
            "version": __version__,
            "description": "Email tracking and statistics, wire-compatible with Copernica's "
            "REST v2 Marketing Suite API (https://api.copernica.com/v2/ms/...).",
        },
        "security": [{"accessToken": []}, {"bearerToken": []}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "parameters": PARAMETERS,
            "responses": RESPONSES,
            "securitySchemes": {
                "accessToken": {"type": "apiKey", "in": "query", "name": "access_token"},
                "bearerToken": {"type": "http", "scheme": "bearer"},
            },
        },
    }
