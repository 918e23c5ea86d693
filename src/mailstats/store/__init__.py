"""Storage: SQLite by default, PostgreSQL for production, one interface for both."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailstats.errors import InvalidParameter
from mailstats.geo import Geo
from mailstats.store.base import (
    BLOCK_BITS,
    Account,
    Destination,
    Emailing,
    Event,
    Link,
    Page,
    Scope,
    TokenInfo,
)
from mailstats.store.core import Store
from mailstats.store.events import Filter
from mailstats.verdicts import Rules

if TYPE_CHECKING:
    from mailstats.settings import Settings

__all__ = [
    "Account",
    "Destination",
    "Emailing",
    "Event",
    "Filter",
    "Link",
    "Page",
    "Scope",
    "Store",
    "TokenInfo",
    "open_configured",
    "open_store",
]


def open_configured(settings: Settings) -> Store:
    """The store the settings name, as `serve` and every command open it: its capture,
    geo data and verdict rules."""
    return open_store(
        settings.db,
        pool_size=settings.pool_size,
        block_bits=settings.block_bits,
        capture=settings.capture,
        capture_replicas=settings.capture_replicas,
        capture_timeout=settings.commit_deadline_ms / 1000,
        geo=Geo(settings.geo, settings.geo_paths),
        rules=settings.verdict_rules(),
    )


def open_store(
    url: str,
    *,
    pool_size: int = 10,
    migrate: bool = True,
    block_bits: int = BLOCK_BITS,
    capture: str = "",
    capture_replicas: int = 3,
    capture_timeout: float = 0.25,
    geo: Geo | None = None,
    rules: Rules | None = None,
) -> Store:
    """Open the database named by `url`: a file path (SQLite) or a postgresql:// URL.

    `block_bits` sets the size of the counted blocks of event IDs for a new database only.
    `capture` names NATS servers (nats://host:port,...) whose JetStream stream takes the
    tracking hits instead of the database (PostgreSQL only); each group commit waits up to
    `capture_timeout` seconds for the stream's acknowledgement.
    `geo` is what deriving looks up per address (none: nothing).
    """
    if url.startswith(("postgresql://", "postgres://")):
        from mailstats.store.postgres import PostgresBackend

        log = None
        if capture:
            from mailstats.store.stream import StreamCapture

            log = StreamCapture(capture, replicas=capture_replicas, timeout=capture_timeout)
        store = Store(PostgresBackend(url, pool_size=pool_size, capture=log))
    else:
        if capture:
            raise InvalidParameter("capture on NATS needs PostgreSQL, not a SQLite file")
        from mailstats.store.sqlite import SQLiteBackend

        store = Store(SQLiteBackend(url))
    if geo is not None:
        store.backend.geo = geo
    if rules is not None:
        store.backend.rules = rules
    if migrate:
        store.backend.migrate(block_bits)
    return store
