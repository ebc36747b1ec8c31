"""The one door mail leaves by.

Everything an application sends is handed to a :class:`Transport` as an
:class:`Envelope` plus the message bytes, and the transport answers with one
:class:`RecipientResult` per recipient. Production uses :class:`SmtpTransport` or
:class:`LmtpTransport`, the simulated world its in-memory one, unit tests a
:class:`FunctionTransport`; every line above this interface is shared.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import ssl as _ssl
from collections.abc import Callable, Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol, runtime_checkable

import aiosmtplib

from mailsim_runtime.mx import LookupFailed, MailHost, Resolver, mail_hosts

__all__ = [
    "Envelope",
    "FunctionTransport",
    "LmtpTransport",
    "RecipientResult",
    "SmtpTransport",
    "Transport",
    "normalise_line_ends",
]


@dataclass(frozen=True)
class Envelope:
    """Who a message is from and to, as SMTP's MAIL FROM and RCPT TO say it."""

    sender: str
    recipients: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.recipients:
            raise ValueError("an envelope needs at least one recipient")


@dataclass(frozen=True)
class RecipientResult:
    """The receiving server's answer for one recipient."""

    recipient: str
    code: int
    text: str = ""
    remote: str = ""

    @property
    def accepted(self) -> bool:
        return 200 <= self.code < 300

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500

    @property
    def permanent(self) -> bool:
        return self.code >= 500

    def __str__(self) -> str:
        return f"{self.recipient}: {self.code} {self.text}".rstrip()


@runtime_checkable
class Transport(Protocol):
    def deliver(self, envelope: Envelope, message: bytes) -> dict[str, RecipientResult]:
        """Hand *message* over for every envelope recipient; one result each.

        A transport answers for each recipient instead of raising: a host that
        cannot be reached is a temporary (4xx) result, not an exception.
        """
        ...


def normalise_line_ends(message: bytes) -> bytes:
    """Every line ending as CRLF: no bare CR or LF leaves the application."""
    return message.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


DeliverFunction = Callable[[Envelope, bytes], Mapping[str, RecipientResult] | None]


@dataclass
class Sent:
    envelope: Envelope
    message: bytes


@dataclass
class FunctionTransport:
    """A transport that calls a function, and remembers what was sent.

    The function may return per-recipient results; returning ``None`` accepts
    every recipient with 250. With no function, everything is accepted.
    """

    function: DeliverFunction | None = None
    sent: list[Sent] = field(default_factory=list)

    def deliver(self, envelope: Envelope, message: bytes) -> dict[str, RecipientResult]:
        message = normalise_line_ends(message)
        self.sent.append(Sent(envelope, message))
        answered = self.function(envelope, message) if self.function else None
        results = dict(answered or {})
        for recipient in envelope.recipients:
            results.setdefault(recipient, RecipientResult(recipient, 250, "2.0.0 OK"))
        return results

    def messages_to(self, recipient: str) -> Sequence[bytes]:
        return [s.message for s in self.sent if recipient in s.envelope.recipients]


# The real transports ---------------------------------------------------------------
#
# SmtpTransport and LmtpTransport speak to real servers through aiosmtplib. The
# Transport interface is synchronous (the relay calls it from handler and runner
# threads), so each deliver() runs its own coroutine on a private event loop made
# for that call (asyncio.run). A loop costs well under a millisecond against a
# network round trip; in exchange nothing is shared between threads, no loop
# outlives its call and no thread needs a loop of its own set up or torn down.

log = logging.getLogger("mailsim.transport")

_STUFF = re.compile(rb"(?m)^\.")
_ADDRESS_FORBIDDEN = re.compile(r"[\x00-\x20\x7f<>]")
_REPLY_LIMIT = 64 * 1024  # a reply longer than this is a broken or hostile server


