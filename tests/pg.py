"""PostgreSQL databases for tests, made and dropped on the real server.

Most tests want an empty, migrated database: one is migrated per test run and emptied
before each test (a few DELETEs take milliseconds; CREATE and DROP DATABASE a second).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest


def _admin(server_url: str) -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(server_url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):
            raise  # in CI a missing server is a failure, never a skip
        pytest.skip(f"PostgreSQL not reachable at {server_url}: {exc}")


def _url(server_url: str, name: str) -> str:
    return urlunsplit(urlsplit(server_url)._replace(path="/" + name))


@contextmanager
def fresh_database(server_url: str, hint: str, template: str | None = None) -> Iterator[str]:
    name = f"ms_{hint}_{uuid.uuid4().hex[:8]}"[:63]
    with _admin(server_url) as admin:
        admin.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    try:
        yield _url(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def migrated_database(server_url: str) -> Iterator[str]:
    """A database with every migration applied; dropped at the end."""
    from mailstats.store import open_store

    with fresh_database(server_url, "suite") as url:
        from tests.conftest import TEST_BLOCK_BITS

        open_store(url, block_bits=TEST_BLOCK_BITS).close()
        yield url


BLOAT = 10_000  # rows deleted from a table, above which it is vacuumed at once
_TABLES = """
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND c.relname <> 'schema_migrations'
"""


def emptied(url: str) -> None:
    """Every table empty and every sequence back at 1, as in a new database."""
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        # DELETE, not TRUNCATE: with a few rows it is far cheaper than new files per partition
        bloated = []
        with conn.transaction():
            conn.execute("SET LOCAL session_replication_role = replica")  # no FK checks
            for (table,) in conn.execute(_TABLES).fetchall():
                keep = " WHERE key <> 'block_bits'" if table == "meta" else ""  # the layout
                if conn.execute(f'DELETE FROM "{table}"{keep}').rowcount > BLOAT:
                    bloated.append(table)
            for (sequence,) in conn.execute("SELECT sequencename FROM pg_sequences").fetchall():
                conn.execute(f'ALTER SEQUENCE "{sequence}" RESTART')
        # After a big test, the dead rows go now: IDs start at 1 again, and index scans for
        # them would otherwise wade through every dead entry with the same key.
        for table in bloated:
            conn.execute(f'VACUUM (ANALYZE) "{table}"')
