"""The receiving side apart from the SMTP protocol: who may connect, which
recipients are taken, which messages are refused, and how an accepted one is made
durable and handed to the workers.

:class:`Intake` is what every session (:mod:`mailsim_runtime.session`) of a
:class:`~mailsim_runtime.server.Receiver` shares; nothing here speaks SMTP.
"""

from __future__ import annotations

import asyncio
import errno
import importlib
import logging
import os
import signal
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from mailsim_runtime.config import LimitsSection
from mailsim_runtime.durable import GroupCommitWriter
from mailsim_runtime.inbound import check_content, encode_stored, received_header
from mailsim_runtime.queue import MaildirQueue
from mailsim_runtime.workers import Dispatcher

if TYPE_CHECKING:
    from mailsim_runtime.app import App

__all__ = [
    "BAD_ADDRESS",
    "QUEUE_FAILED",
    "QUEUE_FULL",
    "SHUTTING_DOWN",
    "TIMED_OUT",
    "TOO_MANY_CONNECTIONS",
    "TOO_MANY_RECIPIENTS",
    "Intake",
    "LoopThread",
    "Service",
    "has_control",
    "peer_text",
    "set_nodelay",
    "tls_context",
]

log = logging.getLogger("mailsim.server")

TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections from your host, try again later"
SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"
TIMED_OUT = "421 4.4.2 Command timeout exceeded, closing connection"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients for one message"
QUEUE_FAILED = "451 4.3.0 Cannot queue the message now, try again later"
QUEUE_FULL = "452 4.3.1 Insufficient system storage, try again later"
BAD_ADDRESS = "553 5.1.3 Control characters are not allowed in an address"
_CONTROL = frozenset(chr(c) for c in [*range(32), 127])

T = TypeVar("T")


def has_control(text: str) -> bool:
    """Whether *text* holds a control character (CR, LF, NUL, …)."""
    return not _CONTROL.isdisjoint(text)


class Intake:
    """Admission, the RCPT decision and durable acceptance for one receiver."""

    def __init__(
        self,
        app: App,
        queue: MaildirQueue,
        *,
        limits: LimitsSection,
        hostname: str,
        lmtp: bool = False,
        workers: int = 8,
        poll: float = 1.0,
    ) -> None:
        self.app = app
        self.queue = queue
        self.limits = limits
        self.hostname = hostname
        self.lmtp = lmtp
        self.writer = GroupCommitWriter(queue, name="mailsim-receiver-writer")
        self.dispatcher = Dispatcher(app, queue, workers=workers, writer=self.writer, poll=poll)
        self.accepted = 0  # messages answered with 250
        self.closing = False
        self._per_client: Counter[str] = Counter()

    def start(self) -> None:
        """Start the writer and the workers (which first take up what a crash left)."""
        self.writer.start()
        self.dispatcher.start()

    def stop(self) -> None:
        """Finish the deliveries under way and flush (blocks: call it off the loop)."""
        self.dispatcher.stop()
        self.writer.close()
        self.queue.close()

    # Connections ----------------------------------------------------------------

    def admit(self, client: str) -> str | None:
        """Count a connection from *client* in; or the 421 that refuses it."""
        if self.closing:
            return SHUTTING_DOWN
        limit = self.limits.connections_per_client
        if limit and self._per_client[client] >= limit:
            log.warning("%s: over %d connections; refused", client, limit)
            return TOO_MANY_CONNECTIONS
        self._per_client[client] += 1
        return None

    def leave(self, client: str) -> None:
        """Count out a connection :meth:`admit` let in."""
        self._per_client[client] -= 1
        if self._per_client[client] <= 0:
            del self._per_client[client]

    # Transactions ---------------------------------------------------------------

    def recipient_refusal(self, address: str, taken: int, client: str) -> str | None:
        """Why RCPT *address* is refused (*taken* recipients so far), or None to take it."""
        if has_control(address):
            return BAD_ADDRESS
        limit = self.limits.recipients
        if limit and taken >= limit:
            return TOO_MANY_RECIPIENTS
        if not self.app.accepts(address):
            log.info("%s: refused recipient %r", client, address)
            return f"550 5.1.1 <{address}>: recipient rejected"
        return None

    async def accept(
        self,
        *,
        sender: str,
        recipients: Sequence[str],
        content: bytes,
        lines: int,
        refusal: str | None,
        peer: str | None,
        helo: str | None,
        with_: str,
    ) -> list[str]:
        """Check and store one message; the replies to send, one per recipient in LMTP.

        The 250 is returned only once the message and its envelope are on disk
        (fsync'd, unless the queue is not durable).
        """
        replies = len(recipients) if self.lmtp else 1
        if refusal is None:
            refusal = check_content(
                content,
                lines,
                header_size=self.limits.header_size,
                received_headers=self.limits.received_headers,
            )
        if refusal is not None:
            log.info("%s: message refused: %s", peer or "local", refusal)
            return [refusal] * replies
        unique = list(dict.fromkeys(recipients))
        trace = received_header(
            helo=helo, peer=peer, hostname=self.hostname, protocol=with_, recipients=unique
        )
        data = encode_stored(sender, unique, peer, trace + content)
        started = time.perf_counter()
        try:
            key = await asyncio.wrap_future(self.writer.store(data))
        except Exception as error:
            log.exception("cannot queue a message from %s", peer or "local")
            # RFC 3463 X.3.1, "mail system full": what Postfix says when its disk is.
            full = isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)
            return [QUEUE_FULL if full else QUEUE_FAILED] * replies
        self.accepted += 1
        self.dispatcher.notify(key)
        log.info(
            "%s: queued %s from <%s> for %d recipients (%.1f ms to disk)",
            peer or "local",
            key,
            sender,
            len(unique),
            (time.perf_counter() - started) * 1000,
        )
        if self.lmtp:
            return [f"250 2.1.5 <{r}> OK, queued as {key}" for r in recipients]
        return [f"250 2.0.0 OK, queued as {key}"]


