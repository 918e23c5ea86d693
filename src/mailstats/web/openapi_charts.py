"""The OpenAPI description of the chart API and the operator endpoints (beyond Copernica),
kept beside openapi.py, which adds these builders and schemas to the one document."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from mailstats.web import charts

Schema = dict[str, Any]
JSON = "application/json"
COUNT = {"type": "integer", "minimum": 0}
PAIR = {
    "type": "object",
    "properties": {"total": COUNT, "unique": COUNT},
    "required": ["total", "unique"],
}
DATE = {"type": "string", "pattern": charts.DATE_PATTERN}  # real days only: see charts._date


def _object(properties: Schema) -> Schema:
    return {"type": "object", "properties": properties, "required": list(properties)}


def _list(item: Schema) -> Schema:
    return {"type": "array", "items": _object(item)}


SCHEMAS: dict[str, Schema] = {
    "ChartTimeline": _object(
        {
            "emailing": {"type": "integer"},
            "timezone": {"type": "string"},
            "range": {"type": "string", "enum": ["all", *charts.PRESETS, "custom"]},
            "interval": {"type": "string", "enum": ["hour", "day"]},
            "begin": DATE,
            "end": DATE,
            "buckets": _list(
                {
                    "start": {"type": "string", "description": "Local ISO 8601, with offset."},
                    "time": {"type": "integer", "description": "UTC epoch seconds."},
                    **{name: PAIR for name in charts.TIMELINE_KINDS},
                }
            ),
            "totals": _object({name: PAIR for name in charts.TIMELINE_KINDS}),
        }
    ),
    "ChartLinks": _object(
        {
            "emailing": {"type": "integer"},
            "total": COUNT,
            "unique": COUNT,
            "data": _list(
                {
                    "ID": {"type": "string"},
                    "url": {"type": "string"},
                    "total": COUNT,
                    "unique": COUNT,
                    "share": {"type": "number", "minimum": 0, "maximum": 1},
                }
            ),
        }
    ),
    "ChartClients": _object(
        {
            "emailing": {"type": "integer"},
            "devices": _list({"device": {"type": "string"}, "total": COUNT, "unique": COUNT}),
            "clients": _list(
                {
                    "client": {"type": "string"},
                    "os": {"type": "string"},
                    "total": COUNT,
                    "unique": COUNT,
                }
            ),
        }
    ),
    "ChartBounces": _object(
        {
            "emailing": {"type": "integer"},
            "total": COUNT,
            "data": _list(
                {
                    "errortype": {"type": "string"},
                    "errorcode": {"type": "string"},
                    "total": COUNT,
                    "destinations": COUNT,
                }
            ),
        }
    ),
}


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "query", "description": description, "schema": schema}


PARAMETERS = [
    _query(
        "range",
        {"type": "string", "enum": ["all", *charts.PRESETS, "custom"]},
        "all (default): the days from the first event to the last; 1d, 3d, 7d, 30d: that "
        "many days from the first event's; custom: `begin` to `end`.",
    ),
    _query("interval", {"type": "string", "enum": ["hour", "day"]}, "Bucket size (timeline)."),
    _query("begin", DATE, "First local day (YYYY-MM-DD) of a custom range."),
    _query("end", DATE, "Last local day, inclusive; default `begin`."),
]
_SUMMARIES = {
    "timeline": ("ChartTimeline", "Opens and clicks per local hour or day (dashboard chart)"),
    "links": ("ChartLinks", "Clicks and unique clicks per link, with each link's share"),
    "clients": ("ChartClients", "Opens by device and by mail client"),
    "bounces": ("ChartBounces", "Bounces by error type and code"),
}


def charts_builder(
    operation: Callable[..., Schema], ok: Callable[[str, Schema, str], Schema]
) -> Callable[[str, str], Iterator[tuple[str, Schema]]]:
    """A builder that spells {chart} out into one documented path per chart."""

    def build(path: str, method: str) -> Iterator[tuple[str, Schema]]:
        for name, (schema, summary) in _SUMMARIES.items():
            here = path.replace("{chart}", name)
            response = ok(JSON, {"$ref": f"#/components/schemas/{schema}"}, "OK")
            yield here, operation(method, here, summary, response, PARAMETERS)

    return build


def probe(
    summary: str, codes: dict[str, str]
) -> Callable[[str, str], Iterator[tuple[str, Schema]]]:
    """/healthz and /readyz: plain text, no access token."""

    def build(path: str, method: str) -> Iterator[tuple[str, Schema]]:
        text = {"text/plain": {"schema": {"type": "string"}}}
        yield (
            path,
            {
                "operationId": f"{method}_{path.strip('/')}",
                "summary": summary,
                "security": [],
                "responses": {c: {"description": d, "content": text} for c, d in codes.items()},
            },
        )

    return build
