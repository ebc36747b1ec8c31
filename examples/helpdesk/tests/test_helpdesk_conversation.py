"""Taking a ticket, and the conversation between the customer and the agent through it."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from helpdesk_people import DESK, MODULE, OpenTicket, People, raw, ticket

from mailsim.world import World


def test_an_agent_claims_a_new_ticket(
    mail_world: World, people: People, open_ticket: OpenTicket
) -> None:
    open_ticket(1)
    people.agent1.send(ticket(1, "claim"))
    mine = people.agent1.expect(subject="[Ticket #1] It is yours")
    assert ticket(1, "resolve") in mine.body
    people.alice.expect(subject="[Ticket #1] An agent is on it", sender=ticket(1))
    mail_world.expect_state(MODULE, "ticket-1", "ASSIGNED")
    people.agent2.expect_no_mail()
    people.manager.expect_no_mail()


def test_a_second_agent_cannot_claim_the_same_ticket(
    mail_world: World, people: People, open_ticket: OpenTicket
) -> None:
    open_ticket(1)
    people.agent1.send(ticket(1, "claim"))
    people.agent1.expect(subject="It is yours")
    people.alice.expect(subject="An agent is on it")
    people.agent2.send(ticket(1, "claim"))
    taken = people.agent2.expect(subject="[Ticket #1] Already taken")
    assert "agent1@staff.example.org" in taken.body  # staff may know each other
    people.alice.expect_no_mail()
    people.agent1.expect_no_mail()
    mail_world.expect_state(MODULE, "ticket-1", "ASSIGNED")
    # Nor by answering the customer: the answer is not passed on.
    people.agent2.send(ticket(1), subject="Re: [Ticket #1] Printer on fire", body="Try this")
    people.agent2.expect(subject="[Ticket #1] Not your ticket", body="not been passed on")
    people.alice.expect_no_mail()
    mail_world.expect_state(MODULE, "ticket-1", "ASSIGNED")


def test_answering_the_new_ticket_notice_claims_it_and_reaches_the_customer(
    mail_world: World, people: People
) -> None:
    opening = people.alice.send(f"support@{DESK}", subject="Printer on fire", body="Smoke!")
    people.alice.expect(subject="[Ticket #1] Printer on fire")
    notice = people.agent1.expect(subject="[Ticket #1] Printer on fire")
    people.agent2.expect(subject="[Ticket #1] Printer on fire")
    answer_id = people.agent1.reply(notice, "Unplug it, then call us.")
    people.agent1.expect(subject="[Ticket #1] It is yours")
    answer = people.alice.expect(subject="Re: [Ticket #1] Printer on fire", body="Unplug it")
    # Threading kept: the customer sees an answer to the message they wrote.
    assert answer.message_id == answer_id
    assert answer["In-Reply-To"] == opening
    assert answer["References"] == opening
    assert answer.from_ == ticket(1)
    assert answer["Reply-To"] == ticket(1)
    mail_world.expect_state(MODULE, "ticket-1", "WAITING_CUSTOMER")
    # A late claim by the other agent changes nothing.
    people.agent2.send(ticket(1, "claim"))
    people.agent2.expect(subject="Already taken")


def test_the_customer_and_the_agent_write_in_turn_threads_kept(
    mail_world: World, people: People, open_ticket: OpenTicket
) -> None:
    ack = open_ticket(1)
    people.agent1.send(ticket(1, "claim"))
    people.agent1.expect(subject="It is yours")
    people.alice.expect(subject="An agent is on it")

    # Agent → customer.
    people.agent1.send(ticket(1), subject="Re: [Ticket #1] Printer on fire", body="Which model?")
    first = people.alice.expect(body="Which model?")
    assert first.from_ == ticket(1)
    mail_world.expect_state(MODULE, "ticket-1", "WAITING_CUSTOMER")

    # Customer → agent, replying to the relayed answer.
    reply_id = people.alice.reply(first, "A LaserJet 4.")
    to_agent = people.agent1.expect(body="A LaserJet 4.")
    assert to_agent.from_ == ticket(1)
    assert to_agent.message_id == reply_id
    assert to_agent["In-Reply-To"] == first.message_id
    assert to_agent["References"] == f"{first.message_id}"
    mail_world.expect_state(MODULE, "ticket-1", "WAITING_AGENT")

    # Customer again (replying to the acknowledgement): still waiting for the agent.
    people.alice.reply(ack, "It is also beeping.")
    again = people.agent1.expect(body="also beeping")
    assert again["In-Reply-To"] == ack.message_id
    mail_world.expect_state(MODULE, "ticket-1", "WAITING_AGENT")

    # Agent → customer, replying to what the agent got: the customer's own ids.
    people.agent1.reply(to_agent, "Replace the fuser.")
    last = people.alice.expect(body="Replace the fuser.")
    assert last["In-Reply-To"] == reply_id
    assert last["References"] == f"{first.message_id} {reply_id}"
    mail_world.expect_state(MODULE, "ticket-1", "WAITING_CUSTOMER")
    people.agent2.expect_no_mail()


def test_nobody_sees_the_other_partys_address(
    mail_world: World, people: People, open_ticket: OpenTicket
) -> None:
    open_ticket(1)
    people.agent1.send(
        ticket(1),
        subject="Re: [Ticket #1] Printer on fire",
        body="Hello",
        headers={"Sender": "agent1@staff.example.org", "Organization": "Staff"},
    )
    people.agent1.expect(subject="It is yours")
    people.alice.expect(body="Hello")
    people.alice.send(ticket(1), subject="Re: [Ticket #1] Printer on fire", body="Hi back")
    people.agent1.expect(body="Hi back")
    for mail in people.alice.messages:
        assert "agent1@" not in raw(mail)
        assert "agent2@" not in raw(mail)
        assert "manager@" not in raw(mail)
    for agent in people.agents:
        for mail in agent.messages:
            assert "alice@" not in raw(mail)
    assert "organization" not in raw(people.alice.messages[-1])


def test_the_customer_adds_to_a_ticket_nobody_has_taken(
    mail_world: World, people: People, open_ticket: OpenTicket
) -> None:
    open_ticket(1)
    people.alice.send(ticket(1), subject="More", body="It is on fire now.")
    for agent in people.agents:
        added = agent.expect(subject="[Ticket #1] More", body="on fire now")
        assert added.from_ == ticket(1)
    mail_world.expect_state(MODULE, "ticket-1", "NEW")


def test_a_stranger_cannot_write_to_someone_elses_ticket(
    mail_world: World, people: People, open_ticket: OpenTicket
) -> None:
    open_ticket(1)
    for action in (None, "claim", "resolve", "rate-good", "rate-bad"):
        people.mallory.send(ticket(1, action), subject="Let me in", body="secret plans")
        refusal = people.mallory.expect(subject="[Ticket #1] Not your ticket")
        assert "printer" not in refusal.body.lower()  # nothing about the ticket leaks
    people.alice.expect_no_mail()
    for agent in people.agents:
        agent.expect_no_mail()
    mail_world.expect_state(MODULE, "ticket-1", "NEW")
    # Nor once it is taken.
    people.agent1.send(ticket(1, "claim"))
    people.agent1.expect(subject="It is yours")
    people.alice.expect(subject="An agent is on it")
    people.mallory.send(ticket(1), subject="Let me in", body="secret plans")
    people.mallory.expect(subject="Not your ticket", body="Only the customer")
    people.agent1.expect_no_mail()
    mail_world.expect_state(MODULE, "ticket-1", "ASSIGNED")


def test_a_careless_robot_writing_to_a_ticket_gets_one_refusal(
    mail_world: World, people: People, open_ticket: OpenTicket
) -> None:
    mail_world.host("example.net").vacation("rob@example.net", "Away", follows_rfc3834=False)
    rob = mail_world.mailbox("rob@example.net")
    open_ticket(1)
    rob.send(ticket(1), subject="Hello", body="Anyone?")
    rob.expect(subject="[Ticket #1] Not your ticket")
    rob.expect_no_mail()
    people.alice.expect_no_mail()
    for agent in people.agents:
        agent.expect_no_mail()
    assert len(mail_world.transcript.messages) == 4 + 3  # the opening, then three


def test_a_customer_cannot_write_to_another_customers_ticket(
    mail_world: World, people: People, open_ticket: OpenTicket
) -> None:
    open_ticket(1)
    open_ticket(2, customer=people.bob, subject="Lost my password")
    people.bob.send(ticket(1), subject="Me too", body="hello")
    people.bob.expect(subject="[Ticket #1] Not your ticket")
    people.alice.expect_no_mail()


def test_the_customer_cannot_claim_or_resolve(
    mail_world: World, people: People, open_ticket: OpenTicket
) -> None:
    open_ticket(1)
    for action in ("claim", "resolve"):
        people.alice.send(ticket(1, action))
        people.alice.expect(subject="[Ticket #1] Only for the support staff")
    mail_world.expect_state(MODULE, "ticket-1", "NEW")


def test_a_ticket_nobody_has_taken_cannot_be_resolved_or_rated(
    mail_world: World, people: People, open_ticket: OpenTicket
) -> None:
    open_ticket(1)
    people.agent1.send(ticket(1, "resolve"))
    people.agent1.expect(subject="[Ticket #1] Nobody has taken it yet", body=ticket(1, "claim"))
    people.alice.send(ticket(1, "rate-good"))
    people.alice.expect(subject="[Ticket #1] Not resolved yet")
    people.agent1.send(ticket(1, "rate-bad"))
    people.agent1.expect(subject="[Ticket #1] Only the customer can rate")
    mail_world.expect_state(MODULE, "ticket-1", "NEW")


def test_only_the_agent_who_has_the_ticket_resolves_it(
    mail_world: World, people: People, open_ticket: OpenTicket
) -> None:
    open_ticket(1)
    people.agent1.send(ticket(1, "claim"))
    people.agent1.expect(subject="It is yours")
    people.alice.expect(subject="An agent is on it")
    people.agent2.send(ticket(1, "resolve"))
    refusal = people.agent2.expect(subject="[Ticket #1] Not your ticket")
    assert "take the ticket over" not in refusal.body  # that is for the manager
    people.alice.expect_no_mail()
    mail_world.expect_state(MODULE, "ticket-1", "ASSIGNED")


def test_the_manager_may_take_over_a_ticket(
    mail_world: World, people: People, open_ticket: OpenTicket
) -> None:
    open_ticket(1)
    people.agent1.send(ticket(1, "claim"))
    people.agent1.expect(subject="It is yours")
    people.alice.expect(subject="An agent is on it")
    people.manager.send(ticket(1), subject="Re: [Ticket #1] Printer on fire", body="Hi")
    advice = people.manager.expect(subject="[Ticket #1] Not your ticket")
    assert ticket(1, "claim") in advice.body
    people.alice.expect_no_mail()
    people.manager.send(ticket(1, "claim"))
    people.manager.expect(subject="[Ticket #1] It is yours")
    people.agent1.expect(subject="[Ticket #1] Taken over by the manager")
    mail_world.expect_state(MODULE, "ticket-1", "ASSIGNED")
    # From now on the customer's mail goes to the manager, and agent1's is refused.
    people.alice.send(ticket(1), subject="Re: [Ticket #1] Printer on fire", body="Hello?")
    people.manager.expect(body="Hello?")
    people.agent1.send(ticket(1), subject="Re: [Ticket #1] Printer on fire", body="Me again")
    people.agent1.expect(subject="Not your ticket")
    people.manager.send(ticket(1), subject="Re: [Ticket #1] Printer on fire", body="On my way")
    people.alice.expect(body="On my way")
    mail_world.expect_state(MODULE, "ticket-1", "WAITING_CUSTOMER")


@pytest.mark.mailsim(raise_errors=False)
def test_a_ticket_recovers_from_a_failed_handler(
    mail_world: World,
    people: People,
    open_ticket: OpenTicket,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    open_ticket(1)
    people.agent1.send(ticket(1, "claim"))
    people.agent1.expect(subject="It is yours")
    people.alice.expect(subject="An agent is on it")
    handlers = importlib.import_module(MODULE)
    working = handlers.relay_copy
    failures = iter([RuntimeError("the disk is full")])

    def fail_once(*args: Any) -> None:
        error = next(failures, None)
        if error is not None:
            raise error
        working(*args)

    monkeypatch.setattr(handlers, "relay_copy", fail_once)
    people.alice.send(ticket(1), subject="Re: [Ticket #1] Printer on fire", body="Hello?")
    people.agent1.expect_no_mail()  # lost? No: kept in the undeliverable queue, and logged
    assert len(mail_world.app.queues["undeliverable"]) == 1
    mail_world.expect_state(MODULE, "ticket-1", "ERROR")
    # The next message finds the ticket's state from its row and carries on.
    people.alice.send(ticket(1), subject="Re: [Ticket #1] Printer on fire", body="Anyone?")
    people.agent1.expect(body="Anyone?")
    mail_world.expect_state(MODULE, "ticket-1", "WAITING_AGENT")
