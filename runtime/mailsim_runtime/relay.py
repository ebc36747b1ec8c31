"""Outbound mail: queue first, deliver, retry with backoff, bounce when the lifetime ends.

Every message is put in an :class:`Outbox` before the first attempt (in
production a :class:`~mailsim_runtime.outbox.DurableOutbox`, on disk). A
temporary failure (4xx) is retried on a :class:`RetryPolicy` schedule read off
the app's clock; a permanent failure (5xx), or a temporary one that outlives the
policy's lifetime, sends the envelope sender an RFC 3464 report from the null
sender. A bounce is never bounced: when a report itself cannot be delivered, it
is kept in the outbox's ``failed`` list and logged, not dropped. The report is
queued before the failed message is forgotten, so a crash in between may send
a report twice but never loses it.

Each attempt *claims* its item in the outbox first, so two threads (or two
processes sharing a durable outbox) never attempt the same message at once;
nothing else is locked, so a slow server holds up only the mail going to it.

Who makes the attempts: by default :meth:`Relay.deliver` makes the first one in
the calling thread (the simulated world, scripts, tests). A running
:class:`RelayRunner` takes that over: while it runs, ``deliver`` only queues
and wakes it, so a handler thread never waits on a remote server.

:meth:`Relay.reply` applies RFC 3834 before answering anything automatically.
"""

from __future__ import annotations

import email.policy
import itertools
import logging
import re
import secrets
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import getaddresses, make_msgid
from functools import lru_cache
from types import TracebackType
from typing import Protocol, cast

from mailsim_runtime.autoreply import (
    ReplyLimit,
    auto_reply_refusal,
    reply_address,
    thread_response,
)
from mailsim_runtime.clock import Clock, SystemClock, format_date, wall_clock_text
from mailsim_runtime.dsn import FailedRecipient, build_dsn
from mailsim_runtime.mail import (
    HeaderFields,
    MailRequest,
    MailResponse,
)
from mailsim_runtime.transport import Envelope, RecipientResult, Transport

__all__ = [
    "HeadTransport",
    "MemoryOutbox",
    "Outbox",
    "Outgoing",
    "Relay",
    "RelayRunner",
    "RetryPolicy",
]

log = logging.getLogger("mailsim.relay")

_WIRE = email.policy.SMTP
_ENHANCED_STATUS = re.compile(r"\b[245]\.\d{1,3}\.\d{1,3}\b")


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
        return _delay(self, attempts)


# Every attempt asks (a delivered item's next attempt is shown too), and timedelta
# arithmetic costs microseconds: the answer, a pure function of the frozen policy
# and the count, is kept.
@lru_cache(maxsize=256)
def _delay(policy: RetryPolicy, attempts: int) -> timedelta:
    delay = policy.first * (policy.factor ** max(attempts - 1, 0))
    return min(delay, policy.longest)


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
    # How *message*'s header section splits, when the relay wrote it from plain
    # values (MailResponse.wire_form); not stored by a durable outbox.
    head: HeaderFields | None = field(default=None, compare=False, repr=False)

    @property
    def done(self) -> bool:
        return not self.pending


class HeadTransport(Transport, Protocol):
    """A transport that can be told how a message's header section splits, so that
    it need not split it again (the simulated world's). The relay uses
    :meth:`deliver_with_head` when a transport has it and the message's head is known."""

    def deliver_with_head(
        self, envelope: Envelope, message: bytes, head: HeaderFields | None
    ) -> dict[str, RecipientResult]:
        """:meth:`Transport.deliver`, with *head* as :meth:`MailResponse.wire_form` gives it."""
        ...


class Outbox(Protocol):
    """Where outgoing mail waits. The durable one is :class:`~mailsim_runtime.outbox.DurableOutbox`.

    An item is attempted only while claimed: :meth:`claim` hands its current state
    to one taker at a time, and :meth:`release` gives it back after the outcome
    has been recorded with :meth:`update` or :meth:`remove`.
    """

    @property
    def failed(self) -> list[Outgoing]:
        """Bounces that could not be delivered, kept rather than dropped."""
        ...

    def add(self, item: Outgoing) -> None: ...
    def update(self, item: Outgoing) -> None: ...
    def remove(self, item_id: str) -> None: ...
    def items(self) -> list[Outgoing]: ...
    def claim(self, item_id: str) -> Outgoing | None: ...
    def release(self, item_id: str) -> None: ...
    def keep_failed(self, item: Outgoing) -> None: ...


