"""Storage: SQLite by default, PostgreSQL for production, one interface for both."""

from __future__ import annotations

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
    "open_store",
]


def open_store(
    url: str,
    *,
    pool_size: int = 10,
    migrate: bool = True,
    block_bits: int = BLOCK_BITS,
    rules: Rules | None = None,
) -> Store:
    """Open the database named by `url`: a file path (SQLite) or a postgresql:// URL.

    `block_bits` sets the size of the counted blocks of event IDs for a new database only.
    """
    if url.startswith(("postgresql://", "postgres://")):
        from mailstats.store.postgres import PostgresBackend

        store = Store(PostgresBackend(url, pool_size=pool_size))
    else:
        from mailstats.store.sqlite import SQLiteBackend

        store = Store(SQLiteBackend(url))
    if rules is not None:
        store.backend.rules = rules
    if migrate:
        store.backend.migrate(block_bits)
    return store
