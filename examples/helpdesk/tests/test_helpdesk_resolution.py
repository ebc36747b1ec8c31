"""Resolving a ticket, the satisfaction follow-up, and what a rating does."""

from __future__ import annotations

import pytest
from helpdesk_people import MODULE, OpenTicket, People, raw, ticket

from mailsim.world import World
from mailsim.world.mailbox import ReceivedMail


@pytest.fixture
def resolved(mail_world: World, people: People, open_ticket: OpenTicket) -> ReceivedMail:
    """Ticket 1: opened by alice, answered by agent1, resolved; the follow-up returned."""
    open_ticket(1)
    people.agent1.send(ticket(1), subject="Re: [Ticket #1] Printer on fire", body="Unplug it.")
    people.agent1.expect(subject="It is yours")
    people.alice.expect(body="Unplug it.")
    people.agent1.send(ticket(1, "resolve"))
    people.agent1.expect(subject="[Ticket #1] Resolved")
    follow_up = people.alice.expect(subject="[Ticket #1] How did we do?", sender=ticket(1))
    mail_world.expect_state(MODULE, "ticket-1", "RESOLVED")
    return follow_up


def test_resolving_asks_the_customer_how_we_did(
    mail_world: World, people: People, resolved: ReceivedMail
) -> None:
    assert ticket(1, "rate-good") in resolved.body
    assert ticket(1, "rate-bad") in resolved.body
    assert resolved["Auto-Submitted"] == "auto-generated"
    assert "agent1@" not in raw(resolved)
    people.manager.expect_no_mail()


def test_a_good_rating_closes_the_ticket(
    mail_world: World, people: People, resolved: ReceivedMail
) -> None:
    people.alice.send(ticket(1, "rate-good"))
    people.alice.expect(subject="[Ticket #1] Thank you", body="closed")
    mail_world.expect_state(MODULE, "ticket-1", "CLOSED")
    people.manager.expect_no_mail()
    people.agent1.expect_no_mail()


def test_a_bad_rating_reopens_the_ticket_and_tells_the_manager(
    mail_world: World, people: People, resolved: ReceivedMail
) -> None:
    people.alice.send(ticket(1, "rate-bad"), subject="Bad", body="It is still smoking.")
    people.alice.expect(subject="[Ticket #1] We are sorry")
    told = people.manager.expect(subject="[Ticket #1] Rated bad", body="> It is still smoking.")
    assert "agent1@staff.example.org" in told.body
    assert told["Reply-To"] == ticket(1, "claim")  # a reply takes the ticket over
    assert "alice@" not in raw(told)
    people.agent1.expect(subject="[Ticket #1] Open again", body="> It is still smoking.")
    mail_world.expect_state(MODULE, "ticket-1", "WAITING_AGENT")
    # The agent carries on, and resolves again.
    people.agent1.send(ticket(1), subject="Re: [Ticket #1] Printer on fire", body="New fuser.")
    people.alice.expect(body="New fuser.")
    people.agent1.send(ticket(1, "resolve"))
    people.agent1.expect(subject="Resolved")
    people.alice.expect(subject="How did we do?")
    people.alice.send(ticket(1, "rate-good"))
    people.alice.expect(subject="Thank you")
    mail_world.expect_state(MODULE, "ticket-1", "CLOSED")


def test_the_manager_takes_over_by_replying_to_a_bad_rating(
    mail_world: World, people: People, resolved: ReceivedMail
) -> None:
    people.alice.send(ticket(1, "rate-bad"), body="No.")
    people.alice.expect(subject="We are sorry")
    people.agent1.expect(subject="Open again")
    told = people.manager.expect(subject="Rated bad")
    people.manager.reply(told, "I will handle this myself.")
    people.manager.expect(subject="[Ticket #1] It is yours")
    people.agent1.expect(subject="[Ticket #1] Taken over by the manager")
    people.alice.expect_no_mail()  # what the manager wrote to the claim address stays inside
    mail_world.expect_state(MODULE, "ticket-1", "WAITING_AGENT")


