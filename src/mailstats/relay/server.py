"""The SMTP side of the relay: who may send (AUTH), whom to (suppression at RCPT TO), and the
one answer per message, given only once the next hop has said what it did with each copy."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from mailstats import addresses
from mailstats.relay.deliver import Deliverer
from mailstats.settings import Settings, host_port
from mailstats.store import Account, Store
from mailstats.store import suppressions as sup
from mailstats.tracking.tokens import Signer

__all__ = ["Relay"]

log = logging.getLogger("mailstats.relay")
_UNSUBSCRIBED = "mailstats_unsubscribed"  # envelope attribute: recipients only unsubscribed


class _Session(SMTP):
    """aiosmtpd's SMTP session; AUTH in the clear is allowed to loopback clients only."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        self._auth_require_tls = not _loopback(peer)

    async def push(self, status: Any) -> None:
        # aiosmtpd words a message over the size limit without an enhanced status code
        if isinstance(status, str) and status.startswith("552 Error"):
            status = "552 5.3.4 Message larger than the relay takes (smtp_max_bytes)"
        await super().push(status)


def _loopback(peer: Any) -> bool:
    try:
        return ipaddress.ip_address(str(peer[0]).split("%")[0]).is_loopback
    except (ValueError, TypeError, IndexError):
        return False


class Relay:
    """The relay server: `await relay.start()` listens, `await relay.stop()` closes."""

    def __init__(self, settings: Settings, store: Store, signer: Signer) -> None:
        self.settings = settings
        self.store = store
        self.pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="relay")
        self.deliverer = Deliverer(settings, store, signer)
        self.counts: Counter[str] = self.deliverer.counts
        self.tls = _tls_context(settings)
        self.server: asyncio.Server | None = None
        self._relaying = 0  # messages between end of DATA and their answer

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def start(self, sock: socket.socket | None = None) -> None:
        """Listen on smtp_listen, or on a socket already listening."""
        loop = asyncio.get_running_loop()
        if sock is not None:
            self.server = await loop.create_server(self._session, sock=sock)
            return
        host, port = host_port(self.settings.smtp_listen, "smtp_listen")
        self.server = await loop.create_server(self._session, host, port)

    async def stop(self, grace: float = 60.0) -> None:
        """Stop listening, let messages being relayed get their answer, then close."""
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        deadline = asyncio.get_running_loop().time() + grace
        while self._relaying and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        self.pool.shutdown(wait=True)
        self.deliverer.next_hop.close()

    def _session(self) -> SMTP:
        return _Session(
            self,
            data_size_limit=self.settings.smtp_max_bytes,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=self.settings.smtp_name,
            ident="mailstats relay",
            tls_context=self.tls,
            auth_required=True,
            auth_require_tls=True,  # per connection in _Session: loopback clients may skip TLS
            authenticator=self._authenticate,
            loop=asyncio.get_running_loop(),
        )

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        """User: the account's name; password: an access token of that account."""
        if mechanism not in ("PLAIN", "LOGIN") or not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = data.login.decode("utf-8", "replace")
        token = data.password.decode("utf-8", "replace")
        account = self.store.authenticate(token) if 0 < len(token) <= 256 else None
        if account is None or account.name != login:
            self.counts["auth refused"] += 1
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=account)

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        account = _account(session)
        if not addresses.valid(address):
            return "553 5.1.3 Not a valid recipient address"
        if len(envelope.rcpt_tos) >= self.settings.smtp_max_recipients:
            return "452 4.5.3 Too many recipients in one message"
        try:
            reasons = await self._run(sup.check, self.store, account.id, address)
        except Exception:
            log.exception("suppression check failed")
            return "451 4.3.0 Local problem, try again later"
        always = [r for r in reasons if r.always]
        if always:
            self.counts["recipients suppressed"] += 1
            return f"550 5.7.1 <{address}> is suppressed: {_why(always[0])}"
        if reasons:  # unsubscribed only: transactional messages still reach it
            marked = getattr(envelope, _UNSUBSCRIBED, None)
            if marked is None:
                marked = set()
                setattr(envelope, _UNSUBSCRIBED, marked)
            marked.add(address)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        account = _account(session)
        raw = envelope.original_content or b""
        unsubscribed = set(getattr(envelope, _UNSUBSCRIBED, set()))
        self._relaying += 1
        try:
            reply = await self._run(
                self.deliverer.deliver,
                account,
                str(envelope.mail_from or ""),
                list(envelope.rcpt_tos),
                list(envelope.mail_options),
                raw,
                unsubscribed,
            )
        except Exception:
            log.exception("relaying a message failed")
            return "451 4.3.0 Local problem, try again later"
        finally:
            self._relaying -= 1
        return str(reply)

    async def _run(self, func: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, func, *args)


def _account(session: Session) -> Account:
    """The authenticated account (aiosmtpd refuses MAIL, so RCPT and DATA, without AUTH)."""
    account = session.auth_data
    assert isinstance(account, Account)
    return account


def _why(entry: sup.Suppression) -> str:
    said = {
        "bounce": "it bounced hard",
        "complaint": "its recipient complained",
        "manual": "it was put on the suppression list",
        "unsubscribe": "its recipient unsubscribed",
    }[entry.reason]
    where = f" (destination {entry.destination_id})" if entry.destination_id else ""
    return said + where


def _tls_context(settings: Settings) -> ssl.SSLContext | None:
    if not settings.smtp_tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.smtp_tls_cert, settings.smtp_tls_key)
    return context