class _SessionFailed(Exception):
    """The session ended before any recipient was answered: another host may do."""

    def __init__(self, code: int, text: str, remote: str, *, tls: bool = False) -> None:
        super().__init__(f"{code} {text}")
        self.code = code
        self.text = text
        self.remote = remote
        self.tls = tls  # the failure was TLS's: worth one more try in the clear


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _run(coroutine: Coroutine[Any, Any, dict[str, RecipientResult]]) -> dict[str, RecipientResult]:
    """Run *coroutine* to its end on a private event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    # Called on a thread that is running an event loop (a handler run on the
    # server's loop by mistake): a nested asyncio.run would raise, so the
    # delivery gets a thread of its own. It still blocks that loop meanwhile.
    log.warning("a transport was called from inside an event loop; that loop waits for it")
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


class _ReplyReader(asyncio.Protocol):
    """Collects the replies that follow an LMTP message, however they are packed.

    aiosmtplib reads one reply per command it sends; after LMTP's final dot the
    server sends one reply per recipient, often in a single segment, so the
    connection is handed to this protocol for that part of the session.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._lines: list[str] = []
        self._replies: asyncio.Queue[tuple[int, str] | None] = asyncio.Queue()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) > _REPLY_LIMIT:
            self._buffer.clear()
            self._replies.put_nowait(None)
            return
        while (end := self._buffer.find(b"\n")) >= 0:
            line = bytes(self._buffer[: end + 1]).rstrip(b"\r\n").decode("utf-8", "replace")
            del self._buffer[: end + 1]
            self._lines.append(line[4:])
            if line[3:4] == "-":
                continue  # a continuation line: the reply goes on
            code = int(line[:3]) if line[:3].isdigit() else 0
            self._replies.put_nowait((code, " ".join(self._lines).strip()))
            self._lines = []

    def connection_lost(self, exc: Exception | None) -> None:
        self._replies.put_nowait(None)

    def eof_received(self) -> bool:
        self._replies.put_nowait(None)
        return False

    async def reply(self, timeout: float) -> tuple[int, str] | None:
        """The next reply, or None once the connection is gone."""
        return await asyncio.wait_for(self._replies.get(), timeout)


