"""The :class:`World`: an application, the people who write to it, and the hosts between.

A test talks to the world synchronously: ``alice.send(...)`` returns when the world
is quiet again — the message delivered, every reply it caused delivered, and every
reply to those. Time moves only when ``world.clock.advance(...)`` is called, and
then everything that falls due on the way (relay retries, expiries) runs in order.
"""

from __future__ import annotations

import email.policy
import heapq
import itertools
import random
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from mailsim_runtime.addresses import AddressRefused, canonical_address
from mailsim_runtime.app import App
from mailsim_runtime.autoreply import auto_reply_refusal, thread_response
from mailsim_runtime.clock import format_date
from mailsim_runtime.dsn import FailedRecipient, build_dsn
from mailsim_runtime.mail import HeaderFields, MailRequest, MailResponse
from mailsim_runtime.transport import Envelope, RecipientResult

from mailsim.world.clock import WORLD_EPOCH, VirtualClock
from mailsim.world.hosts import RemoteHost, Verdict
from mailsim.world.mailbox import Mailbox
from mailsim.world.transcript import Transcript

if TYPE_CHECKING:
    from mailsim_runtime.project import AppTemplate

    from mailsim.spec.relay import Probe, RelayReport

__all__ = ["HandlerFailed", "MailLoop", "UnexpectedMail", "World", "WorldError"]

APP = "app"
PEER = "127.0.0.1"


class WorldError(AssertionError):
    """Something in the world went wrong; the message carries the transcript."""


class HandlerFailed(WorldError):
    """A handler raised while the world delivered a message."""


class MailLoop(WorldError):
    """Mail kept causing more mail: the world stopped it."""


class UnexpectedMail(WorldError):
    """Mail arrived that no assertion looked at (strict worlds only)."""


@dataclass(order=True)
class _Timer:
    due: datetime
    order: int
    action: Callable[[], None] = field(compare=False)


@dataclass(slots=True)
class _Parcel:
    """A message on its way to one recipient: its bytes and, when whoever wrote them
    knew it, how their header section splits (see :meth:`MailResponse.wire_form`)."""

    sender: str
    recipient: str
    data: bytes
    head: HeaderFields | None
    source: str
    to_app: bool

    def request(self, data: bytes | None = None, head: HeaderFields | None = None) -> MailRequest:
        """The parcel as its recipient gets it (*data* and *head*: as stamped on arrival)."""
        data, head = (self.data, self.head) if data is None else (data, head)
        if head is None:
            return MailRequest(PEER, self.sender, self.recipient, data)
        return MailRequest.with_head(PEER, self.sender, self.recipient, data, head)


class _WorldTransport:
    """The application's relay hands its mail to the world through this."""

    def __init__(self, world: World) -> None:
        self._world = world

    def __repr__(self) -> str:
        return "<world transport>"

    def deliver(self, envelope: Envelope, message: bytes) -> dict[str, RecipientResult]:
        return self.deliver_with_head(envelope, message, None)

    def deliver_with_head(
        self, envelope: Envelope, message: bytes, head: HeaderFields | None
    ) -> dict[str, RecipientResult]:
        """:meth:`deliver`, told how *message*'s header section splits (the relay wrote it)."""
        # A loop, not a comprehension: one would make cells of the four variables
        # it reads, on every call (Python < 3.12).
        results: dict[str, RecipientResult] = {}
        for recipient in envelope.recipients:
            results[recipient] = self._world._hand_over(
                envelope.sender, recipient, message, APP, head
            )
        return results