def tls_context(
    certificate: str | Path | None, private_key: str | Path | None
) -> ssl.SSLContext | None:
    """A server TLS context for STARTTLS, when both files are given."""
    if certificate is None and private_key is None:
        return None
    if certificate is None or private_key is None:
        raise ValueError("STARTTLS needs both a certificate and a private key")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(certificate), str(private_key))
    return context


class LoopThread:
    """An asyncio event loop running in a thread of its own."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self) -> None:
        self._thread.start()

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run *coroutine* in the loop and wait for its result here."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join()
        self.loop.close()


def peer_text(peer: object) -> str | None:
    """``host:port`` of a TCP peer address; None for a UNIX socket's."""
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return None  # a UNIX socket's peer has no address


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    """Turn Nagle's algorithm off on a TCP connection."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        # Replies are small and must leave at once: Nagle would hold each one
        # back until the previous is acknowledged.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Service:
    """A server with ``async`` :meth:`open` and :meth:`close`, run in a running event
    loop, in a thread of its own (:meth:`start` / :meth:`stop`, or ``with``), or in
    the foreground until SIGTERM or SIGINT (:meth:`serve_forever`)."""

    _thread: LoopThread | None = None

    async def open(self) -> None:
        """Start listening."""
        raise NotImplementedError

    async def close(self, grace: float = 30.0) -> None:
        """Stop, giving work under way up to *grace* seconds to finish."""
        raise NotImplementedError

    def start(self) -> Self:
        """Serve from a thread of its own; returns once listening."""
        if self._thread is not None:
            raise RuntimeError(f"{self!r} is already running")
        self._thread = LoopThread(f"mailsim-{type(self).__name__.lower()}")
        self._thread.start()
        try:
            self._thread.call(self.open())
        except BaseException:
            self._thread.stop()
            self._thread = None
            raise
        return self

    def stop(self, grace: float = 10.0) -> None:
        """Undo :meth:`start` (see :meth:`close`)."""
        if self._thread is None:
            return
        try:
            self._thread.call(self.close(grace))
        finally:
            self._thread.stop()
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(
        self, grace: float = 30.0, ready: Callable[[Self], object] | None = None
    ) -> None:
        """Serve in the foreground until SIGTERM or SIGINT, then :meth:`close`.

        *ready* is called once listening (to write a pid file, say).
        """

        async def serve() -> None:
            loop = asyncio.get_running_loop()
            stop = asyncio.Event()
            for number in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(number, stop.set)
            await self.open()
            if ready is not None:
                ready(self)
            await stop.wait()
            log.info("%r: shutting down, finishing the work under way", self)
            await self.close(grace)

        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(serve())


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (a server in the foreground answers
    a fifth more messages a second on it), else None: the standard library's.
    ``MAILSIM_EVENT_LOOP=asyncio`` keeps the standard one even then."""
    if os.environ.get("MAILSIM_EVENT_LOOP", "").lower() == "asyncio":
        return None
    try:
        # Imported by name: an optional dependency, typed or not where it is found.
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return None
    return cast(Callable[[], asyncio.AbstractEventLoop], uvloop.new_event_loop)
