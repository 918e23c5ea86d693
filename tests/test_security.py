"""Secrets stay secret: tokens only as hashes, never in logs; the signing secret never shown."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from starlette.testclient import TestClient

from mailstats.settings import Settings
from mailstats.store import open_store
from mailstats.web.app import create_app
from tests import server


def test_tokens_are_stored_only_as_hashes(db_url: str) -> None:
    store = open_store(db_url)
    try:
        token = store.create_token("acme", "UTC")
        rows = store.backend.fetch("SELECT * FROM tokens")
        assert not any(
            token in str(value) or token.encode() in bytes(str(value), "utf-8")
            for row in rows
            for value in row
        )
        assert store.authenticate(token) is not None
        assert store.authenticate(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    finally:
        store.close()


def test_access_log_never_shows_tokens(db_url: str, tmp_path: Path) -> None:
    token = server.make_token(db_url)
    port = server.free_port()
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mailstats", "serve", "--db", db_url, "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "MAILSTATS_SPOOL": str(tmp_path / "spool")},
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(f"{url}/v2/ms/clicks", timeout=1)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
            assert (
                httpx.get(f"{url}/v2/ms/clicks", params={"access_token": token}).status_code == 200
            )
            assert httpx.get(f"{url}/v2/ms/clicks?ACCESS_TOKEN={token}&x=1").status_code == 400
            headers = {"authorization": f"Bearer {token}"}
            assert httpx.get(f"{url}/v2/ms/clicks", headers=headers).status_code == 200
            reader = open_store(db_url)
            secret = reader.secret().hex()
            reader.close()
        finally:
            proc.terminate()
            assert proc.wait(15) == 0
    text = log.read_text()
    assert "GET /v2/ms/clicks?access_token=[redacted]" in text  # the request is logged ...
    assert token not in text  # ... its token is not
    assert secret not in text


def test_error_bodies_never_show_the_secret(settings: Settings) -> None:
    app = create_app(settings)
    try:
        secret = app.store.secret()
        with TestClient(app, base_url="http://t.test") as http:
            for path in (
                "/v2/ms/clicks",
                "/c/AAAA",
                "/v2/ms/destination/1/body/html",
                "/openapi.json",
            ):
                body = http.get(path).content
                assert secret.hex().encode() not in body and secret not in body
        assert "**" in repr(settings.replace(secret="topsecret")) and "topsecret" not in repr(
            settings.replace(secret="topsecret")
        )
    finally:
        app.close()


def test_rate_limit_answers_429_with_retry_after(settings: Settings) -> None:
    app = create_app(settings.replace(rate_limit=1.0, rate_burst=3))
    try:
        token = app.store.create_token("acme", "UTC")
        with TestClient(app, base_url="http://t.test") as http:
            codes = [http.get("/v2/ms/clicks", params={"access_token": token}) for _ in range(5)]
        assert [r.status_code for r in codes[:3]] == [200, 200, 200]
        limited = codes[-1]
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert limited.json() == {"error": {"message": "Rate limit exceeded"}}
        assert limited.headers["content-type"] == "application/json"
    finally:
        app.close()


def test_rate_limit_is_off_by_default(http: TestClient, token: str) -> None:
    assert all(
        http.get("/v2/ms/clicks", params={"access_token": token}).status_code == 200
        for _ in range(100)
    )
