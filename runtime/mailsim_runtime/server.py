"""Mail comes in here: SMTP and LMTP receivers, and an SMTP sink for tests.

A :class:`Receiver` listens on TCP or a UNIX socket and runs one
:class:`~mailsim_runtime.session.Session` per connection: an SMTP (or LMTP) state
machine of our own on :class:`asyncio.Protocol`. It answers each RCPT with the
app's own decision (:meth:`App.accepts <mailsim_runtime.app.App.accepts>`;
refused → ``550 5.1.1``, so nothing is taken that would later bounce), enforces
the limits of ``[limits]`` with their standard reply codes, refuses any bare CR or
LF in DATA (SMTP smuggling), and answers 250 only once the message and its
envelope are fsync'd in the incoming Maildir queue (see
:mod:`mailsim_runtime.durable`). A pool of threads then routes each recipient's
copy (:mod:`mailsim_runtime.workers`): the event loop never runs a handler. A
graceful close lets sessions in the middle of a transaction finish it.

:class:`SmtpSink` accepts everything and keeps it: for tests and the live driver.
It is built on aiosmtpd, and this is the only module that imports aiosmtpd, so
that code which never starts a sink does not load it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from aiosmtpd.smtp import SMTP, Envelope
from aiosmtpd.smtp import Session as SinkSession

from mailsim_runtime.config import Config, Durability, LimitsSection
from mailsim_runtime.intake import SHUTTING_DOWN, Intake, Service, peer_text, tls_context
from mailsim_runtime.queue import MaildirQueue
from mailsim_runtime.session import Session, SessionOptions
from mailsim_runtime.workers import Dispatcher, QueueReceiver

if TYPE_CHECKING:
    from mailsim_runtime.app import App

__all__ = ["QueueReceiver", "Receiver", "SinkMessage", "SmtpSink"]

log = logging.getLogger("mailsim.server")


# The sink -------------------------------------------------------------------------


@dataclass(frozen=True)
class SinkMessage:
    """A message an :class:`SmtpSink` received: its envelope and its bytes as sent."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes
    peer: str | None = None


class _SinkHooks:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: SMTP, session: SinkSession, envelope: Envelope) -> str:
        sender = envelope.mail_from or ""
        message = SinkMessage(
            sender="" if sender == "<>" else sender,
            recipients=tuple(envelope.rcpt_tos),
            data=envelope.original_content or b"",
            peer=peer_text(session.peer),
        )
        await asyncio.get_running_loop().run_in_executor(None, self.sink._received, message)
        return "250 2.0.0 OK"


