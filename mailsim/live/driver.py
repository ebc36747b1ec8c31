"""The live driver proper: a run against a server, and each scenario's view of it."""

from __future__ import annotations

import email.policy
import itertools
import re
import secrets
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, getaddresses
from pathlib import Path
from typing import TYPE_CHECKING, cast

from mailsim_runtime.app import App
from mailsim_runtime.dsn import FailedRecipient, build_dsn
from mailsim_runtime.mail import MailRequest, MailResponse

from mailsim.live.smtp import (
    Endpoint,
    LiveError,
    MailSink,
    NotObservableLive,
    NotPossibleLive,
    hand_over,
    probe_relay,
)
from mailsim.spec.expect import MailExpectationError, expect_mail
from mailsim.spec.matchers import Expected
from mailsim.spec.relay import RelayReport
from mailsim.world.mailbox import ReceivedMail
from mailsim.world.transcript import MessageEvent, Transcript

if TYPE_CHECKING:
    from mailsim_runtime.state import SqlStateStore

    from mailsim.world.hosts import RemoteHost
    from mailsim.world.mailbox import Mailbox

__all__ = ["LiveRun", "LiveScenario", "local_app", "unique_address"]

POLL_INTERVAL = 0.02  # seconds between looks at the sink while waiting


def unique_address(address: str, tag: str) -> str:
    """``alice@example.org`` → ``alice+<tag>@example.org``: the same person, this run only."""
    local, at, domain = address.rpartition("@")
    if not at:
        raise ValueError(f"{address!r} is not a mail address (no @)")
    return f"{local}+{tag}@{domain}"


def local_app(project: Path) -> App:
    """The project's app as far as a client needs it: routes, state keys, templates.

    Nothing is set up (no database, no queues): it only answers questions such as
    which conversation a mail belongs to, while the live server does the work.
    """
    from mailsim_runtime.config import load_config
    from mailsim_runtime.project import make_importable

    config = load_config(project)
    make_importable(config)
    return App(
        config.app.handlers,
        hostname=config.app.hostname,
        domains=config.domains,
        router_defaults=config.app.router_defaults,
        templates=config.app.templates,
        settings=config.settings,
    )


class LiveRun:
    """One ``mailsim run --live``: the server, the sink, and what scenarios share.

    The sink is started (and stopped) by whoever made this; *state_url* is the
    server's state database, read but never written or migrated.
    """

    def __init__(
        self,
        server: Endpoint,
        sink: MailSink,
        *,
        state_url: str | None = None,
        timeout: float = 10.0,
        quiet_period: float = 1.0,
        run_id: str | None = None,
    ) -> None:
        self.server = server
        self.sink = sink
        self.state_url = state_url
        self.timeout = timeout
        self.quiet_period = quiet_period
        self.run_id = run_id or secrets.token_hex(3)
        self._numbers = itertools.count(1)
        self._apps: dict[Path, App] = {}
        self._states: SqlStateStore | None = None

    def __repr__(self) -> str:
        return f"<LiveRun {self.run_id} server {self.server} sink port {self.sink.port}>"

    def scenario(self, project: Path | None) -> LiveScenario:
        """A new scenario's view of the server, with addresses of its own."""
        app = self.app(project) if project is not None else None
        return LiveScenario(self, app, f"ms{self.run_id}s{next(self._numbers)}")

    def app(self, project: Path) -> App:
        key = project.resolve()
        if key not in self._apps:
            self._apps[key] = local_app(key)
        return self._apps[key]

    @property
    def states(self) -> SqlStateStore:
        """The server's state store (:class:`NotObservableLive` without ``--state-url``)."""
        if self.state_url is None:
            raise NotObservableLive(
                "a conversation's state is not observable live without --state-url "
                "(the server's state database)"
            )
        if self._states is None:
            from mailsim_runtime.state import SqlStateStore

            try:
                self._states = SqlStateStore(self.state_url)
            except Exception as error:  # any failure to open it is the same to the user
                raise LiveError(
                    f"cannot read the server's states at --state-url {self.state_url}: {error}"
                ) from error
        return self._states

    def close(self) -> None:
        if self._states is not None:
            self._states.close()
            self._states = None


class _Person:
    """Someone in a live scenario: the address the feature names, and the one used."""

    def __init__(self, address: str, live_address: str) -> None:
        self.address = address
        self.live_address = live_address
        self.messages: list[ReceivedMail] = []

    @property
    def unseen(self) -> list[ReceivedMail]:
        return [m for m in self.messages if not m.seen]

    def receive(self, request: MailRequest) -> ReceivedMail:
        mail = ReceivedMail(request, datetime.now(UTC), len(self.messages) + 1)
        self.messages.append(mail)
        return mail


