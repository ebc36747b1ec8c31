"""Outbound mail: queue first, deliver, retry with backoff, bounce when the lifetime ends.

Every message is put in an :class:`Outbox` before the first attempt. A temporary
failure (4xx) is retried on a :class:`RetryPolicy` schedule read off the app's
clock; a permanent failure (5xx), or a temporary one that outlives the policy's
lifetime, sends the envelope sender an RFC 3464 report from the null sender. A
bounce is never bounced: when a report itself cannot be delivered, it is kept in
the outbox's ``failed`` list and logged, not dropped.

:meth:`Relay.reply` applies RFC 3834 before answering anything automatically.
"""

from __future__ import annotations

import email.policy
import itertools
import logging
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, make_msgid
from typing import Protocol

from mailsim_runtime.clock import Clock, SystemClock
from mailsim_runtime.dsn import FailedRecipient, build_dsn
from mailsim_runtime.mail import MailRequest, MailResponse
from mailsim_runtime.transport import Envelope, RecipientResult, Transport

__all__ = [
    "MemoryOutbox",
    "Outbox",
    "Outgoing",
    "Relay",
    "RetryPolicy",
    "auto_reply_refusal",
]

log = logging.getLogger("mailsim.relay")

_WIRE = email.policy.SMTP
_ENHANCED_STATUS = re.compile(r"\b[245]\.\d{1,3}\.\d{1,3}\b")
_BULK_PRECEDENCE = {"bulk", "list", "junk"}
_LIST_HEADERS = (
    "List-Id",
    "List-Help",
    "List-Subscribe",
    "List-Unsubscribe",
    "List-Post",
    "List-Owner",
    "List-Archive",
)


def auto_reply_refusal(message: MailRequest) -> str | None:
    """Why RFC 3834 forbids an automatic reply to *message*, or None if it allows one."""
    if not message.sender:
        return "the envelope sender is null (<>): never answer a bounce"
    auto_submitted = (message["Auto-Submitted"] or "no").split(";")[0].strip().lower()
    if auto_submitted != "no":
        return f"it is Auto-Submitted: {auto_submitted}"
    precedence = (message["Precedence"] or "").strip().lower()
    if precedence in _BULK_PRECEDENCE:
        return f"it has Precedence: {precedence}"
    for name in _LIST_HEADERS:
        if name in message:
            return f"it comes from a mailing list ({name})"
    return None


@dataclass(frozen=True)
class RetryPolicy:
    """When to try again: *first* after the first failure, multiplied by *factor*
    each time up to *longest*, giving up once *lifetime* has passed since queueing."""

    first: timedelta = timedelta(minutes=5)
    factor: float = 2.0
    longest: timedelta = timedelta(hours=4)
    lifetime: timedelta = timedelta(days=5)

    def delay(self, attempts: int) -> timedelta:
        """The wait after the *attempts*-th failed attempt (1 for the first)."""
        delay = self.first * (self.factor ** max(attempts - 1, 0))
        return min(delay, self.longest)


@dataclass
class Outgoing:
    """One queued message and what is left of its envelope."""

    id: str
    envelope: Envelope
    message: bytes
    queued_at: datetime
    next_attempt: datetime
    attempts: int = 0
    pending: tuple[str, ...] = ()
    results: dict[str, RecipientResult] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return not self.pending


class Outbox(Protocol):
    """Where outgoing mail waits. The durable one lives on disk (see :mod:`queue`)."""

    failed: list[Outgoing]

    def add(self, item: Outgoing) -> None: ...
    def update(self, item: Outgoing) -> None: ...
    def remove(self, item_id: str) -> None: ...
    def items(self) -> list[Outgoing]: ...


class MemoryOutbox:
    """An outbox in memory, for tests and the simulated world."""

    def __init__(self) -> None:
        self._items: dict[str, Outgoing] = {}
        self.failed: list[Outgoing] = []

    def add(self, item: Outgoing) -> None:
        self._items[item.id] = item

    update = add

    def remove(self, item_id: str) -> None:
        self._items.pop(item_id, None)

    def items(self) -> list[Outgoing]:
        return list(self._items.values())


