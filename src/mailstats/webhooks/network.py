"""Which webhook URLs may be reached, and the one kind of request made to them.

https only, unless the addresses are in `webhook_allowed_networks`; private, loopback,
link-local and other non-global addresses are refused unless listed there. The rules are
applied to the addresses a name resolves to each time a connection is opened, and the
connection goes to the address that was checked, so a name that resolves once outside and
then inside (DNS rebinding) cannot reach inside. Redirects are not followed, and at most
RESPONSE_LIMIT bytes of an answer are read.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import re
import socket
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from mailstats import __version__
from mailstats.errors import InvalidParameter
from mailstats.settings import Network

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port -> the addresses to try, as text; socket.getaddrinfo unless a test swaps it
Resolver = Callable[[str, int], list[str]]
RESPONSE_LIMIT = 4096
MAX_URL = 2048
USER_AGENT = f"mailstats-webhooks/{__version__}"


class Refused(Exception):
    """A connection the rules do not allow."""


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def refusal(address: Address, scheme: str, allowed: Sequence[Network]) -> str | None:
    """Why `address` may not be reached over `scheme`, or None if it may.

    >>> refusal(ipaddress.ip_address("127.0.0.1"), "https", ())
    '127.0.0.1 is a private, loopback or link-local address'
    """
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address.version == net.version and address in net for net in allowed):
        return None
    if not address.is_global or address.is_multicast:
        return f"{address} is a private, loopback or link-local address"
    if scheme != "https":
        return f"{address} is not in webhook_allowed_networks, so only https may reach it"
    return None


# The parts of a URL that may follow the host (the OpenAPI document uses the same).
PORT = (
    "(?::(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"
)
PATH = "(?:/[A-Za-z0-9._~%!$&'()*+,;=:@-]*)*"
QUERY = "(?:\\?[A-Za-z0-9._~%!$&'()*+,;=:@/?-]*)?"
# A host name: dot-separated labels, the last one starting with a letter (never an address).
NAME = "(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_NAME = re.compile(NAME)
_URL = re.compile(f"^(https?)://({NAME}|[0-9.]+|\\[[0-9A-Fa-f:.]+\\]){PORT}{PATH}{QUERY}$")


def check_url(url: str, allowed: Sequence[Network]) -> None:
    """Refuse (InvalidParameter) a URL that can never be delivered to, when it is added.

    A host name is checked again at every connection, after DNS. An address in place of a
    name must be in `allowed` (a receiver outside has a name).
    """
    if not isinstance(url, str) or len(url) > MAX_URL:
        raise InvalidParameter(f"Parameter 'url' must be a URL of at most {MAX_URL} characters")
    match = _URL.fullmatch(url)
    if match is None:
        if url.startswith(("https://", "http://")):
            raise InvalidParameter("Parameter 'url' is not a valid URL (a user name, a password "
                                   "or a fragment are not taken either)")  # fmt: skip
        raise InvalidParameter("Parameter 'url' must be an https:// URL")
    scheme, host = match[1], match[2].strip("[]")
    if _NAME.fullmatch(host):
        if scheme == "http" and not allowed:
            raise InvalidParameter("Parameter 'url' must be an https:// URL") from None
        return
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise InvalidParameter(f"Parameter 'url' names no valid host: {host}") from None
    reason = refusal(address, scheme, allowed)
    if reason is None and not any(
        address in net for net in allowed if net.version == address.version
    ):
        reason = "an address in place of a name must be in webhook_allowed_networks"
    if reason is not None:
        raise InvalidParameter(f"Parameter 'url' is refused: {reason}")


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes  # at most RESPONSE_LIMIT bytes of it
    location: str | None  # of a redirect, which is not followed


class _Checked(http.client.HTTPConnection):
    """A connection whose every (re)connect goes through `opener`."""

    def __init__(self, host: str, port: int, timeout: float, opener: Callable[[], socket.socket],
                 default_port: int) -> None:  # fmt: skip
        super().__init__(host, port, timeout=timeout)
        self._opener = opener
        self.default_port = default_port

    def connect(self) -> None:
        self.sock = self._opener()


class Sender:
    """Posts to one URL over a kept-alive connection, each new connection checked."""

    def __init__(self, url: str, allowed: Sequence[Network], *, timeout: float = 10.0,
                 resolver: Resolver | None = None) -> None:  # fmt: skip
        parts = urlsplit(url)
        self.scheme = parts.scheme
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.scheme == "https" else 80)
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.allowed = tuple(allowed)
        self.timeout = timeout
        self.resolver = resolver or system_resolver
        self._conn: _Checked | None = None
        self._aborted = False

    def _open(self) -> socket.socket:
        try:
            literal = ipaddress.ip_address(self.host)
            candidates = [str(literal)]
        except ValueError:
            try:
                candidates = self.resolver(self.host, self.port)
            except OSError as exc:
                raise Refused(f"cannot resolve {self.host}: {exc}") from None
        if not candidates:
            raise Refused(f"{self.host} resolves to no address")
        addresses = [ipaddress.ip_address(a.split("%")[0]) for a in candidates]
        for address in addresses:  # one address refused refuses the name
            reason = refusal(address, self.scheme, self.allowed)
            if reason is not None:
                raise Refused(f"{self.host}: {reason}")
        failure: OSError | None = None
        for address in addresses:
            try:
                sock = socket.create_connection((str(address), self.port), timeout=self.timeout)
            except OSError as exc:
                failure = exc
                continue
            # headers and body go out at once, not held back for the receiver's ACK
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.scheme != "https":
                return sock
            context = ssl.create_default_context()
            try:
                return context.wrap_socket(sock, server_hostname=self.host)
            except (OSError, ssl.SSLError):
                sock.close()
                raise
        assert failure is not None
        raise failure

    def post(self, body: bytes, headers: dict[str, str]) -> Answer:
        """POST `body`; a connection kept alive that turns out closed is opened again once.

        Each connect and read waits at most `timeout` seconds, and the whole exchange at most
        twice that: a receiver that answers a byte at a time is cut off too (which keeps an
        attempt well inside the dispatcher's lease)."""
        self._aborted = False
        timer = threading.Timer(2 * self.timeout, self._abort)
        timer.daemon = True
        timer.start()
        try:
            return self._post(body, headers)
        except OSError:
            if self._aborted:
                raise TimeoutError(f"no answer within {2 * self.timeout:g} s") from None
            raise
        finally:
            timer.cancel()

    def _abort(self) -> None:
        self._aborted = True
        conn = self._conn
        sock = conn.sock if conn is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _post(self, body: bytes, headers: dict[str, str]) -> Answer:
        all_headers = {"content-type": "application/json", "user-agent": USER_AGENT, **headers}
        for reused in (self._conn is not None, False):
            if self._conn is None:
                default = 443 if self.scheme == "https" else 80
                self._conn = _Checked(self.host, self.port, self.timeout, self._open, default)
            try:
                self._conn.request("POST", self.path, body, all_headers)
                response = self._conn.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if reused and not self._aborted:
                    continue
                raise
            except BaseException:
                self.close()
                raise
            data = response.read(RESPONSE_LIMIT)
            if response.will_close or not response.isclosed():
                self.close()  # closing, or more body than is read: not kept
            return Answer(response.status, data, response.getheader("location"))
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
