"""The one typed settings object: defaults, then a TOML file, then MAILSTATS_* variables,
then command-line flags, each overriding the one before. Nothing reads the environment later.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailstats.errors import InvalidParameter
from mailstats.verdicts import Agents, Networks, Rules


class Secret:
    """A string that never shows itself in reprs, logs or tracebacks."""

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Settings:
    db: str = "./mailstats.db"
    # Where tracking hits are captured: empty is the database itself; nats://host:port,...
    # a JetStream stream on those NATS servers (PostgreSQL only).
    capture: str = ""
    capture_replicas: int = 3  # the stream's replicas, when it is made
    read_db: str = ""  # a hot standby for list, statistics, export and dashboard reads
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str = ""  # empty: http://{host}:{port}
    secret: Secret | None = None  # empty: generated once and kept in the database
    timezone: str = "Europe/Amsterdam"
    trusted_proxies: tuple[Network, ...] = ()
    workers: int = 1
    spool: str = ""  # empty: beside the database file, or ./mailstats.spool
    commit_deadline_ms: int = 250
    batch_max: int = 1000
    batch_wait_ms: float = 2.0
    max_body_bytes: int = 16 * 1024 * 1024
    rate_limit: float = 0.0  # API requests per second per token; 0 is off
    rate_burst: int = 60
    access_log: bool = True
    pool_size: int = 10
    block_bits: int = 13  # a new database counts events in blocks of 2**block_bits IDs
    sns_certificates: str = ""  # PEM file of the certificates SNS messages may be signed by
    # The SMTP relay (`mailstats relay`)
    smtp_listen: str = "127.0.0.1:2525"
    smtp_next_hop: str = "127.0.0.1:10026"  # the MTA that delivers, e.g. Postfix's reinjection
    smtp_tls_cert: str = ""  # PEM files; both set: STARTTLS is offered
    smtp_tls_key: str = ""
    smtp_max_bytes: int = 25 * 1024 * 1024
    smtp_max_recipients: int = 1000
    smtp_hostname: str = ""  # empty: the host of public_url
    smtp_track_text: bool = False  # track the links of the text part too
    dkim_key: str = ""  # a PEM private key file; with selector and domain, copies are signed
    dkim_selector: str = ""
    dkim_domain: str = ""
    log_format: str = "text"  # or "json": one JSON object per log line
    metrics_allow: tuple[Network, ...] = ()  # besides loopback, who may read /metrics
    metrics_token: Secret | None = None  # or a caller with this bearer token
    ready_timeout: float = 2.0  # seconds /readyz waits for the database
    ready_spool_bytes: int = 64 * 1024 * 1024  # /readyz fails with more than this spooled
    ready_backlog_seconds: float = 60.0  # ... or with a captured event older than this
    retention_interval: float = 3600.0  # seconds between retention passes in serve; 0: none
    # whether this process may take the database's indexer role (derive, retention); off for
    # tracking and read nodes, so that their event loop never waits on a derive step
    indexer: bool = True
    # Webhooks (mailstats.webhooks): the dispatcher runs in every serving process
    webhook_dispatch: bool = True
    webhook_allowed_networks: tuple[Network, ...] = ()  # reachable over http, and private ones
    webhook_timeout: float = 10.0  # seconds for a connect, and for each read of an answer
    webhook_batch: int = 500  # events per request at most
    webhook_backoff: float = 5.0  # seconds before the first retry; doubled each time ...
    webhook_backoff_max: float = 3600.0  # ... up to this (each wait +-20% at random)
    webhook_disable_after: int = 40  # failures in a row (about 31 hours of retries by default)
    webhook_workers: int = 4  # endpoints delivered to at once, per process
    geo: str = "network"  # or "country", or "off": what the indexer looks up per address
    geo_db: str = ""  # MaxMind-format files, comma-separated; empty: the bundled data
    # Machine clicks and opens (mailstats.verdicts; README "Machine clicks and opens")
    verdict_window: int = 60  # seconds until a verdict is settled (bots=exclude shows it)
    verdict_too_soon: int = 10  # seconds after the delivery or sending: too soon for a person
    verdict_burst_seconds: int = 1  # links followed this far apart make one burst ...
    verdict_burst_links: int = 3  # ... when there are this many distinct ones
    verdict_networks: str = ""  # a file replacing the shipped list of address ranges
    verdict_agents: str = ""  # a file replacing the shipped list of user agent patterns
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def spool_path(self) -> Path:
        if self.spool:
            return Path(self.spool)
        if "://" not in self.db and self.db != ":memory:":
            return Path(self.db + ".spool")
        return Path("mailstats.spool")

    @property
    def smtp_name(self) -> str:
        """The relay's host name in its greeting and EHLO."""
        return self.smtp_hostname or urlsplit(self.base_url).hostname or "localhost"

    def verdict_rules(self) -> Rules:
        """The rules the derive step gives verdicts by (the lists read from their files)."""
        return Rules(
            window=self.verdict_window,
            too_soon=self.verdict_too_soon,
            burst_seconds=self.verdict_burst_seconds,
            burst_links=self.verdict_burst_links,
            networks=Networks.load(self.verdict_networks),
            agents=Agents.load(self.verdict_agents),
        )

    @property
    def geo_paths(self) -> tuple[str, ...]:
        return tuple(p.strip() for p in self.geo_db.split(",") if p.strip())

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def replace(self, **changes: Any) -> Settings:
        return load(base=self, environ={}, **changes)


_PREFIX = "MAILSTATS_"


