"""Which webhook URLs may be reached, and the one kind of request made to them.

https only, unless the addresses are in `webhook_allowed_networks`; private, loopback,
link-local and other non-global addresses are refused unless listed there. The rules are
applied to the addresses a name resolves to each time a connection is opened, and the
connection goes to the address that was checked, so a name that resolves once outside and
then inside (DNS rebinding) cannot reach inside. Redirects are not followed, and at most
RESPONSE_LIMIT bytes of an answer are read.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
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


def check_url(url: str, allowed: Sequence[Network]) -> None:
    """Refuse (InvalidParameter) a URL that can never be delivered to, when it is added.

    A host name is checked again at every connection, after DNS.
    """
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        raise InvalidParameter(f"Parameter 'url' must be a URL of at most {MAX_URL} characters")
    if not url.isascii() or any(c.isspace() or ord(c) < 32 for c in url):
        raise InvalidParameter("Parameter 'url' must be ASCII without spaces")
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise InvalidParameter("Parameter 'url' has an invalid port") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidParameter("Parameter 'url' must be an https:// URL")
    if parts.username is not None or parts.password is not None:
        raise InvalidParameter("Parameter 'url' may not hold a user name or password")
    if port == 0:
        raise InvalidParameter("Parameter 'url' has an invalid port")
    try:
        address = ipaddress.ip_address(parts.hostname)
    except ValueError:
        if parts.scheme == "http" and not allowed:
            raise InvalidParameter("Parameter 'url' must be an https:// URL") from None
        return
    reason = refusal(address, parts.scheme, allowed)
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
        """POST `body`; a connection kept alive that turns out closed is opened again once."""
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
                if reused:
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
