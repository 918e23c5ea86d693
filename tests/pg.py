"""A fresh PostgreSQL database per test, made and dropped on the real server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest


@contextmanager
def fresh_database(server_url: str, hint: str) -> Iterator[str]:
    name = f"ms_{hint}_{uuid.uuid4().hex[:8]}"[:63]
    try:
        admin = psycopg.connect(server_url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):
            raise  # in CI a missing server is a failure, never a skip
        pytest.skip(f"PostgreSQL not reachable at {server_url}: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(server_url)
    try:
        yield urlunsplit(parts._replace(path="/" + name))
    finally:
        with psycopg.connect(server_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