class World:
    """An in-memory world of mail hosts and people, hosting one application.

    *app* is an :class:`App`, a project folder or ``mailsim.toml`` (built with
    in-memory stores), an :class:`~mailsim_runtime.project.AppTemplate` (a new app
    copied from it), or None to use the ``mailsim.toml`` found from the current
    folder. Message-IDs, dates and the app's random confirmation secrets are
    reproducible under *seed*. In a *strict* world, mail that no assertion looked
    at is an error when the world is checked (:meth:`verify`).
    """

    def __init__(
        self,
        app: App | AppTemplate | str | Path | None = None,
        *,
        seed: int = 0,
        strict: bool = True,
        start: datetime = WORLD_EPOCH,
        loop_limit: int = 500,
        received_limit: int = 50,
        raise_errors: bool = True,
    ) -> None:
        self.seed = seed
        self.strict = strict
        self.loop_limit = loop_limit
        self.received_limit = received_limit
        self.raise_errors = raise_errors
        self.random = random.Random(seed)
        self.clock = VirtualClock(start)
        self.transcript = Transcript(start)
        self._ids = itertools.count(1)
        self._timer_order = itertools.count()
        self._timers: list[_Timer] = []
        self._pending: deque[_Parcel] = deque()
        self._errors: list[tuple[MailRequest, BaseException]] = []
        self._mailboxes: dict[str, Mailbox] = {}
        self._hosts: dict[str, RemoteHost] = {}
        self._running = False
        self.transport = _WorldTransport(self)
        self.app = self._host_app(app)
        self.clock.next_event = self._next_event
        self.clock.run_due = self._run_due

    def __repr__(self) -> str:
        return f"<World {self.app.domains} {len(self._mailboxes)} people at {self.clock.now()}>"

    # Setting up ------------------------------------------------------------------

    def _host_app(self, app: App | AppTemplate | str | Path | None) -> App:
        if not isinstance(app, App):
            app = self._build_app(app)
        app.use(
            transport=self.transport, clock=self.clock, new_message_id=self._app_message_id(app)
        )
        if app.confirmations is not None and hasattr(app.confirmations, "new_secret"):
            app.confirmations.new_secret = lambda: f"{self.random.getrandbits(64):016x}"
        return app

    def _build_app(self, app: AppTemplate | str | Path | None) -> App:
        from mailsim_runtime.project import AppTemplate, find_project, load_project

        if isinstance(app, AppTemplate):
            return app.build(transport=self.transport, clock=self.clock)
        folder = find_project(app if app is not None else Path.cwd())
        if folder is None:
            where = app if app is not None else Path.cwd()
            raise FileNotFoundError(f"no mailsim.toml at or above {where}")
        return load_project(
            folder,
            transport=self.transport,
            in_memory=True,
            clock=self.clock,
        )

    def _app_message_id(self, app: App) -> Callable[[], str]:
        return lambda: self.new_message_id(app.hostname)

    def new_message_id(self, domain: str) -> str:
        """A Message-ID that is the same in every run with the same seed."""
        return f"<{next(self._ids):06d}.{self.seed}.mailsim@{domain}>"

    def mailbox(self, address: str) -> Mailbox:
        """The person at *address* (created on first use).

        The address must be one mail can be delivered to: :class:`ValueError` says why
        not (an internationalized address, RFC 6531, is not routed; ``post`` can
        still send from one).
        """
        key = address.lower()
        if key not in self._mailboxes:
            try:
                canonical_address(address)
            except AddressRefused as refused:
                raise ValueError(f"no person can live at {address!r}: {refused}") from None
            domain = key.rpartition("@")[2]
            if domain in self.app.domains:
                raise ValueError(
                    f"{address} is in the application's domain ({domain}); people live elsewhere"
                )
            self._mailboxes[key] = Mailbox(self, address)
        return self._mailboxes[key]

    @property
    def mailboxes(self) -> list[Mailbox]:
        return list(self._mailboxes.values())

    def host(self, domain: str) -> RemoteHost:
        """The remote host for *domain* (created on first use), to switch its behaviour."""
        key = domain.lower()
        host = self._hosts.get(key)
        if host is None:
            if key in self.app.domains:
                raise ValueError(f"{domain} is the application's own domain, not a remote host")
            host = self._hosts[key] = RemoteHost(key)
        return host

    # Sending ---------------------------------------------------------------------

    def post(self, sender: str, recipients: Iterable[str], response: MailResponse) -> str:
        """A person hands a message to the world; returns when the world is quiet."""
        if response["Date"] is None:
            response["Date"] = format_date(self.clock.now())
        if response["Message-ID"] is None:
            response["Message-ID"] = self.new_message_id(sender.rpartition("@")[2] or "localhost")
        message_id = response["Message-ID"] or ""
        data, head = response.wire_form()
        refused: list[tuple[str, RecipientResult]] = []
        for recipient in recipients:
            result = self._hand_over(sender, recipient, data, sender, head)
            if not result.accepted:
                refused.append((recipient, result))
        if refused:
            self._bounce_to_person(sender, data, refused)
        self.run_until_quiet()
        return message_id

    def _bounce_to_person(
        self, sender: str, data: bytes, refused: list[tuple[str, RecipientResult]]
    ) -> None:
        # The person's own mail server got the refusal at RCPT and tells them.
        domain = sender.rpartition("@")[2] or "localhost"
        failures = [
            FailedRecipient(rcpt, _status_of(result), f"{result.code} {result.text}", result.remote)
            for rcpt, result in refused
        ]
        self._send_dsn(f"mail.{domain}", sender, data, failures)

    def _send_dsn(
        self, reporting: str, to: str, original: bytes, failures: list[FailedRecipient]
    ) -> None:
        domain = reporting.split(".", 1)[-1]
        report = build_dsn(
            reporting_mta=reporting,
            postmaster=f"MAILER-DAEMON@{domain}",
            to=to,
            original=original,
            failures=failures,
            arrival=self.clock.now(),
            now=self.clock.now(),
            message_id=self.new_message_id(domain),
        )
        self._hand_over(
            "", to, report.as_bytes(policy=email.policy.SMTP), f"MAILER-DAEMON@{domain}"
        )

    def _hand_over(
        self,
        sender: str,
        recipient: str,
        data: bytes,
        source: str,
        head: HeaderFields | None = None,
    ) -> RecipientResult:
        """SMTP's RCPT for one recipient: decide, and queue the message if accepted."""
        parcel = _Parcel(sender, recipient, data, head, source, to_app=False)
        try:
            domain = canonical_address(recipient).rpartition("@")[2]
        except AddressRefused as refused:
            return self._refuse(parcel, 553, f"5.1.3 {refused}")
        if _received_count(data) >= self.received_limit:
            return self._refuse(parcel, 554, "5.4.6 too many hops (mail loop?)")
        if domain in self.app.domains:
            if not self.app.accepts(recipient):
                return self._refuse(parcel, 550, "5.1.1 no route takes this address")
            parcel.to_app = True
            self._pending.append(parcel)
            return _accepted(recipient, domain)
        host = self.host(domain)
        verdict = host.receive(sender, recipient, self.clock.now())
        if not verdict.result.accepted:
            outcome = "refused" if verdict.result.permanent else "deferred"
            self._record(
                parcel.request(),
                source,
                host.domain,
                f"{outcome} {verdict.result.code} {verdict.result.text}",
            )
            return verdict.result
        if verdict.bounce is not None:
            self._record(parcel.request(), source, recipient, "accepted, to be bounced")
            if sender:  # never bounce a bounce
                self._bounce_later(host, sender, recipient, data, verdict.bounce)
            return verdict.result
        self._pending.append(parcel)
        if verdict.vacation is not None:
            self._vacation_later(host, verdict, recipient, data, sender)
        return verdict.result

    # The two below make the closures _hand_over needs in its rare cases: a closure in
    # _hand_over itself would make a cell of each variable it reads on every call.

    def _bounce_later(
        self, host: RemoteHost, sender: str, recipient: str, data: bytes, bounce: tuple[str, str]
    ) -> None:
        status, diagnostic = bounce
        self._later(
            lambda: self._send_dsn(
                host.mx,
                sender,
                data,
                [FailedRecipient(recipient, status, diagnostic, host.mx)],
            )
        )

    def _vacation_later(
        self, host: RemoteHost, verdict: Verdict, recipient: str, data: bytes, sender: str
    ) -> None:
        self._later(
            lambda: self._vacation(
                recipient, data, verdict.vacation or "", host.vacation_follows_rfc3834, sender
            )
        )

    def _refuse(self, parcel: _Parcel, code: int, text: str) -> RecipientResult:
        self._record(parcel.request(), parcel.source, APP, f"refused {code} {text}")
        return RecipientResult(parcel.recipient, code, text)

    def _vacation(
        self, address: str, data: bytes, text: str, follows_rfc3834: bool, envelope_sender: str
    ) -> None:
        original = MailRequest(PEER, envelope_sender, address, data)
        if follows_rfc3834 and auto_reply_refusal(original) is not None:
            return
        response = MailResponse(
            to=original["Reply-To"] or original["From"] or envelope_sender,
            from_=address,
            subject=f"Auto: {original['Subject'] or ''}".strip(),
            body=text,
        )
        thread_response(original, response)
        if follows_rfc3834:
            response["Auto-Submitted"] = "auto-replied"
        recipients = [envelope_sender] if envelope_sender else []
        if recipients:
            response["Date"] = format_date(self.clock.now())
            response["Message-ID"] = self.new_message_id(address.rpartition("@")[2])
            data, head = response.wire_form()
            self._hand_over(address, recipients[0], data, address, head)

    def _later(self, action: Callable[[], None]) -> None:
        """Run *action* once the current message has been dealt with."""
        heapq.heappush(self._timers, _Timer(self.clock.now(), next(self._timer_order), action))

    # Running ---------------------------------------------------------------------

    def run_until_quiet(self) -> None:
        """Deliver everything in flight, and whatever that causes, until nothing moves."""
        if self._running:  # a handler's reply: the outer loop will deliver it
            return
        self._running = True
        # A plain dict: a Counter costs more to make and to count in than the
        # delivery it counts; it is made only for the report of a loop.
        delivered: dict[tuple[str, str], int] = {}
        count = 0  # sum(delivered.values()), kept as it grows
        try:
            while self._pending or self._due_timers():
                while self._pending:
                    parcel = self._pending.popleft()
                    pair = (parcel.sender or "<>", parcel.recipient)
                    delivered[pair] = delivered.get(pair, 0) + 1
                    count += 1
                    if count > self.loop_limit:
                        self._pending.clear()
                        self._timers.clear()
                        raise MailLoop(self._loop_report(Counter(delivered)))
                    self._deliver(parcel)
                for timer in self._due_timers():
                    heapq.heappop(self._timers)
                    timer.action()
        finally:
            self._running = False
        self._raise_handler_errors()

    def _due_timers(self) -> list[_Timer]:
        if not self._timers:  # the usual case, settled before asking the clock
            return []
        return [self._timers[0]] if self._timers[0].due <= self.clock.now() else []

    def _deliver(self, parcel: _Parcel) -> None:
        now = self.clock.now()
        request = _stamp_received(parcel, now)
        destination = APP if parcel.to_app else parcel.recipient
        self._record(request, parcel.source, destination, "delivered", now)
        if not parcel.to_app:
            box = self._mailboxes.get(parcel.recipient.lower())  # self.mailbox(), sooner
            (box if box is not None else self.mailbox(parcel.recipient))._receive(request, now)
            return
        delivery = self.app.deliver(request)
        # delivery.transitions and delivery.errors, in one pass over its calls.
        for call in delivery.calls:
            if not call.stateless:
                self.transcript.record_transition(
                    self.clock.now(),  # the handler may have moved the clock
                    call.module,
                    call.key,
                    call.function,
                    call.from_state,
                    call.to_state,
                    request.message_id or "",
                    repr(call.error) if call.error else "",
                )
            if call.error is not None:
                self._errors.append((request, call.error))

    def _record(
        self,
        head: MailRequest,
        source: str,
        destination: str,
        outcome: str,
        now: datetime | None = None,
    ) -> None:
        self.transcript.record_message(
            head,
            time=self.clock.now() if now is None else now,
            source=source,
            destination=destination,
            outcome=outcome,
        )

    def _next_event(self) -> datetime | None:
        candidates = [t.due for t in self._timers[:1]]
        retry = self.app.relay.next_due()
        if retry is not None:
            candidates.append(retry)
        return min(candidates) if candidates else None

    def _run_due(self) -> None:
        self.app.relay.run_due()
        self.run_until_quiet()

    def _raise_handler_errors(self) -> None:
        if not self._errors or not self.raise_errors:
            return
        request, error = self._errors[0]
        count = len(self._errors)
        self._errors.clear()
        raise HandlerFailed(
            f"a handler failed on {request.message_id} from {request.sender or '<>'} to "
            f"{request.recipient}: {error!r}"
            + (f" (and {count - 1} more failures)" if count > 1 else "")
            + f"\n\nTranscript:\n{self.transcript.log()}"
        ) from error

    def _loop_report(self, delivered: Counter[tuple[str, str]]) -> str:
        busiest = ", ".join(f"{s} → {r} x{n}" for (s, r), n in delivered.most_common(4))
        return (
            f"mail loop: more than {self.loop_limit} deliveries without the world going "
            f"quiet; busiest: {busiest}\n\nLast messages:\n"
            + "\n".join(self.transcript.log().splitlines()[-12:])
        )

    # Asking ----------------------------------------------------------------------

    def state(self, module: str, key: str) -> str:
        """The state of a conversation (key: usually the sender's address)."""
        return self.app.states.get(module, key.lower())

    def expect_state(self, module: str, key: str, state: str) -> None:
        """Fail, explaining, unless a conversation is in *state*."""
        __tracebackhide__ = True
        from mailsim.spec.state import expect_state

        expect_state(self, module, key, state)

    def check_open_relay(self, ip: str = "127.0.0.1") -> RelayReport:
        """Run the 16 open-relay probes against the application's RCPT decision."""
        from mailsim.spec.relay import relay_probes, run_relay_probes

        def try_probe(probe: Probe) -> tuple[bool, str]:
            if self.app.accepts(probe.recipient):
                return False, "250 accepted"
            return True, "550 5.1.1 recipient rejected"

        return run_relay_probes(relay_probes(self.app.hostname, ip), try_probe)

    def unexpected_mail(self) -> list[str]:
        """Mail in any mailbox that no assertion claimed."""
        return [
            f"{box.address}: {mail.summary()}"
            for box in self._mailboxes.values()
            for mail in box.unseen
        ]

    def verify(self) -> None:
        """End-of-test checks: in a strict world, no mail may go unexamined."""
        if self.strict and (left := self.unexpected_mail()):
            raise UnexpectedMail(
                "mail arrived that no assertion looked at (strict world; loosen with "
                "strict=False or @pytest.mark.mailsim(strict=False)):\n  "
                + "\n  ".join(left)
                + f"\n\nTranscript:\n{self.transcript.log()}"
            )