class LiveScenario:
    """One scenario against the live server (the step library's driver, live)."""

    mode = "live"

    def __init__(self, run: LiveRun, app: App | None, tag: str) -> None:
        self.run = run
        self._app = app
        self.tag = tag
        self.transcript = Transcript(datetime.now(UTC))
        self._people: dict[str, _Person] = {}
        self._by_live_address: dict[str, _Person] = {}
        self._cursor = len(run.sink.messages)  # mail caught before this scenario is not ours
        self._sources: dict[tuple[str, str], bytes] = {}
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"<LiveScenario {self.tag} against {self.run.server}>"

    # People and their addresses -------------------------------------------------------

    @property
    def app(self) -> App:
        if self._app is None:
            raise LiveError(
                "this step needs the application's project (its routes or templates): "
                'run from the project, or name it with Given the application in "…"'
            )
        return self._app

    def _is_app_address(self, address: str) -> bool:
        domain = address.rpartition("@")[2].lower()
        return self._app is not None and domain in self._app.domains

    def _person(self, address: str) -> _Person:
        key = address.lower()
        if key not in self._people:
            if self._is_app_address(address):
                raise LiveError(f"{address} is in the application's domain; people live elsewhere")
            person = _Person(address, unique_address(address, self.tag))
            self._people[key] = person
            self._by_live_address[person.live_address.lower()] = person
        return self._people[key]

    def address_of(self, person: str) -> str:
        """The address *person* really uses in this scenario."""
        return self._person(person).live_address

    def localize(self, text: str, *, regex: bool = False) -> str:
        """*text* with each person's address replaced by the one used in this scenario.

        In a regular expression (*regex*) the address may be written with its dots
        escaped, and the replacement is escaped (its ``+`` is a character there).
        """
        for key, person in self._people.items():
            wanted = re.escape(key)
            if regex:
                wanted = wanted.replace(r"\.", r"\\?\.")
            replacement = re.escape(person.live_address) if regex else person.live_address
            # re.sub reads backslashes in a replacement as escapes: double them.
            text = re.sub(wanted, replacement.replace("\\", "\\\\"), text, flags=re.IGNORECASE)
        return text

    # Sending --------------------------------------------------------------------------

    def send(
        self, person: str, to: str, *, subject: str, body: str, headers: Mapping[str, str]
    ) -> None:
        sender = self._person(person)
        recipient = self._recipient(to)
        response = MailResponse(
            to=[recipient], from_=sender.live_address, subject=subject, body=body, headers=headers
        )
        self._submit(sender, [recipient], response)

    def reply(
        self, person: str, mail: ReceivedMail, *, body: str, headers: Mapping[str, str]
    ) -> None:
        sender = self._person(person)
        request = mail.request
        target = request["Reply-To"] or mail.from_
        recipients = [a for _, a in getaddresses([target]) if a]
        subject = mail.subject if mail.subject.lower().startswith("re:") else f"Re: {mail.subject}"
        response = MailResponse(
            to=target, from_=sender.live_address, subject=subject, body=body, headers=headers
        )
        if request.message_id:
            response["In-Reply-To"] = request.message_id
            references = [*request.get_all("References"), request.message_id]
            response["References"] = " ".join(" ".join(references).split())
        self._submit(sender, recipients, response)

    def _recipient(self, address: str) -> str:
        if self._is_app_address(address) or address.lower() not in self._people:
            return address
        return self._people[address.lower()].live_address

    def _submit(self, sender: _Person, recipients: list[str], response: MailResponse) -> None:
        now = datetime.now(UTC)
        domain = sender.live_address.rpartition("@")[2]
        response["Date"] = format_datetime(now)
        response["Message-ID"] = f"<{next(self._ids)}.{self.tag}.mailsim@{domain}>"
        data = response.as_bytes()
        refused = hand_over(
            self.run.server, sender.live_address, recipients, data, timeout=self.run.timeout
        )
        request = MailRequest(None, sender.live_address, recipients[0], data)
        for recipient in recipients:
            self._sources[(response["Message-ID"] or "", recipient.lower())] = data
            answer = refused.get(recipient)
            outcome = (
                "delivered"
                if answer is None
                else f"refused {answer[0]} {answer[1].decode(errors='replace')}"
            )
            self._record(request, sender.address, "app", recipient, outcome)
        if refused:
            self._bounce(sender, data, refused)

    def _bounce(self, sender: _Person, data: bytes, refused: dict[str, tuple[int, bytes]]) -> None:
        # As in the world: the person's own mail server got the refusal and tells them.
        domain = sender.address.rpartition("@")[2]
        now = datetime.now(UTC)
        failures = []
        for recipient, (code, text) in refused.items():
            said = text.decode(errors="replace")
            first = said.split(" ", 1)[0]
            status = first if re.fullmatch(r"\d\.\d{1,3}\.\d{1,3}", first) else f"{code // 100}.0.0"
            failures.append(
                FailedRecipient(recipient, status, f"{code} {said}", str(self.run.server))
            )
        report = build_dsn(
            reporting_mta=f"mail.{domain}",
            postmaster=f"MAILER-DAEMON@{domain}",
            to=sender.live_address,
            original=data,
            failures=failures,
            arrival=now,
            now=now,
            message_id=f"<{next(self._ids)}.{self.tag}.dsn@{domain}>",
        )
        bounce = report.as_bytes(policy=email.policy.SMTP)
        request = MailRequest(None, "", sender.live_address, bounce)
        sender.receive(request)
        self._sources[(request.message_id or "", sender.address.lower())] = bounce
        self._record(
            request, f"MAILER-DAEMON@{domain}", sender.address, sender.address, "delivered"
        )

    # Receiving ------------------------------------------------------------------------

    def _collect(self) -> None:
        """Sort what the sink caught since last time into this scenario's mailboxes."""
        caught = self.run.sink.messages
        while self._cursor < len(caught):
            message = caught[self._cursor]
            self._cursor += 1
            for recipient in message.recipients:
                person = self._by_live_address.get(recipient.lower())
                if person is None:
                    continue  # someone else's mail: another scenario's, another run's
                request = MailRequest("sink", message.sender, recipient, message.data)
                person.receive(request)
                self._sources[(request.message_id or "", person.address.lower())] = message.data
                self._record(request, "app", person.address, person.address, "delivered")

    def received(self, person: str) -> list[ReceivedMail]:
        self._collect()
        return list(self._person(person).messages)

    def expect(self, person: str, expected: Expected | None) -> ReceivedMail:
        """Claim a matching mail, waiting for it until the deadline."""
        box = self._person(person)
        deadline = time.monotonic() + self.run.timeout
        matchers = [expected] if expected is not None else []
        while True:
            self._collect()
            try:
                # expect_mail only reads .address, .messages and .unseen, which _Person has.
                return expect_mail(cast("Mailbox", box), *matchers)
            except MailExpectationError as miss:
                if time.monotonic() >= deadline:
                    raise MailExpectationError(
                        f"{miss}\n(waited {self.run.timeout:g}s for it at the sink on port "
                        f"{self.run.sink.port}; {box.address} is {box.live_address} in this run)"
                    ) from None
            time.sleep(POLL_INTERVAL)

    def expect_no_mail(self, person: str) -> None:
        """Watch for a quiet period; fail as soon as unclaimed mail is there."""
        box = self._person(person)
        deadline = time.monotonic() + self.run.quiet_period
        while True:
            self._collect()
            if box.unseen:
                listed = "\n".join(f"  {m.summary()}" for m in box.unseen)
                raise MailExpectationError(
                    f"{box.address}: expected no mail, but {len(box.unseen)} arrived:\n{listed}"
                )
            if time.monotonic() >= deadline:
                return
            time.sleep(POLL_INTERVAL)

    # The server's insides -------------------------------------------------------------

    def expect_state(self, module: str, key: str, state: str) -> None:
        """Wait until the server's state database has the conversation in *state*."""
        store = self.run.states
        deadline = time.monotonic() + self.run.timeout
        while True:
            actual = store.get(module, key)
            if actual == state or time.monotonic() >= deadline:
                break
            time.sleep(POLL_INTERVAL)
        if actual == state:
            return
        ours = sorted(
            f"{r.key} in {r.state}"
            for r in store.records()
            if r.module == module and self.tag in r.key
        )
        raise AssertionError(
            f"expected conversation {key!r} of {module} in state {state}, but after "
            f"{self.run.timeout:g}s it is in {actual}\n"
            + (
                "this scenario's conversations of that module: " + "; ".join(ours)
                if ours
                else "this scenario has no conversation of that module past START"
            )
        )

    def advance(self, delta: timedelta) -> None:
        raise NotPossibleLive(f"moving the clock ({delta}) is not possible against a live server")

    def host(self, domain: str) -> RemoteHost:
        raise NotPossibleLive(
            f"switching how the host {domain} behaves is not possible live: the server's "
            "relay hands everything to this run's sink"
        )

    def relay_report(self) -> RelayReport:
        hostname = self._app.hostname if self._app is not None else self.run.server.host
        return probe_relay(self.run.server, hostname, timeout=self.run.timeout)

    # The record -----------------------------------------------------------------------

    def _record(
        self, request: MailRequest, source: str, destination: str, recipient: str, outcome: str
    ) -> None:
        self.transcript.add(
            MessageEvent.of(
                request,
                time=datetime.now(UTC),
                source=source,
                destination=destination,
                outcome=outcome,
                recipient=recipient,
            )
        )

    def unexpected_mail(self) -> list[str]:
        self._collect()
        return [
            f"{person.address}: {mail.summary()}"
            for person in self._people.values()
            for mail in person.unseen
        ]

    def message_sources(self) -> dict[tuple[str, str], bytes]:
        """Each message's bytes, by (Message-ID, recipient as the feature names them)."""
        self._collect()
        return dict(self._sources)

    def state_note(self) -> str:
        if self.run.state_url is None:
            return "state transitions are not observable live (no --state-url)"
        return "state transitions are not recorded live; state steps read the server's database"

    def conversations(self) -> Iterator[str]:
        """This scenario's conversations in the server's database (with --state-url)."""
        if self.run.state_url is None:
            return
        for record in self.run.states.records():
            if self.tag in record.key:
                yield f"{record.module} [{record.key}] {record.state}"

    def close(self) -> None:
        """Nothing to let go of: connections last one message, the sink is the run's."""
