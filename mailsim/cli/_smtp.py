"""The SMTP/LMTP client side of ``mailsim send``, ``sendmail`` and ``blast``.

:class:`Session` wraps :mod:`smtplib` at the level of single commands (MAIL, RCPT,
DATA) rather than ``sendmail()``, for three reasons: every recipient's answer is
kept (``sendmail()`` raises on the first failure), LMTP's one reply per recipient
after DATA is read (``smtplib.LMTP`` reads only the first and then falls out of
step), and a refused message leaves the connection clean for the next one
(``blast`` sends many over one connection).

Message bytes are always normalised to CRLF before they are handed to smtplib:
it dot-stuffs only lines that follow a LF, so a bare CR followed by "." would
reach the server unstuffed (SMTP smuggling).
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import click
from mailsim_runtime.config import Config
from mailsim_runtime.project import find_project
from mailsim_runtime.transport import normalise_line_ends

from mailsim.cli._common import fail, load_project_config, project_option

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "Outcome",
    "Server",
    "Session",
    "SessionError",
    "report_refusals",
    "resolve_server",
    "server_options",
]

#: Where mail goes when there is no project and no --host/--port: mailsim's own
#: receiver default.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8823


F = TypeVar("F", bound=Callable[..., object])


@dataclass(frozen=True)
class Server:
    """Where to send: a TCP host and port, or (LMTP only) a UNIX socket."""

    host: str
    port: int
    lmtp: bool = False
    socket: Path | None = None

    def __str__(self) -> str:
        where = str(self.socket) if self.socket is not None else f"{self.host}:{self.port}"
        return f"{where} (LMTP)" if self.lmtp else where


@dataclass
class Outcome:
    """What the server said to one message: who it was accepted for, who refused."""

    accepted: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # recipient -> "550 5.1.1 why"


class SessionError(Exception):
    """The conversation with the server broke down (not a refused message)."""


def server_options(function: F) -> F:
    """The options that choose the server: --host, --port, --protocol and --project."""
    decorators = [
        click.option(
            "--host",
            default=None,
            help=f"The server's host (default: the project's receiver, else {DEFAULT_HOST}).",
        ),
        click.option(
            "--port",
            type=click.IntRange(1, 65535),
            default=None,
            help=f"The server's port (default: the project's receiver, else {DEFAULT_PORT}).",
        ),
        click.option(
            "--protocol",
            type=click.Choice(["smtp", "lmtp"]),
            default=None,
            help="Speak SMTP or LMTP (default: the project receiver's, when sending to it; "
            "else smtp).",
        ),
        project_option,
    ]
    for decorate in reversed(decorators):
        function = decorate(function)
    return function


def resolve_server(
    project: Path | None, host: str | None, port: int | None, protocol: str | None
) -> Server:
    """The server the options name.

    With neither --host nor --port, the project's receiver (its host, port,
    protocol and socket) when a project is found, else mailsim's default port on
    loopback. Either option sends elsewhere, by SMTP unless --protocol says LMTP.
    """
    config: Config | None = None
    if project is not None or find_project(Path.cwd()) is not None:
        config = load_project_config(project)
    if config is not None and host is None and port is None:
        receiver = config.receiver
        lmtp = receiver.protocol == "lmtp" if protocol is None else protocol == "lmtp"
        return Server(
            _connectable(receiver.host),
            receiver.port,
            lmtp=lmtp,
            socket=receiver.socket if lmtp else None,
        )
    default_host = DEFAULT_HOST if config is None else config.receiver.host
    default_port = DEFAULT_PORT if config is None else config.receiver.port
    chosen = host if host is not None else _connectable(default_host)
    return Server(chosen, port or default_port, lmtp=protocol == "lmtp")


def _connectable(host: str) -> str:
    """A receiver listening on every address is reached on loopback."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    return "::1" if host == "::" else host


def _reply(code: int, text: bytes | str) -> str:
    words = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return f"{code} {' '.join(words.split())}".strip()


