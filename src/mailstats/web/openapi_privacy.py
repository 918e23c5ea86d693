"""The OpenAPI description of the privacy endpoints (ms/settings, ms/subject), kept beside
openapi.py, which adds these schemas and parameters to the one document."""

from __future__ import annotations

from typing import Any

from mailstats.kinds import KINDS
from mailstats.store.privacy import IP_MODES, MAX_DAYS, USERAGENT_MODES

Schema = dict[str, Any]
COUNT = {"type": "integer", "minimum": 0}
TIME = {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{8}$"}
DAYS = {"type": "integer", "minimum": 1, "maximum": MAX_DAYS}
MODES = {
    "ip": {"type": "string", "enum": list(IP_MODES),
           "description": "full; truncated (IPv4 /24, IPv6 /48); none"},
    "useragent": {"type": "string", "enum": list(USERAGENT_MODES),
                  "description": "full; parsed (the device, OS and client names only)"},
}  # fmt: skip


def _object(properties: Schema, required: bool = True) -> Schema:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required else [],
        "additionalProperties": False,
    }


_ANY_OBJECTS = {"type": "array", "items": {"type": "object"}}

SCHEMAS: dict[str, Schema] = {
    "Settings": _object(
        {**MODES, "retention": _object({k: {**DAYS, "type": ["integer", "null"]} for k in KINDS})}
    ),
    "SettingsChange": _object(
        {
            **MODES,
            "retention": _object(
                {k: {"anyOf": [DAYS, {"type": "null"}, {"const": "forever"}]} for k in KINDS},
                required=False,
            ),
        },
        required=False,
    ),
    "ErasureReceipt": _object(
        {
            "subject": {
                "type": "string",
                "pattern": "^[0-9a-f]{64}$",
                "description": "The audit log's keyed hash of the address.",
            },
            "destinations": COUNT,
            "events": COUNT,
            "suppressions": COUNT,
            "timestamp": TIME,
            "previous": {
                "type": "array",
                "items": TIME,
                "description": "When the same address was erased before.",
            },
        }
    ),
    "Subject": {
        "type": "object",
        "required": ["email", "destinations", "suppressions", "erasures"],
        "properties": {
            "email": {"type": "string"},
            "destinations": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": [
                        "ID",
                        "messageID",
                        "mailing",
                        "timestampsent",
                        "email",
                        "profile",
                        "subprofile",
                        "fields",
                        *KINDS,
                    ],
                    "description": "The destination and every event of each kind, as"
                    " its list shows them with extended=true.",
                },
            },
            "suppressions": _ANY_OBJECTS,
            "erasures": _ANY_OBJECTS,
        },
    },
}

EMAIL_QUERY: Schema = {
    "name": "email",
    "in": "query",
    "required": True,
    "description": "The address, in any case.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 320,
               "pattern": "^[^\\x00]*@[^\\x00]*$"},
}  # fmt: skip
