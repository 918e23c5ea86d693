"""The OpenAPI description of the webhook endpoints (beyond Copernica), kept beside
openapi.py, which adds these builders and schemas to the one document."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from mailstats.kinds import KINDS
from mailstats.store.webhooks import BOTS
from mailstats.webhooks.network import MAX_URL, NAME, PATH, PORT, QUERY

Schema = dict[str, Any]
Builder = Callable[[str, str], Iterator[tuple[str, Schema]]]
JSON = "application/json"
ID = {"type": "string", "pattern": "^[1-9][0-9]*$"}
EVENT_ID = {"type": "string", "pattern": "^(?:0|[1-9][0-9]*)$"}
TIME = {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{8}$"}
COUNT = {"type": "integer", "minimum": 0}
# Exactly what is taken where no network is listed: https and a host name (checked again,
# after DNS, when delivered to).
URL = {
    "type": "string",
    "maxLength": MAX_URL,
    "pattern": f"^https://{NAME}{PORT}{PATH}{QUERY}$",
    "description": "https, unless webhook_allowed_networks lists its addresses; private, "
    "loopback and link-local addresses are refused unless listed (checked at every "
    "connection). An address in place of the name must be listed.",
}
KIND_NAMES = {"type": "string", "enum": list(KINDS)}


def _object(properties: Schema, required: list[str] | None = None) -> Schema:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


SCHEMAS: dict[str, Schema] = {
    "NewWebhook": {
        **_object(
            {
                "url": URL,
                "kinds": {"type": "array", "items": KIND_NAMES, "minItems": 1, "uniqueItems": True},
                "bots": {"type": "string", "enum": list(BOTS)},
            },
            required=["url"],
        ),
        "description": "kinds: all if left out; bots: include (the default) or exclude.",
    },
    "CreatedWebhook": _object(
        {"ID": ID, "secret": {"type": "string", "pattern": "^whsec_[A-Za-z0-9+/=]+$"}}
    ),
    "Webhook": _object(
        {
            "ID": ID,
            "url": {"type": "string"},
            "kinds": {"type": "array", "items": KIND_NAMES},
            "bots": {"type": "string", "enum": list(BOTS)},
            "state": {"type": "string", "enum": ["enabled", "disabled"]},
            "created": TIME,
            "disabled": {**TIME, "type": ["string", "null"]},
            "failures": COUNT,
            "pending": COUNT,
            "delivered": EVENT_ID,
            "retry": {**TIME, "type": ["string", "null"]},
        }
    ),
    "WebhookDelivery": _object(
        {
            "ID": ID,
            "message": {"type": "string"},
            "attempt": COUNT,
            "timestamp": TIME,
            "events": COUNT,
            "first": {**ID, "type": ["string", "null"]},
            "last": {**ID, "type": ["string", "null"]},
            "status": {"type": ["integer", "null"]},
            "latency": {"type": "number", "minimum": 0},
            "error": {"type": ["string", "null"]},
        }
    ),
    "WebhookState": _object({"state": {"type": "string", "enum": ["enabled", "disabled"]}}),
    "WebhookReplay": _object({"since_id": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}}),
    "WebhookReplayed": _object({"queued": COUNT}),
}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def builders(
    one: Callable[..., Builder],
    ok: Callable[[str, Schema, str], dict[str, Schema]],
    page: Callable[[Schema], Schema],
    paging: list[Schema],
) -> dict[str, Builder]:
    """The builders of openapi.BUILDERS for web.api.webhooks, by handler name."""
    created = {
        "201": {
            "description": "Added. The body holds the signing secret, shown this once.",
            "headers": {"X-Created": {"required": True, "schema": ID}},
            "content": {JSON: {"schema": _ref("CreatedWebhook")}},
        }
    }
    return {
        "create": one(
            "Add a webhook endpoint", created, body={JSON: {"schema": _ref("NewWebhook")}}
        ),
        "list_all": one("List webhook endpoints", ok(JSON, page(_ref("Webhook")), "OK"), paging),
        "get_one": one("One webhook endpoint and its state", ok(JSON, _ref("Webhook"), "OK")),
        "update": one(
            "Enable a webhook endpoint again (or disable it)",
            ok(JSON, _ref("Webhook"), "OK"),
            body={JSON: {"schema": _ref("WebhookState")}},
        ),
        "delete": one(
            "Remove a webhook endpoint and what waits for it",
            {"204": {"description": "Removed."}},
        ),
        "deliveries": one(
            "Recent delivery attempts, newest first",
            ok(JSON, page(_ref("WebhookDelivery")), "OK"),
            paging,
        ),
        "replay": one(
            "Push the events above an ID again",
            ok(JSON, _ref("WebhookReplayed"), "OK"),
            body={JSON: {"schema": _ref("WebhookReplay")}},
        ),
    }
