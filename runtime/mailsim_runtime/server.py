"""Mail comes in here: SMTP and LMTP receivers, and an SMTP sink for tests.

This is the only module that imports aiosmtpd. A :class:`Receiver` answers each
RCPT with the app's own decision (:meth:`App.accepts
<mailsim_runtime.app.App.accepts>`; refused → ``550 5.1.1``, so nothing is taken
that would later bounce), enforces the limits of ``[limits]`` with their standard
reply codes, refuses any bare CR or LF in DATA (SMTP smuggling), and answers 250
only once the message and its envelope are fsync'd in the incoming Maildir queue
(see :mod:`mailsim_runtime.durable`). A pool of threads then routes each
recipient's copy (:mod:`mailsim_runtime.workers`): the event loop never runs a
handler.

:class:`SmtpSink` accepts everything and keeps it: for tests and the live driver,
which must not import aiosmtpd themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, AnyStr, Literal

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from mailsim_runtime.config import Config, LimitsSection
from mailsim_runtime.inbound import too_big_reply
from mailsim_runtime.intake import (
    BAD_ADDRESS,
    SHUTTING_DOWN,
    TIMED_OUT,
    Intake,
    Service,
    has_control,
    peer_text,
    read_data,
    set_nodelay,
    tls_context,
)
from mailsim_runtime.queue import MaildirQueue
from mailsim_runtime.workers import Dispatcher, QueueReceiver

if TYPE_CHECKING:
    from mailsim_runtime.app import App

__all__ = ["QueueReceiver", "Receiver", "SinkMessage", "SmtpSink"]

log = logging.getLogger("mailsim.server")

COMMAND_TOO_LONG = "500 5.5.2 Command line too long (RFC 5321 section 4.5.3.1.4)"

# An SMTP path aiosmtpd's parser would read as exactly its dot-atom address (RFC 5322
# atext, ASCII), followed by the end or by spaces and parameters (not a comment).
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_PATH = re.compile(
    rf"<({_ATEXT}(?:\.{_ATEXT})*@{_ATEXT}(?:\.{_ATEXT})*)>(?:[ \t]+(?=[^ \t(])|$)"
)


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

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
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


class _Hooks:
    """aiosmtpd handler hooks: the EHLO offer and the RCPT decision."""

    def __init__(self, intake: Intake) -> None:
        self.intake = intake

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        # No AUTH is offered (this is an MX, not a submission server); PIPELINING
        # is, since commands are read in order from one buffer.
        offer = [line for line in responses if not line[4:].startswith("AUTH")]
        offer.insert(1, "250-PIPELINING")
        return offer

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        client = peer_text(session.peer) or "local"
        refusal = self.intake.recipient_refusal(address, len(envelope.rcpt_tos), client)
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"


_PROTOCOL_NAMES: dict[type, list[str]] = {}


def _protocol_names(cls: type) -> list[str]:
    """The commands and AUTH mechanisms a session class implements, by method name."""
    names = _PROTOCOL_NAMES.get(cls)
    if names is None:
        names = sorted(name for name in dir(cls) if name.startswith(("smtp_", "auth_")))
        _PROTOCOL_NAMES[cls] = names
    return list(names)


class _Session(SMTP):
    """One client's SMTP session: the receiver's rules on top of aiosmtpd's."""

    def __init__(self, receiver: Receiver, **options: Any) -> None:
        self.receiver = receiver
        self.intake = receiver.intake
        # Set before aiosmtpd sizes its stream reader with it. DATA lines may be
        # one byte longer than the limit: the transparent dot (RFC 5321 §4.5.2).
        self.line_length_limit = (self.intake.limits.line_length or 1000) + 1
        self.client = "local"
        self.refusal: str | None = None
        self.counted = False  # in the intake's count of connections per client
        self.in_data = False
        super().__init__(receiver.hooks, **options)

    def __dir__(self) -> list[str]:
        # aiosmtpd's __init__ finds the commands (smtp_*) and AUTH mechanisms (auth_*)
        # by listing every attribute of the session and reading each one, on every
        # connection: a third of a millisecond. Those names are all it looks for.
        return _protocol_names(type(self))

    @property
    def idle(self) -> bool:
        """Between transactions: closing now loses the client nothing."""
        return not self.in_data and (self.envelope is None or not self.envelope.mail_from)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.transport is None and self._original_transport is None:
            # The connection itself, not the TLS layer arriving after STARTTLS.
            set_nodelay(transport)
            peer = transport.get_extra_info("peername")
            if isinstance(peer, tuple) and peer:
                self.client = str(peer[0])
            self.refusal = self.intake.admit(self.client)
            self.counted = self.refusal is None
            if self.counted:
                self.receiver._sessions.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        try:
            super().connection_lost(error)
        finally:
            if self.counted:
                self.counted = False
                self.intake.leave(self.client)
            self.receiver._sessions.discard(self)
            self.receiver._session_changed()

    async def _handle_client(self) -> None:
        # aiosmtpd's session loop, preceded by the refusal of a client over its
        # connection limit (RFC 5321 §3.1: a 421 greeting, then close).
        if self.refusal is not None:
            await self.push(self.refusal)
            if self.transport is not None:
                self.transport.close()
            return
        await super()._handle_client()

    async def push(self, status: AnyStr) -> None:
        # aiosmtpd's own reply to an over-long command line has no enhanced status
        # code; the receiver's replies all do.
        if status == "500 Command line too long":
            await super().push(COMMAND_TOO_LONG)
        else:
            await super().push(status)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        # aiosmtpd parses every MAIL and RCPT path with the email header parser
        # (and defines a class on each call): tens of microseconds per address.
        # The plain form `<dot-atom@dot-atom>` gives the same answer from a pattern;
        # anything else (quotes, literals, comments, UTF-8, <>) still goes to it.
        found = _PLAIN_PATH.match(arg)
        if found is None:
            return super()._getaddr(arg)
        address = found.group(1)
        if self.local_part_limit and address.rfind("@") > self.local_part_limit:
            return None, None
        return address, arg[found.end() :]

    def _timeout_cb(self) -> None:
        # aiosmtpd closes silently; RFC 5321 §4.5.3.2 wants a 421 first.
        self.shut(TIMED_OUT)

    def shut(self, reply: str) -> None:
        """Say *reply* (a 421) and close."""
        transport = self.transport
        if isinstance(transport, asyncio.WriteTransport) and not transport.is_closing():
            transport.write(reply.encode("ascii") + b"\r\n")
            transport.close()

    async def smtp_MAIL(self, arg: str | None) -> None:
        if arg and has_control(arg):
            await self.push(BAD_ADDRESS)
            return
        limit = self.data_size_limit
        if arg and limit:
            # aiosmtpd refuses an oversized SIZE= without an enhanced status code.
            for param in arg.upper().split()[1:]:
                name, _, value = param.partition("=")
                if name == "SIZE" and value.isdigit() and int(value) > limit:
                    await self.push(too_big_reply(limit))
                    return
        await super().smtp_MAIL(arg)

    async def smtp_DATA(self, arg: str | None) -> None:
        # aiosmtpd's DATA, read faster and checked for smuggling and limits.
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        envelope, state = self.envelope, self.session
        assert envelope is not None and state is not None
        if not envelope.rcpt_tos:
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        self.in_data = True
        try:
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            read = await read_data(
                self._reader,
                size_limit=self.data_size_limit or 0,
                line_limit=self.line_length_limit - 1,
                keep_alive=self._reset_timeout,
            )
            if read is None:
                return  # the client went away mid-message
            self.envelope = self._create_envelope()
            sender = envelope.mail_from or ""
            # RFC 3848 names: SMTP, ESMTP, LMTP, each with an S after STARTTLS.
            with_ = "LMTP" if self.intake.lmtp else "ESMTP" if state.extended_smtp else "SMTP"
            replies = await self.intake.accept(
                sender="" if sender == "<>" else sender,
                recipients=envelope.rcpt_tos,
                content=read[0],
                lines=read[1],
                refusal=read[2],
                peer=peer_text(state.peer),
                helo=state.host_name,
                with_=with_ + ("S" if state.ssl is not None else ""),
            )
            self._writer.write(b"".join(r.encode("ascii") + b"\r\n" for r in replies))
            await self._writer.drain()
        finally:
            self.in_data = False
            self.receiver._session_changed()


