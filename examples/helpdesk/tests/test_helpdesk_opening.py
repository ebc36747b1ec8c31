"""Opening tickets: support@, the acknowledgement, the agents' notice, the ticket's key."""

from __future__ import annotations

import re

import pytest
from helpdesk_people import DESK, MODULE, OpenTicket, People
from mailsim_runtime import MailRequest
from mailsim_runtime.mail import Attachment

from mailsim.spelling import SpellChecker, assert_spelled_correctly
from mailsim.world import World


def test_a_mail_to_support_opens_a_ticket(mail_world: World, people: People) -> None:
    opening = people.alice.send(f"support@{DESK}", subject="Printer on fire", body="It smokes.")
    ack = people.alice.expect(subject="[Ticket #1] Printer on fire")
    assert ack.from_ == f"ticket-1@{DESK}"
    assert "ticket #1" in ack.body
    assert f"ticket-1@{DESK}" in ack.body
    # An automatic answer, in the thread of the customer's message (RFC 3834).
    assert ack["Auto-Submitted"] == "auto-replied"
    assert ack["In-Reply-To"] == opening
    for agent in people.agents:
        notice = agent.expect(subject="[Ticket #1] Printer on fire", body="> It smokes.")
        assert notice.from_ == f"ticket-1@{DESK}"
        assert notice["Reply-To"] == f"ticket-1@{DESK}"
        assert f"ticket-1-claim@{DESK}" in notice.body
        # The notice stands for the customer's message: an agent's reply threads under it.
        assert notice.message_id == opening
    people.manager.expect_no_mail()
    mail_world.expect_state(MODULE, "ticket-1", "NEW")


def test_tickets_are_numbered_from_the_apps_own_table(
    mail_world: World, people: People, open_ticket: OpenTicket
) -> None:
    open_ticket(1)
    open_ticket(2, customer=people.bob, subject="Lost my password")
    open_ticket(3, subject="Printer on fire again")
    for number in (1, 2, 3):
        mail_world.expect_state(MODULE, f"ticket-{number}", "NEW")


def test_the_conversation_key_is_the_ticket(mail_world: World) -> None:
    def key(recipient: str, sender: str = "alice@example.org") -> str:
        head = f"From: <{sender}>\r\nTo: <{recipient}>\r\n\r\n".encode()
        return mail_world.app.router.state_key(MODULE, MailRequest(None, sender, recipient, head))

    assert key(f"ticket-7@{DESK}") == "ticket-7"
    assert key(f"ticket-7-claim@{DESK}", "agent1@staff.example.org") == "ticket-7"
    assert key(f"ticket-7-rate-bad@{DESK}") == "ticket-7"
    assert key(f"support@{DESK}", "Alice@Example.org") == "intake:alice@example.org"


def test_a_message_without_a_subject_still_opens_a_ticket(people: People) -> None:
    people.alice.send(f"support@{DESK}", body="Help!")
    people.alice.expect(subject="[Ticket #1] (no subject)")
    for agent in people.agents:
        agent.expect(subject="[Ticket #1] (no subject)", body="> Help!")


def test_attachments_reach_the_agents(people: People) -> None:
    photo = Attachment("smoke.png", "image/png", b"\x89PNG not really")
    people.alice.send(f"support@{DESK}", subject="Look", body="See the photo.", attachments=[photo])
    people.alice.expect(subject="[Ticket #1] Look")
    for agent in people.agents:
        notice = agent.expect(subject="[Ticket #1] Look", attachment="smoke.png")
        assert notice.attachments()[0].data == photo.data


def test_automatic_mail_to_support_opens_no_ticket(mail_world: World, people: People) -> None:
    people.alice.send(
        f"support@{DESK}",
        subject="Out of office",
        body="I am away.",
        headers={"Auto-Submitted": "auto-replied"},
    )
    people.alice.expect_no_mail()
    for agent in people.agents:
        agent.expect_no_mail()
    # Kept for a person to look at, not dropped.
    kept = mail_world.app.queues["undeliverable"]
    assert len(kept) == 1
    mail_world.expect_state(MODULE, "ticket-1", "START")


