"""The help desk's people, and the steps every test begins with.

The world hosts the project of this folder's ``mailsim.toml`` (the ``mail_world``
fixture finds it). Its settings name two agents and a manager at
staff.example.org; customers and strangers live at example.org.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

import pytest
from helpdesk_people import DESK, PROJECT, Escalate, OpenTicket, People

from mailsim.world import Mailbox, World
from mailsim.world.mailbox import ReceivedMail


@pytest.fixture
def people(mailbox: Callable[[str], Mailbox]) -> People:
    return People(
        alice=mailbox("alice@example.org"),
        bob=mailbox("bob@example.org"),
        agent1=mailbox("agent1@staff.example.org"),
        agent2=mailbox("agent2@staff.example.org"),
        manager=mailbox("manager@staff.example.org"),
        mallory=mailbox("mallory@example.org"),
    )


@pytest.fixture
def open_ticket(people: People) -> OpenTicket:
    """``open_ticket(number, customer=alice, subject=…, body=…)``: write to support@,
    check the acknowledgement and both agents' notices; returns the acknowledgement."""

    def open_it(
        number: int,
        customer: Mailbox | None = None,
        subject: str = "Printer on fire",
        body: str = "The printer smokes when I print.",
    ) -> ReceivedMail:
        customer = customer or people.alice
        customer.send(f"support@{DESK}", subject=subject, body=body)
        ack = customer.expect(
            subject=f"[Ticket #{number}] {subject}", sender=f"ticket-{number}@{DESK}"
        )
        for agent in people.agents:
            agent.expect(subject=f"[Ticket #{number}] {subject}", body=body)
        return ack

    return open_it


@pytest.fixture
def escalate(mail_world: World) -> Escalate:
    """Run the desk's periodic check now, as cron would, and deliver what it sends."""

    def run() -> list[str]:
        # The project's own package: the world put this project first on the path.
        escalation = importlib.import_module("app.escalation")
        assert Path(escalation.__file__ or "").resolve().is_relative_to(PROJECT)
        sent: list[str] = escalation.check_escalations(mail_world.app)
        mail_world.run_until_quiet()
        return sent

    return run