def _coerce(name: str, value: Any) -> Any:
    """Turn a value from a file, the environment or a flag into the field's type."""
    if value is None:
        return None
    kind = {f.name: f.type for f in fields(Settings)}[name]
    try:
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            return str(value).strip().lower() in {"1", "true", "yes", "on"}
        if name in ("secret", "metrics_token"):
            return value if isinstance(value, Secret) else Secret(str(value))
        if name in ("trusted_proxies", "metrics_allow", "webhook_allowed_networks"):
            items = value.split(",") if isinstance(value, str) else value
            return tuple(
                ipaddress.ip_network(str(i).strip(), strict=False) for i in items if str(i).strip()
            )
        return str(value)
    except ValueError as exc:
        raise InvalidParameter(f"Invalid setting {name}: {exc}") from None


def load(
    *,
    base: Settings | None = None,
    config_file: str | None = None,
    environ: Mapping[str, str] | None = None,
    **flags: Any,
) -> Settings:
    """Build settings; flags whose value is None are treated as not given.

    >>> load(environ={}, db="demo.db").db
    'demo.db'
    """
    names = {f.name for f in fields(Settings)} - {"extra"}
    values: dict[str, Any] = {}
    if config_file:
        with open(config_file, "rb") as fh:
            for key, value in tomllib.load(fh).items():
                if key not in names:
                    raise InvalidParameter(f"Unknown setting {key!r} in {config_file}")
                values[key] = _coerce(key, value)
    env = os.environ if environ is None else environ
    for name in names:
        raw = env.get(_PREFIX + name.upper())
        if raw is not None and raw != "":
            values[name] = _coerce(name, raw)
    for name, value in flags.items():
        if name not in names:
            raise TypeError(f"unknown setting {name}")
        if value is not None:
            values[name] = _coerce(name, value)
    settings = dataclasses.replace(base or Settings(), **values)
    _validate(settings)
    return settings


def _validate(settings: Settings) -> None:
    _validate_capture(settings)
    try:
        ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidParameter(f"Unknown time zone {settings.timezone!r}") from None
    if settings.public_url and not settings.public_url.startswith(("http://", "https://")):
        raise InvalidParameter("public_url must start with http:// or https://")
    if settings.workers < 1:
        raise InvalidParameter("workers must be at least 1")
    if settings.log_format not in ("text", "json"):
        raise InvalidParameter("log_format must be text or json")
    if settings.retention_interval < 0:
        raise InvalidParameter("retention_interval must be 0 (off) or more seconds")
    if settings.geo not in ("network", "country", "off"):
        raise InvalidParameter("geo must be network, country or off")
    if not 0 <= settings.block_bits <= 40:
        raise InvalidParameter("block_bits must be 0 to 40")
    if settings.sns_certificates:
        from mailstats.reports.sns import load_certificates  # only when SNS is in use

        try:
            load_certificates(settings.sns_certificates)
        except ValueError as exc:
            raise InvalidParameter(str(exc)) from None
    host_port(settings.smtp_listen, "smtp_listen")
    host_port(settings.smtp_next_hop, "smtp_next_hop")
    if settings.smtp_max_bytes < 1024:
        raise InvalidParameter("smtp_max_bytes must be at least 1024")
    if bool(settings.smtp_tls_cert) != bool(settings.smtp_tls_key):
        raise InvalidParameter("smtp_tls_cert and smtp_tls_key go together")
    if settings.webhook_timeout <= 0 or settings.webhook_backoff <= 0:
        raise InvalidParameter("webhook_timeout and webhook_backoff must be above 0")
    if settings.webhook_backoff_max < settings.webhook_backoff:
        raise InvalidParameter("webhook_backoff_max must be at least webhook_backoff")
    if not 1 <= settings.webhook_batch <= 10_000:
        raise InvalidParameter("webhook_batch must be 1 to 10000")
    if settings.webhook_disable_after < 1 or settings.webhook_workers < 1:
        raise InvalidParameter("webhook_disable_after and webhook_workers must be at least 1")
    if settings.verdict_window < 0 or settings.verdict_burst_links < 2:
        raise InvalidParameter("verdict_window must be 0 or more, verdict_burst_links 2 or more")
    for name in ("verdict_networks", "verdict_agents"):
        path = getattr(settings, name)
        if path and not os.path.isfile(path):
            raise InvalidParameter(f"{name}: no file {path!r}")
    dkim = (settings.dkim_key, settings.dkim_selector, settings.dkim_domain)
    if any(dkim) and not all(dkim):
        raise InvalidParameter("dkim_key, dkim_selector and dkim_domain go together")


def _postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def _validate_capture(settings: Settings) -> None:
    if settings.capture:
        urls = [u.strip() for u in settings.capture.split(",")]
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme != "nats" or not parts.hostname:
                raise InvalidParameter(
                    "capture must be empty (capture in the database) or nats://host:port"
                    f" URLs separated by commas, not {url!r}"
                )
        if not _postgres(settings.db):
            raise InvalidParameter(
                "capture on NATS needs PostgreSQL: db must be a postgresql:// URL, not a SQLite file"
            )
    if settings.capture_replicas < 1 or settings.capture_replicas > 5:
        raise InvalidParameter("capture_replicas must be 1 to 5")
    if settings.read_db and not _postgres(settings.read_db):
        raise InvalidParameter("read_db must be a postgresql:// URL (a hot standby)")


def host_port(value: str, name: str) -> tuple[str, int]:
    """("host", port) from "host:port" or "[v6]:port" (port 0: any free one).

    >>> host_port("[::1]:2525", "smtp_listen")
    ('::1', 2525)
    """
    host, sep, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise InvalidParameter(f"{name} must be host:port, not {value!r}")
    return host, int(port)