# The app's acceptance of a recipient is the same answer every time: one frozen
# result per address, shared, instead of a new one per message.
@lru_cache(maxsize=1024)
def _accepted(recipient: str, domain: str) -> RecipientResult:
    return RecipientResult(recipient, 250, "2.0.0 OK", f"mx.{domain}")


def _status_of(result: RecipientResult) -> str:
    first = result.text.split(" ", 1)[0]
    parts = first.split(".")
    if len(parts) == 3 and all(p.isdigit() for p in parts):
        return first
    return f"{str(result.code)[0]}.0.0"


def _received_count(data: bytes) -> int:
    end = data.find(b"\r\n\r\n")  # the header section, counted in place (not copied)
    end = len(data) if end < 0 else end
    return data.count(b"\r\nReceived:", 0, end) + data.startswith(b"Received:", 0, end)


def _stamp_received(parcel: _Parcel, now: datetime) -> MailRequest:
    """The parcel as it arrives, a ``Received`` line on top."""
    by = "app" if parcel.to_app else parcel.recipient.rpartition("@")[2]
    trace = (
        f"from {parcel.source.rpartition('@')[2] or 'localhost'} by {by} "
        f"(mailsim world) for <{parcel.recipient}>; {format_date(now)}"
    )
    data = f"Received: {trace}\r\n".encode("ascii", "backslashreplace") + parcel.data
    if parcel.head is None or not trace.isascii() or "\r" in trace or "\n" in trace:
        return parcel.request(data, None)
    # One line of ASCII, starting "from": the parser would read it back as it is.
    return parcel.request(data, (("Received", trace), *parcel.head))
