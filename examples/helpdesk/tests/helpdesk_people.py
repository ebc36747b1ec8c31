"""The people of the help desk's tests, and names the tests share.

Its own module (not ``conftest``) so that test files can import it: several
projects' tests run in one pytest session, and each has a ``conftest``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mailsim.world import Mailbox
from mailsim.world.mailbox import ReceivedMail

PROJECT = Path(__file__).resolve().parents[1]
MODULE = "app.handlers.helpdesk"
DESK = "help.example.com"

#: ``open_ticket(number, customer=alice, subject=…, body=…)`` → the acknowledgement.
OpenTicket = Callable[..., ReceivedMail]
#: ``escalate()`` → one line for each escalation sent.
Escalate = Callable[[], list[str]]


@dataclass(frozen=True)
class People:
    alice: Mailbox  # a customer
    bob: Mailbox  # another customer
    agent1: Mailbox
    agent2: Mailbox
    manager: Mailbox
    mallory: Mailbox  # nobody the desk knows

    @property
    def agents(self) -> tuple[Mailbox, Mailbox]:
        return (self.agent1, self.agent2)


def ticket(number: int, action: str | None = None) -> str:
    """A ticket's address: ``ticket(1)``, ``ticket(1, "claim")``."""
    return f"ticket-{number}@{DESK}" if action is None else f"ticket-{number}-{action}@{DESK}"


def raw(mail: ReceivedMail) -> str:
    """The whole message as it arrived, headers and all, lower-cased: for privacy checks."""
    return mail.request.original.decode("utf-8", "replace").lower()