def test_mail_to_a_ticket_that_does_not_exist(mail_world: World, people: People) -> None:
    people.mallory.send(f"ticket-42@{DESK}", subject="Hello?")
    refusal = people.mallory.expect(subject="No ticket #42")
    # From the address written to: a careless robot's answer must not open a ticket.
    assert refusal.from_ == f"ticket-42@{DESK}"
    assert f"support@{DESK}" in refusal.body
    people.mallory.send(f"ticket-42-claim@{DESK}")
    people.mallory.expect(subject="No ticket #42")
    for agent in people.agents:
        agent.expect_no_mail()
    mail_world.expect_state(MODULE, "ticket-42", "START")
    assert mail_world.app.states.records() == []


@pytest.mark.parametrize(
    "address",
    [
        f"ticket-0@{DESK}",  # numbers start at 1
        f"ticket-007@{DESK}",  # one spelling per ticket
        f"ticket-1-delete@{DESK}",  # no such action
        f"ticket-1234567890@{DESK}",  # longer than any ticket number
        f"help@{DESK}",
    ],
)
def test_addresses_no_route_takes_are_refused_at_rcpt(mail_world: World, address: str) -> None:
    assert not mail_world.app.accepts(address)


def test_the_desk_is_not_an_open_relay(mail_world: World) -> None:
    report = mail_world.check_open_relay()
    assert not report.open, str(report)


def test_every_template_is_spelled_correctly(mail_world: World) -> None:
    assert_spelled_correctly(SpellChecker().check_templates(mail_world.app.views))


def test_every_template_renders(mail_world: World) -> None:
    """Each template with every variable a handler gives it (StrictUndefined)."""
    views = mail_world.app.views
    variables = {
        "desk": "Example Help Desk",
        "number": 1,
        "asked": 1,
        "subject": "Printer on fire",
        "agent": "agent1@staff.example.org",
        "ticket_address": f"ticket-1@{DESK}",
        "claim_address": f"ticket-1-claim@{DESK}",
        "resolve_address": f"ticket-1-resolve@{DESK}",
        "rate_good": f"ticket-1-rate-good@{DESK}",
        "rate_bad": f"ticket-1-rate-bad@{DESK}",
        "support_address": f"support@{DESK}",
        "claim_within": "4 hours",
        "answer_within": "8 hours",
        "text": "> hello",
        "comment": "> bad",
        "is_manager": True,
    }
    names = views.template_names()
    assert len(names) == 23
    for name in names:
        text = views.render(name, variables)
        assert not re.search(r"\{\{|\{%", text), name


def test_wrong_settings_are_reported_naming_the_key(mail_world: World) -> None:
    from app.desk import desk_of  # the project's package, importable once its world is built

    settings = mail_world.app.settings
    del settings["claim_within"]
    with pytest.raises(ValueError, match=r"\[settings\] has no claim_within"):
        desk_of(mail_world.app)
    settings.update(claim_within="4h", answer_within="soon", agents=[])
    with pytest.raises(ValueError, match=r"\[settings\] agents"):
        desk_of(mail_world.app)
    settings["agents"] = ["Agent1@Staff.example.org"]
    with pytest.raises(ValueError, match=r"\[settings\] answer_within"):
        desk_of(mail_world.app)
    settings.update(answer_within="8h", manager="nobody")
    with pytest.raises(ValueError, match=r"\[settings\] manager"):
        desk_of(mail_world.app)
    settings["manager"] = "boss@staff.example.org"
    desk = desk_of(mail_world.app)
    assert desk.agents == ("agent1@staff.example.org",)
    assert desk.ticket_address(3, "claim") == f"ticket-3-claim@{DESK}"


def test_a_careless_robot_gets_one_refusal_not_a_loop(mail_world: World) -> None:
    """An out-of-office program that ignores RFC 3834 answers everything, refusals too."""
    mail_world.host("example.net").vacation("rob@example.net", "Away", follows_rfc3834=False)
    rob = mail_world.mailbox("rob@example.net")
    rob.send(f"ticket-42@{DESK}", subject="Hello?")
    rob.expect(subject="No ticket #42")  # its answer to that is not answered
    assert [m.subject for m in mail_world.transcript.messages] == [
        "Hello?",
        "No ticket #42",
        "Auto: No ticket #42",
    ]
    mail_world.expect_state(MODULE, "ticket-1", "START")  # and opens no ticket