class MemoryOutbox:
    """An outbox in memory, for tests and the simulated world."""

    def __init__(self) -> None:
        self._items: dict[str, Outgoing] = {}
        self._claimed: set[str] = set()
        self._lock = threading.Lock()
        self.failed: list[Outgoing] = []

    def add(self, item: Outgoing) -> None:
        with self._lock:
            self._items[item.id] = item

    update = add

    def remove(self, item_id: str) -> None:
        with self._lock:
            self._items.pop(item_id, None)

    def items(self) -> list[Outgoing]:
        with self._lock:
            return list(self._items.values())

    def claim(self, item_id: str) -> Outgoing | None:
        with self._lock:
            item = self._items.get(item_id)
            if item is None or item_id in self._claimed:
                return None
            self._claimed.add(item_id)
            return item

    def release(self, item_id: str) -> None:
        with self._lock:
            self._claimed.discard(item_id)

    def keep_failed(self, item: Outgoing) -> None:
        with self._lock:
            self.failed.append(item)


class Relay:
    """Sends what handlers produce, through one :class:`Transport`.

    With ``attempt_at_once=False``, :meth:`deliver` only queues; something must
    then call :meth:`run_due` (a :class:`RelayRunner` does, woken through
    :attr:`queued`).
    """

    def __init__(
        self,
        transport: Transport,
        *,
        hostname: str = "localhost",
        clock: Clock | None = None,
        outbox: Outbox | None = None,
        retry: RetryPolicy | None = None,
        new_message_id: Callable[[], str] | None = None,
        attempt_at_once: bool = True,
        reply_limit: ReplyLimit | None = None,
    ) -> None:
        self.transport = transport
        self.reply_limit = reply_limit or ReplyLimit()
        self.hostname = hostname
        self.clock = clock or SystemClock()
        self.outbox: Outbox = outbox if outbox is not None else MemoryOutbox()
        self.retry = retry or RetryPolicy()
        self.new_message_id = new_message_id or (lambda: make_msgid(domain=self.hostname))
        self.attempt_at_once = attempt_at_once
        self.queued = threading.Event()  # set when mail was queued and not attempted
        self._serial = itertools.count(1)
        # Item ids must not collide between relays (processes) sharing one outbox.
        self._instance = secrets.token_hex(4)

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
        """Queue *message* and (unless a runner makes the attempts) make the first attempt.

        The envelope defaults to the From address and every To/Cc/Bcc address;
        a missing Date or Message-ID is filled in. The returned item shows the
        outcome of an attempt made here.
        """
        raw, head, envelope = self._prepare(message, sender, recipients)
        item = self._queue(raw, envelope, head)
        if self.attempt_at_once:
            self._attempt(item)
        return item

    def _queue(self, raw: bytes, envelope: Envelope, head: HeaderFields | None = None) -> Outgoing:
        now = self.clock.now()
        stamp = wall_clock_text(now, _id_stamp)
        item = Outgoing(
            id=f"{stamp}.{self._instance}.{next(self._serial)}",
            envelope=envelope,
            message=raw,
            queued_at=now,
            next_attempt=now,
            pending=envelope.recipients,
            head=head,
        )
        self.outbox.add(item)
        if not self.attempt_at_once:
            self.queued.set()
        return item

    def reply(
        self,
        original: MailRequest,
        response: MailResponse,
    ) -> Outgoing | None:
        """Answer *original* automatically, unless RFC 3834 says not to.

        The response gets To (the original's Reply-To or From, unless set),
        In-Reply-To, References and ``Auto-Submitted: auto-replied``. Returns None
        when the reply was suppressed — by RFC 3834, or because the address had its
        :attr:`reply_limit` of automatic replies — and logs why.
        """
        refusal = auto_reply_refusal(original)
        if refusal is not None:
            log.info(
                "not replying to %s from %r: %s", original.message_id, original.sender, refusal
            )
            return None
        if response["To"] is None:
            response["To"] = reply_address(original)
        recipients = response.recipients
        if not self._within_reply_limit(recipients):
            log.warning(
                "not replying to %s from %r: more than %d automatic replies to %s within %s",
                original.message_id,
                original.sender,
                self.reply_limit.count,
                ", ".join(recipients),
                self.reply_limit.window,
            )
            return None
        thread_response(original, response)
        response["Auto-Submitted"] = "auto-replied"
        # Threading and marking leave To, Cc and Bcc as they were: the same envelope.
        return self.deliver(response, recipients=recipients)

    def _within_reply_limit(self, recipients: Sequence[str]) -> bool:
        """``all(self.reply_limit.allow(to, now) for to in recipients)``, without a
        generator for each reply: counts a reply to each, up to the first refused."""
        for to in recipients:  # noqa: SIM110  (a generator: a cell per call)
            if not self.reply_limit.allow(to, self.clock.now()):
                return False
        return True

    def _prepare(
        self,
        message: MailResponse | EmailMessage | bytes,
        sender: str | None,
        recipients: Sequence[str] | None,
    ) -> tuple[bytes, HeaderFields | None, Envelope]:
        """The message's bytes, its head if known (see :class:`HeadTransport`), and its
        envelope: *sender* and *recipients*, or (when None) what its headers give."""
        if isinstance(message, MailResponse):
            # Stamped while still plain values: cheaper than on the parsed message.
            if message["Date"] is None:
                message["Date"] = format_date(self.clock.now())
            if message["Message-ID"] is None:
                message["Message-ID"] = self.new_message_id()
            raw, head = message.wire_form()
            # The headers are read only for what the caller left out.
            envelope_sender = message.sender_address if sender is None else sender
            targets = tuple(message.recipients if recipients is None else recipients)
        else:
            if isinstance(message, bytes):
                parsed = email.message_from_bytes(
                    message, _class=EmailMessage, policy=email.policy.default
                )
                assert isinstance(parsed, EmailMessage)
                message = parsed
            built = message
            # Read through the header registry, which costs: only what is not given.
            listed = _addresses(built, ("To", "Cc", "Bcc")) if recipients is None else recipients
            del built["Bcc"]
            if sender is None:
                senders = _addresses(built, ("From",))
                sender = senders[0] if senders else ""
            raw, head = self._stamp(built), None
            envelope_sender = sender
            targets = tuple(listed)
        if not targets:
            raise ValueError("the message has no recipients: give To, Cc, Bcc or recipients=")
        return raw, head, _envelope(envelope_sender, targets)

    def _stamp(self, message: EmailMessage) -> bytes:
        # "in", not message[...] is None: the same answer, without parsing the value.
        if "Date" not in message:
            message["Date"] = format_date(self.clock.now())
        if "Message-ID" not in message:
            message["Message-ID"] = self.new_message_id()
        return message.as_bytes(policy=_WIRE)

    # Attempts -------------------------------------------------------------------

    def run_due(self, *, stop: threading.Event | None = None) -> int:
        """Attempt every queued message whose time has come; returns how many.

        Items another thread or process is attempting are left to it. Once *stop*
        is set, no further attempt is begun.
        """
        now = self.clock.now()
        attempted = 0
        for item in self.outbox.items():
            if stop is not None and stop.is_set():
                break
            if item.next_attempt <= now:
                attempted += self._attempt(item, due_by=now)
        return attempted

    def next_due(self) -> datetime | None:
        """When the next retry is due, or None when nothing waits."""
        times = [item.next_attempt for item in self.outbox.items()]
        return min(times) if times else None

    def _attempt(self, item: Outgoing, *, due_by: datetime | None = None) -> bool:
        """One attempt at *item*, if it can be claimed (and is still due by *due_by*)."""
        claimed = self.outbox.claim(item.id)
        if claimed is None:
            return False
        try:
            if due_by is not None and claimed.next_attempt > due_by:
                return False  # attempted by someone else since it was listed
            bounce = self._attempt_claimed(claimed)
        finally:
            self.outbox.release(item.id)
        if claimed is not item:  # the caller's copy shows the outcome too
            item.attempts, item.pending = claimed.attempts, claimed.pending
            item.next_attempt, item.results = claimed.next_attempt, claimed.results
        if bounce is not None and self.attempt_at_once:
            self._attempt(bounce)
        return True

    def _attempt_claimed(self, item: Outgoing) -> Outgoing | None:
        """Attempt a claimed item and record the outcome; returns a bounce it queued."""
        envelope = (
            item.envelope
            if item.pending == item.envelope.recipients
            else Envelope(item.envelope.sender, item.pending)
        )
        results = self._send(envelope, item)
        # The permanent failures and the recipients to try again, in one pass.
        failed: list[RecipientResult] = []
        retry: list[str] = []
        for recipient in item.pending:
            if recipient not in results:
                missing = _missing(item.pending, results)
                raise RuntimeError(f"{self.transport!r} gave no result for {missing}")
            result = results[recipient]
            if result.permanent:
                failed.append(result)
            elif result.temporary:
                retry.append(recipient)
        waiting = tuple(retry)
        now = self.clock.now()
        item.attempts += 1
        item.results.update(results)
        expired = now - item.queued_at >= self.retry.lifetime
        if expired:
            failed += _results_of(waiting, results)
            waiting = ()
        item.pending = waiting
        item.next_attempt = now + self.retry.delay(item.attempts)
        bounce = None
        if failed:
            # Before the item is updated or removed: a crash may repeat a report, not lose it.
            bounce = self._bounce(item, failed, expired=expired)
        if item.done:
            self.outbox.remove(item.id)
        else:
            self.outbox.update(item)
            log.info("%s: will retry %s at %s", item.id, list(waiting), item.next_attempt)
        return bounce

    def _send(self, envelope: Envelope, item: Outgoing) -> dict[str, RecipientResult]:
        if item.head is not None and hasattr(self.transport, "deliver_with_head"):
            transport = cast(HeadTransport, self.transport)
            return transport.deliver_with_head(envelope, item.message, item.head)
        return self.transport.deliver(envelope, item.message)

    def _bounce(
        self, item: Outgoing, failed: Iterable[RecipientResult], *, expired: bool
    ) -> Outgoing | None:
        """Queue a report on *failed* for the sender; a failed bounce is kept instead."""
        failures = [_failure(result, expired) for result in failed]
        if not item.envelope.sender:
            log.error(
                "%s: a bounce could not be delivered to %s; kept in the outbox's failed list",
                item.id,
                ", ".join(str(r) for r in failed),
            )
            self.outbox.keep_failed(item)
            return None
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
        return self._queue(self._stamp(report), Envelope("", (item.envelope.sender,)))


