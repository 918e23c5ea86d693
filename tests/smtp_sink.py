"""A real SMTP server (aiosmtpd) on a loopback port that keeps what it is sent: the relay's
next hop in tests and benches. It can be told to refuse, to answer 4xx or 5xx, or to go away."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from types import TracebackType

from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass(frozen=True)
class Received:
    sender: str
    recipients: list[str]
    data: bytes
    options: list[str]


@dataclass
class Sink:
    """`with Sink() as sink:` listens on 127.0.0.1:`sink.port`; `sink.received` fills up."""

    keep: bool = True  # False: count messages only (benches)
    data_reply: str | None = None  # answer every DATA with this instead of 250
    rcpt_replies: dict[str, str] = field(default_factory=dict)  # recipient -> answer
    received: list[Received] = field(default_factory=list)
    count: int = 0
    port: int = 0
    hold: threading.Event | None = None  # set: DATA waits for it to be set before answering
    holding: threading.Event = field(default_factory=threading.Event)  # a DATA is waiting

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._sessions: list[SMTP] = []

    def __enter__(self) -> Sink:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result()
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def _start(self) -> asyncio.Server:
        loop = asyncio.get_running_loop()

        def session() -> SMTP:
            made = SMTP(self, enable_SMTPUTF8=True, hostname="sink.test", loop=loop)
            self._sessions.append(made)
            return made

        return await loop.create_server(session, "127.0.0.1", self.port)

    def stop(self) -> None:
        """Stop listening (the next hop is down); `start` again on the same port."""
        if self._server is not None:
            server = self._server
            self._server = None

            async def close() -> None:
                server.close()
                await server.wait_closed()

            asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)

    def drop(self) -> None:
        """Close every open connection, as a next hop does with idle ones; keep listening."""

        async def close() -> None:
            sessions, self._sessions = self._sessions, []
            for made in sessions:
                if made.transport is not None:
                    made.transport.close()
            await asyncio.sleep(0.05)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)

    def start(self) -> None:
        self._server = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        refusal = self.rcpt_replies.get(address)
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_reply is not None:
            return self.data_reply
        if self.hold is not None:
            self.holding.set()
            await asyncio.get_running_loop().run_in_executor(None, self.hold.wait)
        self.count += 1
        if self.keep:
            data = envelope.original_content or b""
            got = Received(
                str(envelope.mail_from), list(envelope.rcpt_tos), data, envelope.mail_options
            )
            self.received.append(got)
        return "250 2.0.0 queued"