class _LmtpSession(_Session, LMTP):
    """An LMTP session: LHLO, and one reply per recipient after DATA (RFC 2033)."""


class Receiver(Service):
    """Receives mail for *app* by SMTP or LMTP, over TCP or a UNIX socket.

    Accepted messages are stored in the Maildir *queue* (fsync'd before the 250
    unless ``durability="none"``) and delivered by *workers* threads. Run it as a
    :class:`~mailsim_runtime.intake.Service`: ``with Receiver(...)``, ``start()``
    and ``stop()``, or ``serve_forever()``. ``reuse_port`` lets several processes
    listen on one port (SO_REUSEPORT).
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
        durability: Literal["fsync", "none"] = "fsync",
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
            else MaildirQueue(queue, durable=durability == "fsync")
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
        self.hooks = _Hooks(self.intake)
        self._server: asyncio.Server | None = None
        self._sessions: set[_Session] = set()
        self._changed: asyncio.Event | None = None

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
        session_class = _LmtpSession if self.protocol == "lmtp" else _Session
        timeout = self.limits.command_timeout.total_seconds() or 300.0

        def factory() -> _Session:
            return session_class(
                self,
                data_size_limit=self.limits.message_size or None,
                hostname=self.hostname,
                tls_context=self.tls_context,
                timeout=timeout,
                loop=loop,
            )

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