class Relay:
    """Sends what handlers produce, through one :class:`Transport`."""

    def __init__(
        self,
        transport: Transport,
        *,
        hostname: str = "localhost",
        clock: Clock | None = None,
        outbox: Outbox | None = None,
        retry: RetryPolicy | None = None,
        new_message_id: Callable[[], str] | None = None,
    ) -> None:
        self.transport = transport
        self.hostname = hostname
        self.clock = clock or SystemClock()
        self.outbox: Outbox = outbox if outbox is not None else MemoryOutbox()
        self.retry = retry or RetryPolicy()
        self.new_message_id = new_message_id or (lambda: make_msgid(domain=self.hostname))
        self._serial = itertools.count(1)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Relay via {self.transport!r}, {len(self.outbox.items())} queued>"

    # Sending --------------------------------------------------------------------

    def deliver(
        self,
        message: MailResponse | EmailMessage | bytes,
        *,
        sender: str | None = None,
        recipients: Sequence[str] | None = None,
    ) -> Outgoing:
        """Queue *message* and make the first attempt.

        The envelope defaults to the From address and every To/Cc/Bcc address;
        a missing Date or Message-ID is filled in.
        """
        raw, default_sender, default_recipients = self._prepare(message)
        envelope_sender = default_sender if sender is None else sender
        targets = tuple(recipients) if recipients is not None else default_recipients
        if not targets:
            raise ValueError("the message has no recipients: give To, Cc, Bcc or recipients=")
        now = self.clock.now()
        item = Outgoing(
            id=f"{now.strftime('%Y%m%d%H%M%S')}.{next(self._serial)}",
            envelope=Envelope(envelope_sender, targets),
            message=raw,
            queued_at=now,
            next_attempt=now,
            pending=targets,
        )
        self.outbox.add(item)
        self._attempt(item)
        return item

    def reply(
        self,
        original: MailRequest,
        response: MailResponse,
    ) -> Outgoing | None:
        """Answer *original* automatically, unless RFC 3834 says not to.

        The response gets To (the original's Reply-To or From, unless set),
        In-Reply-To, References and ``Auto-Submitted: auto-replied``. Returns None
        when the reply was suppressed; the reason is logged.
        """
        refusal = auto_reply_refusal(original)
        if refusal is not None:
            log.info(
                "not replying to %s from %r: %s", original.message_id, original.sender, refusal
            )
            return None
        if response["To"] is None:
            response["To"] = original["Reply-To"] or original["From"] or original.sender
        thread_response(original, response)
        response["Auto-Submitted"] = "auto-replied"
        return self.deliver(response)

    def _prepare(
        self, message: MailResponse | EmailMessage | bytes
    ) -> tuple[bytes, str, tuple[str, ...]]:
        if isinstance(message, MailResponse):
            # Stamped while still plain values: cheaper than on the parsed message.
            if message["Date"] is None:
                message["Date"] = format_datetime(self.clock.now())
            if message["Message-ID"] is None:
                message["Message-ID"] = self.new_message_id()
            return message.as_bytes(), message.sender_address, tuple(message.recipients)
        else:
            if isinstance(message, bytes):
                parsed = email.message_from_bytes(
                    message, _class=EmailMessage, policy=email.policy.default
                )
                assert isinstance(parsed, EmailMessage)
                message = parsed
            built = message
            recipients = _addresses(built, ("To", "Cc", "Bcc"))
            del built["Bcc"]
        senders = _addresses(built, ("From",))
        return self._stamp(built), senders[0] if senders else "", tuple(recipients)

    def _stamp(self, message: EmailMessage) -> bytes:
        if message["Date"] is None:
            message["Date"] = format_datetime(self.clock.now())
        if message["Message-ID"] is None:
            message["Message-ID"] = self.new_message_id()
        return message.as_bytes(policy=_WIRE)

    # Attempts -------------------------------------------------------------------

    def run_due(self) -> int:
        """Attempt every queued message whose time has come; returns how many."""
        now = self.clock.now()
        due = [item for item in self.outbox.items() if item.next_attempt <= now]
        for item in due:
            self._attempt(item)
        return len(due)

    def next_due(self) -> datetime | None:
        """When the next retry is due, or None when nothing waits."""
        times = [item.next_attempt for item in self.outbox.items()]
        return min(times) if times else None

    def _attempt(self, item: Outgoing) -> None:
        with self._lock:
            envelope = replace(item.envelope, recipients=item.pending)
            results = self.transport.deliver(envelope, item.message)
            now = self.clock.now()
            item.attempts += 1
            item.results.update(results)
            missing = [r for r in item.pending if r not in results]
            if missing:
                raise RuntimeError(f"{self.transport!r} gave no result for {missing}")
            failed = [results[r] for r in item.pending if results[r].permanent]
            waiting = tuple(r for r in item.pending if results[r].temporary)
            expired = now - item.queued_at >= self.retry.lifetime
            if expired:
                failed += [results[r] for r in waiting]
                waiting = ()
            item.pending = waiting
            item.next_attempt = now + self.retry.delay(item.attempts)
            if item.done:
                self.outbox.remove(item.id)
            else:
                self.outbox.update(item)
                log.info("%s: will retry %s at %s", item.id, list(waiting), item.next_attempt)
        if failed:
            self._bounce(item, failed, expired=expired)

    def _bounce(self, item: Outgoing, failed: Iterable[RecipientResult], *, expired: bool) -> None:
        failures = [_failure(result, expired) for result in failed]
        if not item.envelope.sender:
            log.error(
                "%s: a bounce could not be delivered to %s; kept in the outbox's failed list",
                item.id,
                ", ".join(str(r) for r in failed),
            )
            self.outbox.failed.append(item)
            return
        report = build_dsn(
            reporting_mta=self.hostname,
            postmaster=f"MAILER-DAEMON@{self.hostname}",
            to=item.envelope.sender,
            original=item.message,
            failures=failures,
            arrival=item.queued_at,
            now=self.clock.now(),
            message_id=self.new_message_id(),
        )
        self.deliver(report, sender="", recipients=[item.envelope.sender])


def _failure(result: RecipientResult, expired: bool) -> FailedRecipient:
    text = result.text.strip()
    diagnostic = f"{result.code} {text}".strip()
    if expired and result.temporary:
        return FailedRecipient(
            result.recipient, "4.4.7", f"{diagnostic} (delivery time expired)", result.remote
        )
    enhanced = _ENHANCED_STATUS.search(text)
    status = enhanced.group(0) if enhanced else f"{str(result.code)[0]}.0.0"
    return FailedRecipient(result.recipient, status, diagnostic, result.remote)


def _addresses(message: EmailMessage, names: Sequence[str]) -> list[str]:
    values = [str(v) for name in names for v in message.get_all(name, [])]
    return [address for _, address in getaddresses(values) if address]


def thread_response(original: MailRequest, response: MailResponse) -> None:
    """Make *response* a reply in *original*'s thread (In-Reply-To, References)."""
    message_id = original.message_id
    if not message_id:
        return
    references = " ".join([*original.get_all("References"), message_id]).split()
    response["In-Reply-To"] = message_id
    response["References"] = " ".join(references)