class Session:
    """One connection to a server, over which any number of messages are sent.

    Connection problems become :class:`SessionError` with a one-line reason;
    refusals are reported in each message's :class:`Outcome`.
    """

    def __init__(
        self,
        server: Server,
        *,
        starttls: bool = False,
        debug: bool = False,
        timeout: float = 30.0,
    ) -> None:
        self.server = server
        self.starttls = starttls
        self.debug = debug
        self.timeout = timeout
        self._client: smtplib.SMTP | None = None

    def __enter__(self) -> Session:
        self.open()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:
        """Connect, greet (EHLO/LHLO) and, if asked, start TLS."""
        server = self.server
        # gethostname, not smtplib's default getfqdn: the latter asks DNS and can
        # stall for seconds on a machine without a resolver.
        client_class = smtplib.LMTP if server.lmtp else smtplib.SMTP
        client = client_class(local_hostname=socket.gethostname(), timeout=self.timeout)
        if self.debug:
            client.set_debuglevel(1)
        # STARTTLS checks the certificate against the name the constructor was
        # given; connecting after construction (to show the greeting in --debug)
        # has to say it.
        client._host = server.host  # type: ignore[attr-defined]
        try:
            if server.socket is not None:
                client.connect(str(server.socket.resolve()))
            else:
                client.connect(server.host, server.port)
            client.ehlo_or_helo_if_needed()
        except smtplib.SMTPConnectError as error:
            raise SessionError(
                f"{server} refused the connection: {_reply(error.smtp_code, error.smtp_error)}"
            ) from None
        except smtplib.SMTPHeloError as error:
            client.close()
            raise SessionError(
                f"{server} refused the greeting: {_reply(error.smtp_code, error.smtp_error)}"
            ) from None
        except smtplib.SMTPServerDisconnected:
            client.close()
            raise SessionError(f"{server} closed the connection before greeting") from None
        except OSError as error:
            client.close()
            reason = error.strerror or str(error) or type(error).__name__
            raise SessionError(f"cannot connect to {server}: {reason}") from None
        if self.starttls:
            self._start_tls(client)
        self._client = client

    def _start_tls(self, client: smtplib.SMTP) -> None:
        if not client.has_extn("starttls"):
            client.close()
            raise SessionError(f"{self.server} does not offer STARTTLS")
        try:
            # The system's trusted certificates; SSL_CERT_FILE adds a test CA.
            code, text = client.starttls(context=ssl.create_default_context())
        except ssl.SSLCertVerificationError as error:
            client.close()
            raise SessionError(
                f"STARTTLS with {self.server}: certificate not trusted ({error.verify_message})"
            ) from None
        except (ssl.SSLError, OSError, smtplib.SMTPException) as error:
            client.close()
            raise SessionError(f"STARTTLS with {self.server} failed: {error}") from None
        if code != 220:
            client.close()
            raise SessionError(f"{self.server} refused STARTTLS: {_reply(code, text)}")
        try:
            # Everything learnt before TLS is forgotten (RFC 3207): greet again.
            client.ehlo_or_helo_if_needed()
        except (smtplib.SMTPException, OSError) as error:
            client.close()
            raise SessionError(
                f"{self.server} refused the greeting after STARTTLS: {error}"
            ) from None

    def close(self) -> None:
        """Say QUIT (politely, ignoring a server that is already gone) and disconnect."""
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()

    def reconnect(self) -> None:
        """Drop the connection (if any) and make a new one."""
        if self._client is not None:
            self._client.close()
            self._client = None
        self.open()

    def send(self, sender: str, recipients: list[str], message: bytes) -> Outcome:
        """One mail transaction: MAIL, RCPT for each recipient, DATA.

        Raises :class:`smtplib.SMTPServerDisconnected` when the connection is lost,
        so a caller sending many can reconnect and try again.
        """
        client = self._client
        if client is None:
            raise SessionError("not connected")
        data = normalise_line_ends(message)
        outcome = Outcome()
        addresses = [sender, *recipients]
        if not all(a.isascii() for a in addresses) and not client.has_extn("smtputf8"):
            # smtplib would fail to encode the command; say what is missing instead.
            why = "a non-ASCII address needs SMTPUTF8, which the server does not offer"
            outcome.refused = dict.fromkeys(recipients, why)
            return outcome
        code, text = client.mail(sender, self._mail_options(client, sender, recipients, data))
        if code != 250:
            refusal = f"sender <{sender}> refused: {_reply(code, text)}"
            outcome.refused = dict.fromkeys(recipients, refusal)
            client.rset()
            return outcome
        for recipient in recipients:
            code, text = client.rcpt(recipient)
            if code in (250, 251):
                outcome.accepted.append(recipient)
            else:
                outcome.refused[recipient] = _reply(code, text)
        if not outcome.accepted:
            client.rset()
            return outcome
        try:
            code, text = client.data(data)
        except smtplib.SMTPDataError as error:  # DATA itself refused (no 354)
            for recipient in outcome.accepted:
                outcome.refused[recipient] = _reply(error.smtp_code, error.smtp_error)
            outcome.accepted = []
            client.rset()
            return outcome
        replies = [(code, text)]
        if self.server.lmtp:
            # LMTP answers DATA once per accepted recipient, in RCPT order.
            replies += [client.getreply() for _ in outcome.accepted[1:]]
        else:
            replies *= len(outcome.accepted)
        accepted = []
        for recipient, (code, text) in zip(outcome.accepted, replies, strict=True):
            if code == 250:
                accepted.append(recipient)
            else:
                outcome.refused[recipient] = _reply(code, text)
        outcome.accepted = accepted
        return outcome

    @staticmethod
    def _mail_options(
        client: smtplib.SMTP, sender: str, recipients: list[str], data: bytes
    ) -> list[str]:
        if not client.does_esmtp:
            return []
        options = []
        if client.has_extn("size"):
            options.append(f"SIZE={len(data)}")
        if client.has_extn("8bitmime") and not data.isascii():
            options.append("BODY=8BITMIME")
        if client.has_extn("smtputf8") and not all(a.isascii() for a in [sender, *recipients]):
            options.append("SMTPUTF8")  # smtplib then sends the commands in UTF-8
        return options


def report_refusals(outcome: Outcome, server: Server) -> None:
    """Fail (exit 1) naming each refused recipient, unless none was refused."""
    if not outcome.refused:
        return
    if len(outcome.refused) == 1:
        [(recipient, why)] = outcome.refused.items()
        fail(f"{server} refused {recipient}: {why}")
    for recipient, why in outcome.refused.items():
        click.echo(f"refused {recipient}: {why}", err=True)
    total = len(outcome.refused) + len(outcome.accepted)
    fail(f"{server} refused {len(outcome.refused)} of {total} recipients")
