"""Escalation: the manager hears about tickets nobody takes and customers nobody answers.

The desk's settings give 4 hours to take a ticket and 8 hours to answer a
customer. Time only passes when the test moves the world's clock, and the check
runs only when the test runs it (``escalate()``), as cron would in production.
"""

from __future__ import annotations

import importlib

from helpdesk_people import MODULE, Escalate, OpenTicket, People, raw, ticket

from mailsim.world import World


def test_an_unclaimed_ticket_is_escalated_after_the_limit_and_not_before(
    mail_world: World, people: People, open_ticket: OpenTicket, escalate: Escalate
) -> None:
    open_ticket(1)
    mail_world.clock.advance(hours=3, minutes=59)
    assert escalate() == []
    people.manager.expect_no_mail()
    mail_world.clock.advance(minutes=1)
    assert len(escalate()) == 1
    told = people.manager.expect(subject="[Ticket #1] Nobody has taken it", sender=ticket(1))
    assert "4 hours" in told.body
    assert told["Reply-To"] == ticket(1, "claim")
    assert "alice@" not in raw(told)
    for agent in people.agents:
        agent.expect_no_mail()
    people.alice.expect_no_mail()
    mail_world.expect_state(MODULE, "ticket-1", "NEW")  # escalating does not change the state


def test_an_escalation_is_sent_once(
    mail_world: World, people: People, open_ticket: OpenTicket, escalate: Escalate
) -> None:
    open_ticket(1)
    mail_world.clock.advance(hours=5)
    escalate()
    people.manager.expect(subject="Nobody has taken it")
    for _ in range(3):
        mail_world.clock.advance(hours=1)
        assert escalate() == []
    people.manager.expect_no_mail()


def test_a_ticket_claimed_in_time_is_not_escalated(
    mail_world: World, people: People, open_ticket: OpenTicket, escalate: Escalate
) -> None:
    open_ticket(1)
    mail_world.clock.advance(hours=2)
    people.agent1.send(ticket(1, "claim"))
    people.agent1.expect(subject="It is yours")
    people.alice.expect(subject="An agent is on it")
    mail_world.clock.advance(hours=3)
    assert escalate() == []
    people.manager.expect_no_mail()


def test_each_ticket_is_escalated_on_its_own_time(
    mail_world: World, people: People, open_ticket: OpenTicket, escalate: Escalate
) -> None:
    open_ticket(1)
    mail_world.clock.advance(hours=2)
    open_ticket(2, customer=people.bob, subject="Lost my password")
    mail_world.clock.advance(hours=2)
    escalate()
    people.manager.expect(subject="[Ticket #1] Nobody has taken it")
    people.manager.expect_no_mail()
    mail_world.clock.advance(hours=2)
    escalate()
    people.manager.expect(subject="[Ticket #2] Nobody has taken it")


def test_the_manager_claims_an_escalated_ticket_by_replying(
    mail_world: World, people: People, open_ticket: OpenTicket, escalate: Escalate
) -> None:
    open_ticket(1)
    mail_world.clock.advance(hours=4)
    escalate()
    told = people.manager.expect(subject="Nobody has taken it")
    people.manager.reply(told, "Mine.")
    people.manager.expect(subject="[Ticket #1] It is yours")
    people.alice.expect(subject="[Ticket #1] An agent is on it")
    mail_world.expect_state(MODULE, "ticket-1", "ASSIGNED")


def test_a_customer_left_unanswered_is_escalated(
    mail_world: World, people: People, open_ticket: OpenTicket, escalate: Escalate
) -> None:
    open_ticket(1)
    people.agent1.send(ticket(1, "claim"))
    people.agent1.expect(subject="It is yours")
    people.alice.expect(subject="An agent is on it")
    # The customer has waited since the ticket was opened: claiming is not answering.
    mail_world.clock.advance(hours=7, minutes=59)
    assert escalate() == []
    mail_world.clock.advance(minutes=1)
    escalate()
    told = people.manager.expect(subject="[Ticket #1] The customer is waiting")
    assert "8 hours" in told.body
    assert "agent1@staff.example.org" in told.body
    mail_world.clock.advance(hours=8)
    assert escalate() == []  # once
    people.agent1.expect_no_mail()
    people.manager.expect_no_mail()


def test_waiting_starts_again_with_each_unanswered_message(
    mail_world: World, people: People, open_ticket: OpenTicket, escalate: Escalate
) -> None:
    open_ticket(1)
    people.agent1.send(ticket(1), subject="Re: [Ticket #1] Printer on fire", body="Model?")
    people.agent1.expect(subject="It is yours")
    people.alice.expect(body="Model?")
    # The agent answered: the customer's silence is no one's fault.
    mail_world.clock.advance(hours=20)
    assert escalate() == []
    people.alice.send(ticket(1), subject="Re: [Ticket #1] Printer on fire", body="LaserJet.")
    people.agent1.expect(body="LaserJet.")
    mail_world.clock.advance(hours=6)
    # A second message does not restart the wait: the first is still unanswered.
    people.alice.send(ticket(1), subject="Re: [Ticket #1] Printer on fire", body="Hello?")
    people.agent1.expect(body="Hello?")
    mail_world.clock.advance(hours=2)
    escalate()
    people.manager.expect(subject="[Ticket #1] The customer is waiting")
    # Answered, then waiting again: a new wait may be escalated again.
    people.agent1.send(ticket(1), subject="Re: [Ticket #1] Printer on fire", body="Sorry!")
    people.alice.expect(body="Sorry!")
    people.alice.send(ticket(1), subject="Re: [Ticket #1] Printer on fire", body="Well?")
    people.agent1.expect(body="Well?")
    mail_world.clock.advance(hours=8)
    escalate()
    people.manager.expect(subject="[Ticket #1] The customer is waiting")
    mail_world.expect_state(MODULE, "ticket-1", "WAITING_AGENT")


def test_resolved_and_closed_tickets_are_not_escalated(
    mail_world: World, people: People, open_ticket: OpenTicket, escalate: Escalate
) -> None:
    open_ticket(1)
    people.agent1.send(ticket(1, "claim"))
    people.agent1.expect(subject="It is yours")
    people.alice.expect(subject="An agent is on it")
    people.agent1.send(ticket(1, "resolve"))
    people.agent1.expect(subject="Resolved")
    people.alice.expect(subject="How did we do?")
    mail_world.clock.advance(days=3)
    assert escalate() == []
    people.manager.expect_no_mail()


def test_two_checks_at_once_send_one_escalation(
    mail_world: World, people: People, open_ticket: OpenTicket
) -> None:
    """Both checks found the ticket overdue; only the one that notes it first sends."""
    open_ticket(1)
    open_ticket(2, customer=people.bob, subject="Lost my password")
    people.agent1.send(ticket(2, "claim"))
    people.agent1.expect(subject="It is yours")
    people.bob.expect(subject="An agent is on it")
    model = importlib.import_module("app.model")
    with mail_world.app.bound():
        now = mail_world.app.clock.now()
        assert model.mark_escalated(1, "unclaimed", now)
        assert not model.mark_escalated(1, "unclaimed", now)
        # Taken meanwhile: no longer unclaimed, whatever the check read before.
        assert not model.mark_escalated(2, "unclaimed", now)
