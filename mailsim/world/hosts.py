"""Remote mail hosts with behaviour.

Every domain that is not the application's is a :class:`RemoteHost`. By default it
accepts everything for its people; a test switches its behaviour between steps::

    world.host("example.net").down()
    world.host("example.net").defer(times=2)
    world.host("example.net").bounce("bob@example.net")
    world.host("example.net").vacation("bob@example.net", "I am away until Monday.")
    world.host("example.net").accept()      # back to normal

A host answers each recipient as a real server would (250 / 4xx / 5xx); the
application's relay decides what to do about it (retry, bounce).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from functools import lru_cache

from mailsim_runtime.transport import RecipientResult

__all__ = ["Behaviour", "RemoteHost", "Verdict"]


class Behaviour(Enum):
    ACCEPT = "accepts mail"
    REFUSE = "refuses mail"
    DEFER = "defers mail"
    GREYLIST = "greylists"
    DOWN = "is down"


@dataclass(frozen=True)
class Verdict:
    """What a host said to one recipient, and what it will do after accepting."""

    result: RecipientResult
    bounce: tuple[str, str] | None = None  # (status, diagnostic) of a later DSN
    vacation: str | None = None  # text of an automatic reply


@dataclass
class RemoteHost:
    """A mail domain outside the application."""

    domain: str
    behaviour: Behaviour = Behaviour.ACCEPT
    code: int = 250
    text: str = ""
    deferrals_left: int | None = None  # None: defer forever
    greylist_delay: timedelta = timedelta(minutes=5)
    bounces: dict[str, tuple[str, str]] = field(default_factory=dict)
    vacations: dict[str, str] = field(default_factory=dict)
    vacation_follows_rfc3834: bool = True
    _greylist_seen: dict[tuple[str, str], datetime] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.domain} {self.behaviour.value}"

    @property
    def mx(self) -> str:
        return f"mx.{self.domain}"

    # Switching behaviour ------------------------------------------------------------

    def accept(self) -> RemoteHost:
        """Back to normal: accept every recipient (bounce and vacation lists are kept)."""
        self.behaviour, self.code, self.text = Behaviour.ACCEPT, 250, ""
        return self

    def refuse(self, code: int = 550, text: str = "5.7.1 mail refused") -> RemoteHost:
        """Refuse every recipient permanently."""
        if not 500 <= code < 600:
            raise ValueError(f"a refusal is a 5xx code, not {code}")
        self.behaviour, self.code, self.text = Behaviour.REFUSE, code, text
        return self

    def defer(
        self, times: int | None = None, code: int = 451, text: str = "4.3.0 try again later"
    ) -> RemoteHost:
        """Answer 4xx — *times* times, then accept; forever when *times* is None."""
        if not 400 <= code < 500:
            raise ValueError(f"a deferral is a 4xx code, not {code}")
        self.behaviour, self.code, self.text = Behaviour.DEFER, code, text
        self.deferrals_left = times
        return self

    def greylist(self, delay: timedelta = timedelta(minutes=5)) -> RemoteHost:
        """Defer a (sender, recipient) pair seen for the first time, until *delay* has passed."""
        self.behaviour, self.greylist_delay = Behaviour.GREYLIST, delay
        self._greylist_seen.clear()
        return self

    def down(self) -> RemoteHost:
        """Stop answering: every attempt fails as a connection would (temporary)."""
        self.behaviour = Behaviour.DOWN
        return self

    def up(self) -> RemoteHost:
        return self.accept()

    def bounce(self, address: str, status: str = "5.1.1", text: str = "user unknown") -> RemoteHost:
        """Accept mail for *address*, then send its sender an RFC 3464 bounce."""
        self.bounces[address.lower()] = (status, f"550 {status} <{address}>: {text}")
        return self

    def vacation(
        self,
        address: str,
        text: str = "I am away and will answer when I am back.",
        *,
        follows_rfc3834: bool = True,
    ) -> RemoteHost:
        """Deliver mail for *address* and answer it automatically.

        A responder that follows RFC 3834 leaves alone bounces, automatic mail and
        list mail; ``follows_rfc3834=False`` makes a careless one, for loop tests.
        """
        self.vacations[address.lower()] = text
        self.vacation_follows_rfc3834 = follows_rfc3834
        return self

    # Receiving ----------------------------------------------------------------------

    def receive(self, sender: str, recipient: str, now: datetime) -> Verdict:
        """The host's answer to RCPT for *recipient* (and what happens afterwards)."""
        address = recipient.lower()
        if self.behaviour is not Behaviour.ACCEPT:  # one look, for the many hosts that accept
            refusal = self._refusal(sender, recipient, address, now)
            if refusal is not None:
                return refusal
        bounce, vacation = self.bounces.get(address), self.vacations.get(address)
        if bounce is None and vacation is None:
            return _accepted(recipient, self.mx)
        return Verdict(self._result(recipient, 250, "2.0.0 OK"), bounce=bounce, vacation=vacation)

    def _refusal(self, sender: str, recipient: str, address: str, now: datetime) -> Verdict | None:
        """What a host that is not simply accepting answers, or None if it accepts."""
        if self.behaviour is Behaviour.DOWN:
            return Verdict(self._result(recipient, 421, f"4.4.1 {self.mx}: connection refused"))
        if self.behaviour is Behaviour.REFUSE:
            return Verdict(self._result(recipient, self.code, self.text))
        if self.behaviour is Behaviour.DEFER and (
            self.deferrals_left is None or self.deferrals_left > 0
        ):
            if self.deferrals_left is not None:
                self.deferrals_left -= 1
            return Verdict(self._result(recipient, self.code, self.text))
        if self.behaviour is Behaviour.GREYLIST:
            first_seen = self._greylist_seen.setdefault((sender.lower(), address), now)
            if now - first_seen < self.greylist_delay:
                return Verdict(
                    self._result(recipient, 451, "4.7.1 greylisted, please try again later")
                )
        return None

    def _result(self, recipient: str, code: int, text: str) -> RecipientResult:
        return RecipientResult(recipient, code, text, self.mx)


# A plain acceptance is the same answer every time: one frozen verdict per address,
# shared, rather than two new objects for every message.
@lru_cache(maxsize=1024)
def _accepted(recipient: str, mx: str) -> Verdict:
    return Verdict(RecipientResult(recipient, 250, "2.0.0 OK", mx))
