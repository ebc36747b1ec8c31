"""The live driver's SMTP side: where things are, the sink, the probes, and what can fail.

Mail is handed over with :mod:`smtplib`; the sink that catches the server's replies is
the runtime's ``SmtpSink``, looked up by name when a live run starts, so that this
package never imports ``aiosmtpd`` itself.
"""

from __future__ import annotations

import importlib
import re
import smtplib
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, cast

from mailsim.spec.relay import Probe, RelayReport, relay_probes, run_relay_probes

__all__ = [
    "Endpoint",
    "LiveError",
    "MailSink",
    "NotObservableLive",
    "NotPossibleLive",
    "SunkMessage",
    "hand_over",
    "open_sink",
    "probe_relay",
]


class NotPossibleLive(Exception):
    """A step needs something only the simulated world can do; the reason says what."""


class NotObservableLive(NotPossibleLive):
    """A step needs to see inside the server, and this run cannot (no ``--state-url``)."""


class LiveError(AssertionError):
    """Talking to the live server went wrong (it refused the connection, say)."""


@dataclass(frozen=True)
class Endpoint:
    """A host and a port: where the server listens, or where the sink should."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        """``HOST:PORT`` (``[::1]:25`` for IPv6) → an Endpoint, or a ValueError saying why not."""
        found = re.fullmatch(
            r"\[(?P<v6>[^\]]+)\]:(?P<p6>\d+)|(?P<host>[^:\s]+):(?P<port>\d+)", text
        )
        if found is None:
            raise ValueError(f"expected HOST:PORT, such as 127.0.0.1:8823, got {text!r}")
        host = found.group("v6") or found.group("host")
        port = int(found.group("p6") or found.group("port"))
        if not 0 <= port <= 65535:
            raise ValueError(f"{text}: a port is a number from 0 to 65535")
        return cls(host, port)


class SunkMessage(Protocol):
    """One message a sink caught: its envelope and its bytes."""

    @property
    def sender(self) -> str: ...
    @property
    def recipients(self) -> Sequence[str]: ...
    @property
    def data(self) -> bytes: ...


class MailSink(Protocol):
    """An SMTP server that keeps what it is given: the server under test's smart host."""

    @property
    def port(self) -> int: ...
    @property
    def messages(self) -> Sequence[SunkMessage]: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...


def open_sink(endpoint: Endpoint) -> MailSink:
    """Start the runtime's SMTP sink at *endpoint* (port 0: any free port)."""
    # Imported by name, at run time: the sink lives in the one module that imports
    # aiosmtpd, and only a live run needs it.
    try:
        sink_class = importlib.import_module("mailsim_runtime.server").SmtpSink
    except (ImportError, AttributeError) as error:
        raise LiveError(
            "--live needs the runtime's SMTP sink (mailsim_runtime.server.SmtpSink) to catch "
            f"the server's replies, and this installation has none: {error}"
        ) from error
    sink = cast(MailSink, sink_class(endpoint.host, port=endpoint.port))
    try:
        sink.start()
    except OSError as error:
        raise LiveError(f"cannot listen for the server's replies on {endpoint}: {error}") from error
    return sink


def hand_over(
    server: Endpoint, sender: str, recipients: Sequence[str], data: bytes, *, timeout: float
) -> dict[str, tuple[int, bytes]]:
    """Send *data* to *server* over SMTP; the recipients it refused, with its answers."""
    try:
        with smtplib.SMTP(server.host, server.port, timeout=timeout) as smtp:
            return dict(smtp.sendmail(sender, list(recipients), data))
    except smtplib.SMTPRecipientsRefused as error:
        return dict(error.recipients)
    except (smtplib.SMTPException, OSError) as error:
        raise LiveError(
            f"could not hand {sender}'s mail to the server at {server}: {error}"
        ) from error


def probe_relay(server: Endpoint, hostname: str, *, timeout: float = 10.0) -> RelayReport:
    """The 16 open-relay probes over SMTP against *server* (whose name is *hostname*).

    Commands are written raw (``MAIL FROM:<…>``), because smtplib's own ``mail()``
    would "fix" the malformed addresses the probes are made of.
    """
    try:
        ip = socket.gethostbyname(server.host)
    except OSError:
        ip = server.host
    connection: smtplib.SMTP | None = None

    def connect() -> smtplib.SMTP:
        smtp = smtplib.SMTP(server.host, server.port, timeout=timeout)
        smtp.ehlo("relay-probe.mailsim.invalid")
        return smtp

    def try_probe(probe: Probe) -> tuple[bool, str]:
        nonlocal connection
        for attempt in (1, 2):
            try:
                if connection is None:
                    connection = connect()
                connection.docmd("RSET")
                code, text = connection.docmd("MAIL", f"FROM:<{probe.sender}>")
                if code >= 400:
                    return True, f"{code} {text.decode(errors='replace')} (at MAIL)"
                code, text = connection.docmd("RCPT", f"TO:<{probe.recipient}>")
                return code >= 400, f"{code} {text.decode(errors='replace')}"
            except smtplib.SMTPServerDisconnected:
                connection = None  # some servers hang up after refusals: ask again
                if attempt == 2:
                    return True, "the server closed the connection"
            except OSError as error:
                raise LiveError(f"cannot probe {server} for open relaying: {error}") from error
        return True, "the server closed the connection"

    try:
        return run_relay_probes(relay_probes(hostname, ip), try_probe)
    finally:
        if connection is not None:
            try:
                connection.quit()
            except (smtplib.SMTPException, OSError):
                connection.close()