def test_writing_back_instead_of_rating_reopens_the_ticket(
    mail_world: World, people: People, resolved: ReceivedMail
) -> None:
    people.alice.reply(resolved, "It started again this morning.")
    reopened = people.agent1.expect(body="started again")
    assert reopened["In-Reply-To"] == resolved.message_id
    mail_world.expect_state(MODULE, "ticket-1", "WAITING_AGENT")
    people.manager.expect_no_mail()


def test_the_agent_may_add_an_afterthought_to_a_resolved_ticket(
    mail_world: World, people: People, resolved: ReceivedMail
) -> None:
    people.agent1.send(ticket(1), subject="Re: [Ticket #1] Printer on fire", body="P.S. Dust it.")
    people.alice.expect(body="P.S. Dust it.")
    mail_world.expect_state(MODULE, "ticket-1", "RESOLVED")
    people.agent1.send(ticket(1, "resolve"))
    people.agent1.expect(subject="[Ticket #1] Already resolved")
    people.agent2.send(ticket(1), subject="Re: [Ticket #1] Printer on fire", body="Me too")
    people.agent2.expect(subject="[Ticket #1] Not your ticket")
    people.alice.expect_no_mail()
    mail_world.expect_state(MODULE, "ticket-1", "RESOLVED")


def test_a_closed_ticket_takes_no_more_mail(
    mail_world: World, people: People, resolved: ReceivedMail
) -> None:
    people.alice.send(ticket(1, "rate-good"))
    people.alice.expect(subject="Thank you")
    people.alice.send(ticket(1), subject="One more thing", body="Hello?")
    closed = people.alice.expect(subject="[Ticket #1] This ticket is closed")
    assert "support@help.example.com" in closed.body
    people.alice.send(ticket(1, "rate-bad"))
    people.alice.expect(subject="[Ticket #1] This ticket is closed")
    people.agent1.send(ticket(1), subject="Re: [Ticket #1] Printer on fire", body="Still there?")
    people.agent1.expect(subject="[Ticket #1] This ticket is closed")
    people.mallory.send(ticket(1), subject="Hi", body="Hi")
    people.mallory.expect(subject="[Ticket #1] Not your ticket")
    mail_world.expect_state(MODULE, "ticket-1", "CLOSED")


def test_only_the_customer_rates(mail_world: World, people: People, resolved: ReceivedMail) -> None:
    people.agent1.send(ticket(1, "rate-good"))
    people.agent1.expect(subject="[Ticket #1] Only the customer can rate")
    people.manager.send(ticket(1, "rate-bad"))
    people.manager.expect(subject="[Ticket #1] Only the customer can rate")
    mail_world.expect_state(MODULE, "ticket-1", "RESOLVED")


def test_one_ticket_goes_through_every_state(
    mail_world: World, people: People, open_ticket: OpenTicket
) -> None:
    open_ticket(1)
    people.agent2.send(ticket(1, "claim"))
    people.agent2.expect(subject="It is yours")
    people.alice.expect(subject="An agent is on it")
    people.agent2.send(ticket(1), subject="Re: [Ticket #1] Printer on fire", body="Model?")
    people.alice.reply(people.alice.expect(body="Model?"), "LaserJet.")
    people.agent2.send(ticket(1), subject="Re: [Ticket #1] Printer on fire", body="Fixed.")
    people.agent2.expect(body="LaserJet.")
    people.alice.expect(body="Fixed.")
    people.agent2.send(ticket(1, "resolve"))
    people.agent2.expect(subject="Resolved")
    people.alice.expect(subject="How did we do?")
    people.alice.send(ticket(1, "rate-good"))
    people.alice.expect(subject="Thank you")
    visited = {state for module, state in mail_world.transcript.states_visited()}
    # START → NEW happens when support@ opens the ticket (not a transition the router makes).
    assert visited == {
        "NEW",
        "ASSIGNED",
        "WAITING_CUSTOMER",
        "WAITING_AGENT",
        "RESOLVED",
        "CLOSED",
    }
