"""A real webhook receiver on loopback for the tests and the bench: it records every request
and answers what the test says (a status list, a redirect, or hanging up without an answer)."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def items(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = orjson.loads(self.body)
        return items

    @property
    def ids(self) -> list[int]:
        return [int(item["ID"]) for item in self.items]


@dataclass
class Receiver:
    """Answers `statuses` in turn (then 200); "drop" closes without answering."""

    host: str = "127.0.0.1"
    port: int = 0
    statuses: list[int | str] = field(default_factory=list)
    location: str = ""
    delay: float = 0.0
    close_each: bool = False  # answer with Connection: close
    answer_body: bytes = b"ok"
    received: list[Received] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0
    _server: http.server.ThreadingHTTPServer | None = None
    _open: set[Any] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                with receiver._lock:
                    receiver._open.add(self.connection)

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.in_flight += 1
                    receiver.most_in_flight = max(receiver.most_in_flight, receiver.in_flight)
                    answer = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.received.append(Received(dict(self.headers.items()), body))
                if receiver.delay:
                    time.sleep(receiver.delay)
                with receiver._lock:
                    receiver.in_flight -= 1
                if answer == "drop":
                    self.close_connection = True
                    self.connection.close()
                    return
                assert isinstance(answer, int)
                self.send_response(answer)
                if 300 <= answer < 400:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", str(len(receiver.answer_body)))
                if receiver.close_each:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(receiver.answer_body)

        server = http.server.ThreadingHTTPServer((self.host, self.port), Handler)
        server.daemon_threads = True
        server.handle_error = lambda request, address: None  # type: ignore[method-assign]  # a sender that hung up
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:  # a receiver that is down keeps no connection either
            for conn in self._open:
                with suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            self._open.clear()

    def ids(self) -> list[int]:
        return [i for r in list(self.received) for i in r.ids]


@contextmanager
def receiving(**options: Any) -> Iterator[Receiver]:
    receiver = Receiver(**options).start()
    try:
        yield receiver
    finally:
        receiver.stop()
