"""The one door mail leaves by.

Everything an application sends is handed to a :class:`Transport` as an
:class:`Envelope` plus the message bytes, and the transport answers with one
:class:`RecipientResult` per recipient. Production uses an SMTP/LMTP transport,
the simulated world its in-memory one, unit tests a :class:`FunctionTransport`;
every line above this interface is shared.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = [
    "Envelope",
    "FunctionTransport",
    "RecipientResult",
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
