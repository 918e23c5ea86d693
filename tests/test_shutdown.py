"""Graceful shutdown: SIGTERM lets a request in flight finish, then the server exits 0."""

from __future__ import annotations

import signal
import time

import httpx

from tests import server
from tests.test_big_export import count_ordered, seed

ROWS = 100_000


def test_sigterm_finishes_an_export_in_flight(db_url: str) -> None:
    token = server.make_token(db_url)
    seed(db_url, ROWS)
    with server.running(db_url) as srv:
        params = {"access_token": token, "format": "ndjson"}
        with (
            httpx.Client(timeout=60) as http,
            http.stream("GET", f"{srv.url}/v2/ms/clicks", params=params) as answer,
        ):
            assert answer.status_code == 200
            lines = answer.iter_lines()
            first = next(lines)  # the export is under way ...
            srv.process.send_signal(signal.SIGTERM)  # ... when the server is told to stop
            time.sleep(0.2)
            rows = count_ordered([first.encode(), *(line.encode() for line in lines)])
        assert rows == ROWS  # the answer in flight was finished, not cut
        assert srv.process.wait(30) == 0
        with httpx.Client(timeout=2) as http:
            try:
                http.get(f"{srv.url}/v2/ms/clicks")
                refused = False
            except httpx.TransportError:
                refused = True
        assert refused  # and then it stopped