class RelayRunner:
    """Retries what is due, on a background thread, every *interval* (or sooner).

    ``RelayRunner(relay).start()`` … ``.stop()``, or use it as a context manager.
    With *first_attempts* (the default) the runner also makes first attempts:
    while it runs, ``relay.deliver`` only queues and wakes it, so handler threads
    never wait on a remote server; :meth:`stop` hands that back. *threads*
    runners work side by side, each attempt on an item of its own (claims keep
    them apart), so one slow server does not hold up all outgoing mail.
    """

    def __init__(
        self,
        relay: Relay,
        interval: timedelta = timedelta(seconds=30),
        *,
        first_attempts: bool = True,
        threads: int = 1,
    ) -> None:
        if threads < 1:
            raise ValueError("a runner needs at least one thread")
        self.relay = relay
        self.interval = interval
        self.first_attempts = first_attempts
        self._threads: list[threading.Thread] = []
        self._count = threads
        self._stopping = threading.Event()
        self._attempted_at_once = relay.attempt_at_once

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<RelayRunner {state} every {self.interval} on {self.relay!r}>"

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def start(self) -> RelayRunner:
        """Start the runner's threads; returns the runner."""
        if self.running:
            raise RuntimeError("this runner is already running")
        self._stopping.clear()
        if self.first_attempts:
            self._attempted_at_once = self.relay.attempt_at_once
            self.relay.attempt_at_once = False
        self._threads = [
            threading.Thread(target=self._run, name=f"mailsim-relay-{n}", daemon=True)
            for n in range(1, self._count + 1)
        ]
        for thread in self._threads:
            thread.start()
        self.relay.queued.set()  # whatever an earlier process left queued is due now
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop once the attempts under way end (each is bounded by the transport's
        timeouts); what is still queued stays queued for the next start."""
        self._stopping.set()
        self.relay.queued.set()  # wake the threads to see the stop
        for thread in self._threads:
            thread.join(timeout)
        if self.first_attempts:
            self.relay.attempt_at_once = self._attempted_at_once

    def __enter__(self) -> RelayRunner:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stopping.is_set():
            # Cleared before the run: mail queued during it wakes the next wait at once.
            self.relay.queued.clear()
            try:
                self.relay.run_due(stop=self._stopping)
            except Exception:
                log.exception("the relay runner's attempt failed; trying again later")
            self.relay.queued.wait(self.interval.total_seconds())


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


# An application writes to the same few envelopes again and again (a reply goes back
# to its sender), and an envelope is frozen: one is shared instead of a new one made
# and checked for each message.
@lru_cache(maxsize=1024)
def _envelope(sender: str, recipients: tuple[str, ...]) -> Envelope:
    return Envelope(sender, recipients)


# The two below are apart from Relay._attempt_claimed: a comprehension there would
# make a cell of results on every attempt (Python < 3.12).


def _missing(recipients: Iterable[str], results: dict[str, RecipientResult]) -> list[str]:
    return [r for r in recipients if r not in results]


def _results_of(
    recipients: Iterable[str], results: dict[str, RecipientResult]
) -> list[RecipientResult]:
    return [results[r] for r in recipients]


def _id_stamp(moment: datetime) -> str:
    """The date part of an outbox item's id: the wall-clock time to the second."""
    return moment.strftime("%Y%m%d%H%M%S")


def _addresses(message: EmailMessage, names: Sequence[str]) -> list[str]:
    values = [str(v) for name in names for v in message.get_all(name, [])]
    return [address for _, address in getaddresses(values) if address]
