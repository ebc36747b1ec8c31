"""What the steps drive: the simulated world, or a live server, behind one interface.

Each scenario gets a fresh :class:`Driver`. :class:`WorldDriver` runs the
application in a :class:`~mailsim.world.World`; :class:`mailsim.live.LiveScenario`
talks to a real server. Steps speak only this interface, so the same feature file
runs in both; what a live server cannot do raises
:class:`~mailsim.live.NotPossibleLive`.

People are named as the feature names them; a driver maps them to the addresses
it really uses (:meth:`Driver.address_of`) — the same in the world, unique per
scenario live.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from mailsim_runtime.app import App
from mailsim_runtime.mail import MailRequest
from mailsim_runtime.project import AppTemplate
from mailsim_runtime.routing import Delivery

from mailsim.spec.matchers import Expected
from mailsim.spec.relay import RelayReport
from mailsim.world import RemoteHost, World
from mailsim.world.mailbox import ReceivedMail
from mailsim.world.transcript import Transcript

__all__ = ["Driver", "WorldDriver"]


class Driver(Protocol):
    """One scenario's conversations: sending, receiving, and asking about them."""

    @property
    def mode(self) -> str: ...  # "world" or "live"
    @property
    def app(self) -> App: ...
    @property
    def transcript(self) -> Transcript: ...

    def address_of(self, person: str) -> str: ...
    def localize(self, text: str, *, regex: bool = False) -> str: ...

    def send(
        self, person: str, to: str, *, subject: str, body: str, headers: Mapping[str, str]
    ) -> None: ...
    def reply(
        self, person: str, mail: ReceivedMail, *, body: str, headers: Mapping[str, str]
    ) -> None: ...
    def received(self, person: str) -> list[ReceivedMail]: ...
    def expect(self, person: str, expected: Expected | None) -> ReceivedMail: ...
    def expect_no_mail(self, person: str) -> None: ...

    def expect_state(self, module: str, key: str, state: str) -> None: ...
    def advance(self, delta: timedelta) -> None: ...
    def host(self, domain: str) -> RemoteHost: ...
    def relay_report(self) -> RelayReport: ...

    def unexpected_mail(self) -> list[str]: ...
    def message_sources(self) -> dict[tuple[str, str], bytes]: ...
    def state_note(self) -> str: ...
    def conversations(self) -> Iterator[str]: ...
    def close(self) -> None: ...


class WorldDriver:
    """The steps' driver over a fresh simulated world hosting *project*'s app (a folder,
    or the run's template of it)."""

    mode = "world"

    def __init__(self, project: Path | AppTemplate, *, strict: bool = True, seed: int = 0) -> None:
        self.world = World(project, strict=strict, seed=seed)
        self._sources: dict[tuple[str, str], bytes] = {}
        # The transcript says what crossed the world but keeps no bytes; the report
        # shows every message, so the bytes of mail handed to the app are noted on
        # the way in (mail to people is kept in their mailboxes anyway).
        deliver = self.world.app.deliver

        def deliver_and_note(message: MailRequest) -> Delivery:
            key = (message.message_id or "", message.recipient.lower())
            self._sources[key] = message.original
            return deliver(message)

        self.world.app.deliver = deliver_and_note  # type: ignore[method-assign]

    def __repr__(self) -> str:
        return f"<WorldDriver {self.world!r}>"

    @property
    def app(self) -> App:
        return self.world.app

    @property
    def transcript(self) -> Transcript:
        return self.world.transcript

    def address_of(self, person: str) -> str:
        return person

    def localize(self, text: str, *, regex: bool = False) -> str:
        return text

    def send(
        self, person: str, to: str, *, subject: str, body: str, headers: Mapping[str, str]
    ) -> None:
        self.world.mailbox(person).send(to, subject, body, headers=headers)

    def reply(
        self, person: str, mail: ReceivedMail, *, body: str, headers: Mapping[str, str]
    ) -> None:
        self.world.mailbox(person).reply(mail, body, headers=headers)

    def received(self, person: str) -> list[ReceivedMail]:
        return list(self.world.mailbox(person).messages)

    def expect(self, person: str, expected: Expected | None) -> ReceivedMail:
        matchers = [expected] if expected is not None else []
        return self.world.mailbox(person).expect(*matchers)

    def expect_no_mail(self, person: str) -> None:
        self.world.mailbox(person).expect_no_mail()

    def expect_state(self, module: str, key: str, state: str) -> None:
        self.world.expect_state(module, key, state)

    def advance(self, delta: timedelta) -> None:
        self.world.clock.advance(delta)

    def host(self, domain: str) -> RemoteHost:
        return self.world.host(domain)

    def relay_report(self) -> RelayReport:
        return self.world.check_open_relay()

    def unexpected_mail(self) -> list[str]:
        return self.world.unexpected_mail()

    def message_sources(self) -> dict[tuple[str, str], bytes]:
        sources = dict(self._sources)
        for box in self.world.mailboxes:
            for mail in box.messages:
                sources[(mail.message_id, box.address.lower())] = mail.request.original
        return sources

    def state_note(self) -> str:
        return ""

    def conversations(self) -> Iterator[str]:
        for record in self.world.app.states.records():
            yield f"{record.module} [{record.key}] {record.state}"

    def close(self) -> None:
        """A world holds nothing outside the process; it goes with the scenario."""
