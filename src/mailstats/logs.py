"""Structured logs: `--log-format json` writes one JSON object per line.

Access lines keep their parts apart (client, method, path, status), with the path's access
token already redacted by the filter that runs before any formatter.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import orjson


class JSONFormatter(logging.Formatter):
    """A log record as one line of JSON."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        args = record.args
        if record.name.endswith(".access") and isinstance(args, tuple) and len(args) == 5:
            client, method, path, version, status = args
            out.update(
                {
                    "message": f"{method} {path} {status}",
                    "client": client,
                    "method": method,
                    "path": path,
                    "http_version": version,
                    "status": status,
                }
            )
        else:
            out["message"] = record.getMessage()
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()
