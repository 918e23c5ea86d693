"""The HTTP protocol the server runs: uvicorn's httptools parser, with refusals in our shape.

A request the parser refuses (a request line or query string past its limit, bytes that are
not HTTP) is answered like every other refusal of the API: 400 with Copernica's JSON error
body, instead of the server's plain-text "Invalid HTTP request received.".
"""

from __future__ import annotations

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

_BODY = orjson.dumps(
    {"error": {"message": "Invalid HTTP request: malformed, or a request line or header too long"}}
)


class Protocol(HttpToolsProtocol):
    def send_400_response(self, msg: str) -> None:
        content = [STATUS_LINE[400]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(_BODY)).encode("ascii") + b"\r\n",
                b"connection: close\r\n\r\n",
                _BODY,
            ]
        )
        self.transport.write(b"".join(content))
        self.transport.close()
