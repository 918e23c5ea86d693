"""`mailstats serve` and `mailstats migrate`."""

from __future__ import annotations

import logging
import os
import re
import signal
from typing import Any

import click
import uvicorn

from mailstats.cli.common import db_option, load_settings, open_db
from mailstats.logs import JSONFormatter
from mailstats.settings import Settings
from mailstats.web.protocol import Protocol

_SECRET_QUERY = re.compile(r"(access_token=)[^&\s]*", re.IGNORECASE)


class RedactTokens(logging.Filter):
    """Access tokens never reach a log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _SECRET_QUERY.sub(r"\1[redacted]", a) if isinstance(a, str) else a
                for a in record.args
            )
        record.msg = _SECRET_QUERY.sub(r"\1[redacted]", str(record.msg))
        return True


def _env_for_workers(settings: Settings) -> None:
    """Worker processes build their settings from these variables at their start-up."""
    for name, value in {
        "db": settings.db, "capture": settings.capture,
        "capture_replicas": settings.capture_replicas, "read_db": settings.read_db, "host": settings.host, "port": settings.port,
        "public_url": settings.public_url, "timezone": settings.timezone,
        "spool": str(settings.spool_path), "rate_limit": settings.rate_limit,
        "commit_deadline_ms": settings.commit_deadline_ms, "access_log": settings.access_log,
        "trusted_proxies": ",".join(str(n) for n in settings.trusted_proxies),
        "log_format": settings.log_format, "retention_interval": settings.retention_interval,
        "indexer": settings.indexer,
        "metrics_allow": ",".join(str(n) for n in settings.metrics_allow),
        "webhook_dispatch": settings.webhook_dispatch,
        "webhook_allowed_networks": ",".join(str(n) for n in settings.webhook_allowed_networks),
        "webhook_timeout": settings.webhook_timeout, "webhook_batch": settings.webhook_batch,
        "webhook_backoff": settings.webhook_backoff,
        "webhook_backoff_max": settings.webhook_backoff_max,
        "webhook_disable_after": settings.webhook_disable_after,
        "webhook_workers": settings.webhook_workers,
    }.items():  # fmt: skip
        os.environ[f"MAILSTATS_{name.upper()}"] = str(value)
    if settings.secret:
        os.environ["MAILSTATS_SECRET"] = settings.secret.reveal()
    if settings.metrics_token:
        os.environ["MAILSTATS_METRICS_TOKEN"] = settings.metrics_token.reveal()


@click.command()
@db_option
@click.option(
    "--capture", help="Capture tracking hits in a NATS stream: nats://host:port,... [database]"
)
@click.option("--read-db", help="postgresql:// URL of a hot standby for API and dashboard reads")
@click.option("--host", help="Address to listen on [default 127.0.0.1]")
@click.option("--port", type=int, help="Port to listen on [default 8000]")
@click.option("--public-url", help="Base URL of tracked links, e.g. https://t.example.com")
@click.option("--workers", type=int, help="Worker processes [default 1]")
@click.option("--timezone", help="Default time zone of new accounts [default Europe/Amsterdam]")
@click.option(
    "--trusted-proxy",
    "trusted_proxies",
    multiple=True,
    help="Proxy address or network whose X-Forwarded-For counts",
)
@click.option("--rate-limit", type=float, help="API requests per second per token (0: off)")
@click.option(
    "--indexer/--no-indexer",
    default=None,
    help="Whether this process may derive the capture log (off: another process does) [on]",
)
@click.option(
    "--log-format", type=click.Choice(["text", "json"]), help="Log lines as text or JSON [text]"
)
def serve(**flags: Any) -> None:
    """Run the HTTP server: API, tracking endpoints and everything else.

    Example: mailstats serve --db mailstats.db --port 8000 --public-url https://t.example.com
    """
    flags["trusted_proxies"] = flags["trusted_proxies"] or None
    settings = load_settings(**flags)
    # migrate once, before any worker starts (the capture stream is not needed for that)
    open_db(settings.replace(capture="")).close()
    if settings.log_format == "json":
        handler = logging.StreamHandler()
        handler.setFormatter(JSONFormatter())
        logging.basicConfig(level=logging.INFO, handlers=[handler])
    else:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    click.echo(
        f"mailstats on http://{settings.host}:{settings.port}  (database {settings.db})", err=True
    )
    # the app writes the access log itself (mailstats.access): uvicorn's line per request,
    # with its filter, cost more than a whole redirect
    common: dict[str, Any] = {"host": settings.host, "port": settings.port, "proxy_headers": False,
              "server_header": False, "access_log": False, "http": Protocol,
              "log_config": _log_config(settings.access_log, settings.log_format)}  # fmt: skip
    # uvicorn drains, then raises the captured signal again; a no-op handler lets a clean
    # SIGTERM shutdown end with exit status 0 instead of "killed by SIGTERM".
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    if settings.workers > 1:
        _env_for_workers(settings)
        uvicorn.run(
            "mailstats.web.app:from_environment", factory=True, workers=settings.workers, **common
        )
    else:
        from mailstats.web.app import create_app

        uvicorn.run(create_app(settings), **common)


def _log_config(access_log: bool, log_format: str = "text") -> dict[str, Any]:
    """uvicorn's logging configuration (applied in every worker process too), with
    mailstats' own loggers; `access_log` False keeps the access lines out."""
    config: dict[str, Any] = dict(uvicorn.config.LOGGING_CONFIG)
    if log_format == "json":
        json_formatter = {"()": "mailstats.logs.JSONFormatter"}
        config["formatters"] = {"default": json_formatter, "access": json_formatter}
    config["filters"] = {"redact": {"()": "mailstats.cli.serve.RedactTokens"}}
    config["formatters"] = {
        **config["formatters"],
        "mailstats": (
            {"()": "mailstats.logs.JSONFormatter"}
            if log_format == "json"
            else {"format": "%(levelname)s %(name)s: %(message)s"}
        ),
    }
    config["handlers"] = {
        **{name: {**h, "filters": ["redact"]} for name, h in config["handlers"].items()},
        "mailstats": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
            "formatter": "mailstats",
            "filters": ["redact"],
        },
    }
    config["loggers"] = {
        **config["loggers"],
        "mailstats": {"handlers": ["mailstats"], "level": "INFO", "propagate": False},
        "mailstats.access": {"level": "INFO" if access_log else "WARNING"},
    }
    return config


@click.command()
@db_option
def migrate(db: str | None, config_file: str | None) -> None:
    """Apply pending database migrations (serve does this too).

    Example: mailstats migrate --db postgresql://postgres@127.0.0.1/mailstats
    """
    store = open_db(load_settings(db=db, config_file=config_file))
    store.close()
    click.echo("Database is up to date.")