class SmtpSink(Service):
    """An SMTP server on *host*:*port* (0: any free port) that accepts every message.

    Each message received is kept in :attr:`messages` (unless ``keep=False``) and
    passed to *on_message* (called in a worker thread; the client gets its 250
    once it returns). Use it as a context manager, or call :meth:`start` (which
    returns once :attr:`port` is open) and :meth:`stop`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        on_message: Callable[[SinkMessage], object] | None = None,
        keep: bool = True,
        hostname: str = "mailsim-sink",
    ) -> None:
        self.host = host
        self._requested_port = port
        self.port = port
        self.hostname = hostname
        self.on_message = on_message
        self.keep = keep
        self._messages: list[SinkMessage] = []
        self._changed = threading.Condition()
        self._server: asyncio.Server | None = None

    def __repr__(self) -> str:
        return f"<SmtpSink {self.host}:{self.port} {len(self._messages)} messages>"

    @property
    def messages(self) -> list[SinkMessage]:
        """What arrived so far, oldest first (a copy)."""
        with self._changed:
            return list(self._messages)

    def clear(self) -> None:
        with self._changed:
            self._messages.clear()

    def _received(self, message: SinkMessage) -> None:
        if self.on_message is not None:
            self.on_message(message)
        with self._changed:
            if self.keep:
                self._messages.append(message)
            self._changed.notify_all()

    def wait_for(
        self,
        predicate: Callable[[list[SinkMessage]], bool] | None = None,
        timeout: float = 5.0,
    ) -> list[SinkMessage]:
        """Wait until *predicate* (given every message so far) is true; those messages.

        With no predicate, waits for at least one message. Raises TimeoutError,
        listing what did arrive, after *timeout* seconds.
        """
        test = predicate or bool
        with self._changed:
            if self._changed.wait_for(lambda: test(list(self._messages)), timeout):
                return list(self._messages)
            arrived = [f"{m.sender!r} -> {list(m.recipients)}" for m in self._messages]
        raise TimeoutError(
            f"{self!r}: condition not met within {timeout} s; arrived: {arrived or 'nothing'}"
        )

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        hooks = _SinkHooks(self)

        def factory() -> SMTP:
            return SMTP(hooks, hostname=self.hostname, enable_SMTPUTF8=True, timeout=60, loop=loop)

        self._server = await loop.create_server(
            factory, self.host, self._requested_port, backlog=1024, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self, grace: float = 30.0) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


# The receiver ---------------------------------------------------------------------


class Receiver(Service):
    """Receives mail for *app* by SMTP or LMTP, over TCP or a UNIX socket.

    Accepted messages are stored in the Maildir *queue*, on disk before the 250:
    ``durability="fsync"`` flushes each file and the folder, ``"syncfs"`` the
    queue's whole filesystem once per batch (Linux), ``"wal"`` appends each batch
    to a write-ahead log and flushes that alone, checkpointing the files every
    few seconds (Linux; :mod:`mailsim_runtime.wal`), ``"none"`` nothing. They are
    delivered by *workers* threads. Run it as a
    :class:`~mailsim_runtime.intake.Service`: ``with Receiver(...)``, ``start()`` and
    ``stop()``, or ``serve_forever()``. ``reuse_port`` lets several processes listen
    on one port (SO_REUSEPORT).
    """

    def __init__(
        self,
        app: App,
        *,
        protocol: Literal["smtp", "lmtp"] = "smtp",
        host: str = "127.0.0.1",
        port: int = 8823,
        socket_path: str | Path | None = None,
        queue: str | Path | MaildirQueue = Path("run/incoming"),
        durability: Durability = "fsync",
        workers: int = 8,
        certificate: str | Path | None = None,
        private_key: str | Path | None = None,
        limits: LimitsSection | None = None,
        hostname: str | None = None,
        reuse_port: bool = False,
        backlog: int = 1024,
        poll: float = 1.0,
    ) -> None:
        self.app = app
        self.protocol = protocol
        self.host = host
        self.port = port
        self.socket_path = Path(socket_path) if socket_path is not None else None
        self.queue = (
            queue
            if isinstance(queue, MaildirQueue)
            else MaildirQueue(
                queue,
                durable=durability != "none",
                sync="fsync" if durability == "none" else durability,
            )
        )
        self.limits = limits or LimitsSection()
        self.hostname = hostname or app.hostname
        self.reuse_port = reuse_port
        self.backlog = backlog
        self.tls_context = tls_context(certificate, private_key)
        self.intake = Intake(
            app,
            self.queue,
            limits=self.limits,
            hostname=self.hostname,
            lmtp=protocol == "lmtp",
            workers=workers,
            poll=poll,
        )
        self._server: asyncio.Server | None = None
        self._sessions: set[Session] = set()
        self._changed: asyncio.Event | None = None
        self._options = SessionOptions(
            self.intake,
            hostname=self.hostname,
            tls_context=self.tls_context,
            sessions=self._sessions,
            changed=self._session_changed,
        )

    @classmethod
    def from_config(cls, app: App, config: Config, **overrides: Any) -> Receiver:
        """The receiver ``[receiver]`` and ``[limits]`` of *config* describe."""
        section = config.receiver
        options: dict[str, Any] = {
            "protocol": section.protocol,
            "host": section.host,
            "port": section.port,
            "socket_path": section.socket,
            "queue": section.queue,
            "durability": section.durability,
            "workers": section.workers,
            "certificate": section.certificate,
            "private_key": section.private_key,
            "limits": config.limits,
            "hostname": config.app.hostname,
        }
        options.update(overrides)
        return cls(app, **options)

    def __repr__(self) -> str:
        return f"<Receiver {self.protocol} {self.address}>"

    @property
    def address(self) -> str:
        if self.socket_path is not None:
            return str(self.socket_path)
        return f"{self.host}:{self.port}"

    @property
    def dispatcher(self) -> Dispatcher:
        return self.intake.dispatcher

    @property
    def accepted(self) -> int:
        """Messages answered with 250 so far."""
        return self.intake.accepted

    # Lifecycle ------------------------------------------------------------------

    async def open(self) -> None:
        """Start the writer and the workers (which first take up what a crash
        left in the queue), then listen."""
        loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        self.intake.start()
        options = self._options

        def factory() -> Session:
            return Session(options)

        try:
            if self.socket_path is not None:
                self.socket_path.parent.mkdir(parents=True, exist_ok=True)
                self._server = await loop.create_unix_server(
                    factory, str(self.socket_path), backlog=self.backlog
                )
            else:
                # asyncio re-listens with this backlog even on a socket made
                # elsewhere, so it is given here (RFC-era default of 100 is too
                # small for bursts of new connections).
                self._server = await loop.create_server(
                    factory,
                    self.host,
                    self.port,
                    backlog=self.backlog,
                    reuse_address=True,
                    reuse_port=self.reuse_port or None,
                )
                self.port = self._server.sockets[0].getsockname()[1]
        except BaseException:
            await loop.run_in_executor(None, self.intake.stop)
            raise
        log.info("receiving %s on %s for %s", self.protocol.upper(), self.address, self.app)

    async def close(self, grace: float = 30.0) -> None:
        """Stop listening, let open transactions finish (up to *grace* seconds),
        close every session with 421, finish the deliveries under way, flush."""
        self.intake.closing = True
        if self._server is not None:
            self._server.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self._sessions:
            late = loop.time() >= deadline
            for session in list(self._sessions):
                if late or session.idle:
                    session.shut(SHUTTING_DOWN)
                    self._sessions.discard(session)
            if not self._sessions:
                break
            assert self._changed is not None
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), max(deadline - loop.time(), 0.01))
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        # Joining threads blocks: off the loop, so the last replies still go out.
        await loop.run_in_executor(None, self.intake.stop)
        log.info("stopped receiving on %s", self.address)

    def _session_changed(self) -> None:
        if self._changed is not None:
            self._changed.set()
