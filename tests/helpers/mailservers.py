"""Real SMTP and LMTP servers on loopback for the outbound tests (aiosmtpd).

A :class:`ServerLoop` runs one asyncio loop on a thread and hosts any number of
aiosmtpd servers on it; each :class:`Recorder` remembers what its server was
told and answers RCPT and DATA as the test says. Tests wait for mail with
:meth:`Recorder.wait_for` (an event with a timeout), never by sleeping.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


@dataclass
class Received:
    """One message a server accepted."""

    sender: str
    recipients: list[str]
    content: bytes
    authenticated: bool = False
    tls: bool = False


@dataclass
class Recorder:
    """An aiosmtpd handler that records and answers as told.

    *rcpt* may return a reply (e.g. ``"451 4.3.0 later"``) to refuse a recipient;
    *data* may return the reply to the message (for LMTP, one line per recipient).
    """

    rcpt: Callable[[str], str | None] | None = None
    data: Callable[[Received], str | None] | None = None
    messages: list[Received] = field(default_factory=list)
    senders: list[str] = field(default_factory=list)  # every MAIL FROM, accepted or not
    rcpts: list[str] = field(default_factory=list)  # every RCPT TO
    _changed: threading.Condition = field(default_factory=threading.Condition)

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        self.senders.append("" if address == "<>" else address)  # aiosmtpd says "<>"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        self.rcpts.append(address)
        refusal = self.rcpt(address) if self.rcpt else None
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        received = Received(
            "" if envelope.mail_from == "<>" else envelope.mail_from,
            list(envelope.rcpt_tos),
            envelope.original_content,
            authenticated=bool(session.authenticated),
            tls=session.ssl is not None,
        )
        reply = self.data(received) if self.data else None
        if reply is None or reply.startswith("250"):
            with self._changed:
                self.messages.append(received)
                self._changed.notify_all()
        return reply or "250 2.0.0 OK"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Wait until *count* messages have arrived (or fail after *timeout* seconds)."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.messages) >= count, timeout):
                raise AssertionError(f"{len(self.messages)} messages arrived, not {count}")
            return list(self.messages)


def accept_login(login: str, password: str) -> Callable[..., AuthResult]:
    """An aiosmtpd authenticator that takes exactly one login."""

    def authenticate(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            login.encode(),
            password.encode(),
        )
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535

    return authenticate


class ServerLoop:
    """An event loop on a thread, hosting aiosmtpd servers until :meth:`close`."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._servers: list[asyncio.Server] = []

    def serve(
        self,
        handler: Recorder,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        lmtp: bool = False,
        tls_context: ssl.SSLContext | None = None,
        implicit_tls: ssl.SSLContext | None = None,
        authenticator: Callable[..., AuthResult] | None = None,
    ) -> int:
        """Start a server for *handler*; returns its port."""
        kind = LMTP if lmtp else SMTP

        def factory() -> SMTP:
            return kind(
                handler,
                hostname="mx.test",
                loop=self.loop,
                tls_context=tls_context,
                require_starttls=False,
                authenticator=authenticator,
                auth_require_tls=tls_context is not None,
            )

        async def start() -> asyncio.Server:
            return await self.loop.create_server(factory, host, port, ssl=implicit_tls)

        server = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        self._servers.append(server)
        bound: int = server.sockets[0].getsockname()[1]
        return bound

    def close(self) -> None:
        async def stop() -> None:
            for server in self._servers:
                server.close()
                await server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


def servers() -> Iterator[ServerLoop]:
    """For a fixture: a :class:`ServerLoop`, closed afterwards."""
    running = ServerLoop()
    try:
        yield running
    finally:
        running.close()


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@dataclass(frozen=True)
class Certificate:
    """A self-signed certificate for ``localhost`` and ``127.0.0.1``."""

    certificate: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.certificate, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """Trusts this certificate only, and checks the host name."""
        return ssl.create_default_context(cafile=str(self.certificate))


def make_certificate(folder: Path) -> Certificate:
    """Make a certificate with the ``openssl`` command (an EC key: quick to make)."""
    certificate, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(certificate), "-days", "2",
            "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return Certificate(certificate, key)
