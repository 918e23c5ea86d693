"""Fixtures: every test that takes `db_url` runs once on SQLite and once on PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from starlette.testclient import TestClient

from mailstats.settings import Settings, load
from mailstats.store import Store, open_store
from mailstats.web.app import App, create_app
from tests.helpers import Mailing, mailing

PG_URL = os.environ.get("MAILSTATS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
PUBLIC = "http://t.test"
TEST_BLOCK_BITS = 2


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        default="all",
        choices=["all", "sqlite", "postgres"],
        help="Run the backend-parametrised tests on these backends only.",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        chosen = metafunc.config.getoption("--backend")
        names = ["sqlite", "postgres"] if chosen == "all" else [chosen]
        only = metafunc.definition.get_closest_marker("backends")
        if only is not None:
            names = [n for n in names if n in only.args]
        marks = {"postgres": [pytest.mark.postgres]}
        metafunc.parametrize(
            "backend", [pytest.param(n, marks=marks.get(n, []), id=n) for n in names]
        )


@pytest.fixture
def db_url(
    backend: str, tmp_path: os.PathLike[str], request: pytest.FixtureRequest
) -> Iterator[str]:
    """A fresh, empty database on the chosen backend."""
    if backend == "sqlite":
        yield os.path.join(tmp_path, "mailstats.db")
        return
    from tests.pg import emptied

    url = request.getfixturevalue("pg_database")
    emptied(url)
    yield url


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """One migrated database for the run; each test starts with its tables emptied."""
    from tests.pg import migrated_database

    with migrated_database(PG_URL) as url:
        yield url


@pytest.fixture
def settings(db_url: str, tmp_path: os.PathLike[str]) -> Settings:
    # blocks of 4 event IDs: every test's few events span many counted blocks
    spool = os.path.join(tmp_path, "spool")
    # no webhook dispatcher in the app: a test that pushes runs one of its own, to loopback
    return load(environ={}, db=db_url, public_url=PUBLIC, spool=spool, block_bits=TEST_BLOCK_BITS,
                webhook_dispatch=False)  # fmt: skip


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    s = open_store(settings.db, block_bits=settings.block_bits)
    yield s
    s.close()


@pytest.fixture
def app(settings: Settings) -> Iterator[App]:
    a = create_app(settings)
    yield a
    a.close()


class SettlingClient(TestClient):
    """A client that, before every request but a tracking hit, waits until the app's
    indexer has derived what was captured: the tests read what they just clicked."""

    def request(self, method: str, url: Any, *args: Any, **kwargs: Any) -> Any:
        if not urlsplit(str(url)).path.startswith(("/c/", "/o/", "/u/")):
            self.app.indexer.drain(timeout=10)  # type: ignore[attr-defined]
        return super().request(method, url, *args, **kwargs)


@pytest.fixture
def http(app: App) -> Iterator[TestClient]:
    """The app in-process, over a real ASGI exchange; redirects are not followed."""
    with SettlingClient(
        app, base_url=PUBLIC, follow_redirects=False, client=("203.0.113.7", 40000)
    ) as c:
        yield c


@pytest.fixture
def token(app: App) -> str:
    return app.store.create_token("acme", "Europe/Amsterdam")


@pytest.fixture
def m(app: App, http: TestClient, token: str) -> Mailing:
    """An emailing of account "acme" with destinations and links, made over HTTP."""
    return mailing(app, http, token)


@pytest.fixture
def stranger(app: App, http: TestClient) -> Mailing:
    """A mailing of another account, "other"."""
    return mailing(app, http, app.store.create_token("other", "Europe/Amsterdam"), destinations=1)