class SmtpTransport:
    """Delivers over SMTP, to a smart host or straight to each domain's MX hosts.

    Smart-host mode (no *resolver*): every message goes to *host*:*port*, with
    STARTTLS (*starttls*, mandatory and verified when set) or implicit TLS
    (*ssl*), and AUTH when *username* is given. *tls_context* replaces the
    default (system certificate authorities, host name checked).

    Direct mode (a :class:`~mailsim_runtime.mx.Resolver`): recipients are grouped
    by domain and each group goes to that domain's mail hosts on *port* (25 in
    production), in MX order, until one answers. STARTTLS is used whenever a
    server offers it, without checking certificates (as MTAs do without DANE or
    MTA-STS), falling back to the clear if the handshake fails; *starttls*
    makes it mandatory instead.

    :meth:`deliver` never raises: whatever goes wrong becomes a result per
    recipient, temporary (4xx) unless the server refused the message or a
    recipient with a 5xx reply, or the domain takes no mail at all.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 25,
        *,
        resolver: Resolver | None = None,
        starttls: bool = False,
        ssl: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout: float | timedelta = 60.0,
        local_hostname: str | None = None,
        tls_context: _ssl.SSLContext | None = None,
        max_hosts: int = 5,
    ) -> None:
        if starttls and ssl:
            raise ValueError("choose STARTTLS or implicit TLS (ssl), not both")
        if resolver is not None and (ssl or username):
            raise ValueError("direct (MX) delivery uses neither implicit TLS nor AUTH")
        self.host = host
        self.port = port
        self.resolver = resolver
        self.starttls = starttls
        self.ssl = ssl
        self.username = username
        self.password = password
        self.timeout = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
        self.local_hostname = local_hostname or socket.gethostname()
        self.max_hosts = max_hosts
        if tls_context is None:
            tls_context = _ssl.create_default_context()
            if resolver is not None:
                # Opportunistic TLS between MTAs: encrypt, but any certificate will do.
                tls_context.check_hostname = False
                tls_context.verify_mode = _ssl.CERT_NONE
        self.tls_context = tls_context

    def __repr__(self) -> str:
        mode = "mx" if self.resolver is not None else f"smarthost {self.host}"
        return f"<{type(self).__name__} {mode}:{self.port}>"

    def deliver(self, envelope: Envelope, message: bytes) -> dict[str, RecipientResult]:
        """Hand *message* (line ends made CRLF first) to the servers; one result each."""
        data = normalise_line_ends(message)
        if not data.endswith(b"\r\n"):
            data += b"\r\n"
        try:
            return _run(self._deliver(envelope, data))
        except Exception as error:  # a bug here must not lose the message: retry it
            log.exception("%r failed unexpectedly", self)
            return {
                recipient: RecipientResult(recipient, 451, f"4.3.0 internal error: {error!r}")
                for recipient in envelope.recipients
            }

    async def _deliver(self, envelope: Envelope, data: bytes) -> dict[str, RecipientResult]:
        recipients = list(dict.fromkeys(envelope.recipients))
        if self.resolver is None:
            return await self._try(
                [MailHost(self.host, self.host)], envelope.sender, recipients, data
            )
        results: dict[str, RecipientResult] = {}
        by_domain: dict[str, list[str]] = {}
        for recipient in recipients:
            local, at, domain = recipient.rpartition("@")
            if not (local and at and domain):
                results[recipient] = RecipientResult(
                    recipient, 553, "5.1.3 the address has no domain to deliver to"
                )
            else:
                by_domain.setdefault(domain.lower(), []).append(recipient)
        groups = [
            self._deliver_domain(domain, envelope.sender, group, data)
            for domain, group in by_domain.items()
        ]
        for answered in await asyncio.gather(*groups):
            results.update(answered)
        return results

    async def _deliver_domain(
        self, domain: str, sender: str, recipients: list[str], data: bytes
    ) -> dict[str, RecipientResult]:
        assert self.resolver is not None
        try:
            # The resolver is synchronous; a thread keeps the other domains going.
            hosts = await asyncio.to_thread(mail_hosts, self.resolver, domain, limit=self.max_hosts)
        except LookupFailed as failure:
            return {r: RecipientResult(r, failure.code, str(failure)) for r in recipients}
        return await self._try(hosts, sender, recipients, data)

    async def _try(
        self, hosts: list[MailHost], sender: str, recipients: list[str], data: bytes
    ) -> dict[str, RecipientResult]:
        """Deliver through the first of *hosts* that holds a session to the end."""
        failure = _SessionFailed(451, "4.4.4 no host to try", "")
        for host in hosts:
            try:
                return await self._session(host, sender, recipients, data, tls=True)
            except _SessionFailed as failed:
                failure = failed
            if failure.tls and self.resolver is not None and not self.starttls:
                log.info("%s: TLS failed (%s); trying again in the clear", host.name, failure)
                try:
                    return await self._session(host, sender, recipients, data, tls=False)
                except _SessionFailed as failed:
                    failure = failed
            log.info("%s[%s]: %s", host.name, host.address, failure)
        return {
            r: RecipientResult(r, failure.code, failure.text, failure.remote) for r in recipients
        }

    async def _hello(self, client: aiosmtplib.SMTP) -> None:
        try:
            await client.ehlo()
        except aiosmtplib.SMTPHeloError:
            await client.helo()

    def _mail_options(
        self, client: aiosmtplib.SMTP, sender: str, recipients: list[str], data: bytes
    ) -> list[bytes] | RecipientResult:
        """MAIL FROM parameters, or why the server cannot take the message at all."""
        options: list[bytes] = []
        size = client.esmtp_extensions.get("size", "").strip()
        if size.isdigit() and int(size) and len(data) > int(size):
            return RecipientResult("", 552, f"5.3.4 the message is over the server's {size} bytes")
        if size:
            options.append(f"SIZE={len(data)}".encode("ascii"))
        if not data.isascii() and client.supports_extension("8bitmime"):
            options.append(b"BODY=8BITMIME")
        if all(address.isascii() for address in [sender, *recipients]):
            return options
        if client.supports_extension("smtputf8"):
            return [*options, b"SMTPUTF8"]
        if not sender.isascii():
            return RecipientResult("", 553, "5.6.7 the server takes no non-ASCII addresses")
        return options  # the non-ASCII recipients are refused one by one

    async def _session(
        self, host: MailHost, sender: str, recipients: list[str], data: bytes, *, tls: bool
    ) -> dict[str, RecipientResult]:
        """One session with *host*: the results, or :class:`_SessionFailed` before any."""
        where = f"{host.name}:{self.port}"
        if host.address != host.name:
            where = f"{host.name}[{host.address}]:{self.port}"
        client = await self._open(host, where, tls=tls)
        try:
            return await self._transaction(client, host.name, where, sender, recipients, data)
        finally:
            client.close()

    async def _open(self, host: MailHost, where: str, *, tls: bool) -> aiosmtplib.SMTP:
        """A connected, greeted (and as configured, encrypted and logged-in) client."""
        client = aiosmtplib.SMTP(
            hostname=host.address,
            port=self.port,
            local_hostname=self.local_hostname,
            timeout=self.timeout,
            use_tls=self.ssl,
            start_tls=False,  # done by hand below, so LMTP can greet with LHLO again
            tls_context=self.tls_context,
        )
        stage = "connecting to"
        try:
            await client.connect()
            stage = "greeting"
            await self._hello(client)
            secure = self.ssl or client.get_transport_info("sslcontext") is not None
            if not secure and (self.starttls or (tls and self.resolver is not None)):
                if client.supports_extension("starttls"):
                    stage = "STARTTLS with"
                    await client.starttls(server_hostname=host.name, tls_context=self.tls_context)
                    stage = "greeting"
                    await self._hello(client)
                elif self.starttls:
                    text = f"4.7.10 {where} does not offer STARTTLS, which is required"
                    raise _SessionFailed(451, text, host.name)
            if self.username is not None:
                stage = "authenticating to"
                await client.login(self.username, self.password or "")
        except _SessionFailed:
            client.close()
            raise
        except Exception as error:
            client.close()
            raise self._failure(error, stage, where, host.name) from None
        return client

    async def _transaction(
        self,
        client: aiosmtplib.SMTP,
        remote: str,
        where: str,
        sender: str,
        recipients: list[str],
        data: bytes,
    ) -> dict[str, RecipientResult]:
        """MAIL, RCPT for each recipient, DATA: a result for every recipient."""

        def every(code: int, text: str, who: list[str]) -> dict[str, RecipientResult]:
            return {r: RecipientResult(r, code, _one_line(text), remote) for r in who}

        if _ADDRESS_FORBIDDEN.search(sender):
            await _quit(client)
            return every(553, "5.1.7 the sender is not a valid address", recipients)
        options = self._mail_options(client, sender, recipients, data)
        if isinstance(options, RecipientResult):
            await _quit(client)
            return every(options.code, options.text, recipients)
        utf8 = b"SMTPUTF8" in options
        try:
            reply = await client.execute_command(
                b"MAIL", b"FROM:<" + sender.encode("utf-8") + b">", *options
            )
        except Exception as error:
            raise self._failure(error, "MAIL FROM at", where, remote) from None
        if reply.code >= 500:
            await _quit(client)
            return every(reply.code, reply.message, recipients)
        if reply.code != 250:
            text = f"4.4.0 {where} answered MAIL FROM with {reply.code} {reply.message}"
            raise _SessionFailed(451, _one_line(text), remote)
        results: dict[str, RecipientResult] = {}
        try:
            accepted: list[str] = []
            for recipient in recipients:
                if _ADDRESS_FORBIDDEN.search(recipient):
                    results.update(every(553, "5.1.3 not a valid address", [recipient]))
                    continue
                if not (utf8 or recipient.isascii()):
                    refusal = "5.6.7 the server takes no non-ASCII addresses"
                    results.update(every(553, refusal, [recipient]))
                    continue
                address = recipient.encode("utf-8")
                reply = await client.execute_command(b"RCPT", b"TO:<" + address + b">")
                if reply.code in (250, 251):
                    accepted.append(recipient)
                else:
                    results.update(every(reply.code, reply.message, [recipient]))
            if accepted:
                replies = await self._data(client, data, len(accepted))
                for recipient, (code, text) in zip(accepted, replies, strict=False):
                    results.update(every(code, text, [recipient]))
            await _quit(client)
        except Exception as error:
            failure = self._failure(error, "the transaction with", where, remote)
            results.update(every(451, failure.text, [r for r in recipients if r not in results]))
        # Replies already given stand (a 250 is a delivery); the rest are in doubt.
        lost = f"4.4.2 {where} hung up before answering for this recipient"
        results.update(every(451, lost, [r for r in recipients if r not in results]))
        return results

    async def _data(
        self, client: aiosmtplib.SMTP, data: bytes, accepted: int
    ) -> list[tuple[int, str]]:
        """Send the message; the reply that covers every accepted recipient."""
        try:
            reply = await client.data(data)
        except aiosmtplib.SMTPDataError as refused:
            return [(refused.code, refused.message)] * accepted
        return [(reply.code, reply.message)] * accepted

    def _failure(self, error: Exception, stage: str, where: str, remote: str) -> _SessionFailed:
        """A temporary failure that says what went wrong, and where."""
        cause = error.__cause__ or error.__context__
        if isinstance(error, aiosmtplib.SMTPResponseException):
            detail = f"{error.code} {_one_line(error.message)}"
        else:
            detail = _one_line(str(error)) or type(error).__name__
        tls_error = next((e for e in (error, cause) if isinstance(e, _ssl.SSLError)), None)
        if tls_error is not None or stage == "STARTTLS with":
            # A handshake the server aborts shows up as a reset, not an SSLError.
            text = f"4.7.5 TLS failed {stage} {where}: {_one_line(str(tls_error or detail))}"
            return _SessionFailed(454, text, remote, tls=True)
        if isinstance(error, TimeoutError):
            return _SessionFailed(451, f"4.4.2 timed out {stage} {where}", remote)
        status = {"connecting to": "4.4.1", "authenticating to": "4.7.0"}.get(stage, "4.4.2")
        return _SessionFailed(451, f"{status} {stage} {where} failed: {detail}", remote)


class LmtpTransport(SmtpTransport):
    """Delivers over LMTP (RFC 2033) to one server, e.g. a mailbox store.

    The session greets with LHLO, and after the message the server answers once
    per accepted recipient; each answer becomes that recipient's result.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 24, **options: Any) -> None:
        if options.get("resolver") is not None:
            raise ValueError("LMTP goes to one server: it has no MX (direct) mode")
        super().__init__(host, port, **options)

    async def _hello(self, client: aiosmtplib.SMTP) -> None:
        reply = await client.execute_command(b"LHLO", self.local_hostname.encode("ascii"))
        if reply.code != 250:
            raise aiosmtplib.SMTPHeloError(reply.code, reply.message)
        client.last_ehlo_response = reply  # aiosmtplib reads the extensions from it

    async def _data(
        self, client: aiosmtplib.SMTP, data: bytes, accepted: int
    ) -> list[tuple[int, str]]:
        reply = await client.execute_command(b"DATA")
        if reply.code != 354:
            return [(reply.code, reply.message)] * accepted
        connection = client.transport
        assert isinstance(connection, asyncio.WriteTransport)
        reader = _ReplyReader()
        connection.set_protocol(reader)
        connection.write(_STUFF.sub(b"..", data) + b".\r\n")
        replies: list[tuple[int, str]] = []
        for _ in range(accepted):
            try:
                reply_or_none = await reader.reply(self.timeout)
            except TimeoutError:
                reply_or_none = None
            if reply_or_none is None:
                break  # the replies given stand; the rest are left undecided
            code, text = reply_or_none
            replies.append((code, text) if code else (451, f"4.5.0 unintelligible reply: {text}"))
        # aiosmtplib no longer hears this connection, so it cannot say QUIT itself.
        if not connection.is_closing():
            connection.write(b"QUIT\r\n")
            connection.close()
        return replies


async def _quit(client: aiosmtplib.SMTP) -> None:
    """Say goodbye politely; a server that hangs up first loses nothing of ours."""
    with contextlib.suppress(Exception):
        await client.quit()
