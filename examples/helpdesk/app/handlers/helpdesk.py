"""The help desk: a ticket is a conversation between a customer, an agent and a manager.

A customer writes to ``support@``. :func:`open_ticket` (stateless: there is no
ticket yet to have a state) opens ticket N, acknowledges it, tells the agents,
and hands the ticket over to its state machine in ``NEW``. From then on every
address of the ticket — ``ticket-N@``, ``ticket-N-claim@``, ``ticket-N-resolve@``,
``ticket-N-rate-good@``, ``ticket-N-rate-bad@`` — belongs to the conversation
``ticket-N`` (see :func:`ticket_key`), whoever writes to it:

- ``NEW``: nobody has the ticket. An agent (or the manager) takes it by writing to
  ``claim@`` (→ ``ASSIGNED``) or by answering the notice (→ ``WAITING_CUSTOMER``).
- ``ASSIGNED``, ``WAITING_CUSTOMER``, ``WAITING_AGENT``: the customer and the agent
  write through ``ticket-N@``; the state says whose turn it is. The agent's
  ``resolve@`` → ``RESOLVED``.
- ``RESOLVED``: the customer was asked how we did. ``rate-good@`` → ``CLOSED``;
  ``rate-bad@`` (the manager is told) or writing back → ``WAITING_AGENT``.
- ``CLOSED``: done; new questions go to support@.

Who may do what is decided by the sender: the ticket's customer, the agent who has
it, another agent, the manager, or a stranger. Anything not allowed is answered
with a short refusal saying why (never to automatic mail), and the state stays.

Escalation (a ticket nobody takes, a customer nobody answers) is time-driven, not
mail-driven: see :mod:`app.escalation`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mailsim_runtime import (
    MailRequest,
    current_app,
    route,
    route_like,
    state_key_generator,
    stateless,
)
from mailsim_runtime.autoreply import auto_reply_refusal

from app import model
from app.desk import desk_of
from app.outgoing import answer, notify, quote, refuse, relay_copy

log = logging.getLogger(__name__)

NUMBER = "[1-9][0-9]{0,8}"
ACTIONS = "claim|resolve|rate-good|rate-bad"
RATINGS = ("rate-good", "rate-bad")

# Who is writing, as far as one ticket is concerned.
CUSTOMER = "customer"  # who opened the ticket
ASSIGNEE = "assignee"  # the agent (or manager) who has the ticket
AGENT = "agent"  # an agent who does not have it
MANAGER = "manager"  # the manager, when not the assignee
STRANGER = "stranger"  # anyone else
STAFF = (AGENT, MANAGER)


@state_key_generator
def ticket_key(module_name: str, message: MailRequest) -> str:
    """Every address of ticket N is the conversation ``ticket-N``, whoever writes.

    Mail to ``support@`` has no ticket yet; only the stateless :func:`open_ticket`
    takes it, so its key (one per customer) never holds a state.
    """
    number = model.number_in(message.recipient)
    if number is None:
        return f"intake:{message.sender.lower()}"
    return f"ticket-{number}"


# Opening a ticket -----------------------------------------------------------------


@route("support@(host)")
@stateless
def open_ticket(message: MailRequest, host: str) -> None:
    """Open a ticket, acknowledge it, tell the agents, and put it in NEW."""
    app = current_app()
    desk = desk_of(app)
    automatic = auto_reply_refusal(message)
    if automatic is not None:
        # A bounce or an out-of-office answer is not a question: no ticket. It is
        # kept, not dropped, for someone to look at.
        log.info("no ticket for %s from %r: %s", message.message_id, message.sender, automatic)
        app.queues["undeliverable"].push(message, f"not a question: {automatic}")
        return
    with app.transaction():  # the ticket and its conversation are made together
        ticket = model.open_ticket(
            customer=message.sender,
            subject=(message["Subject"] or "").strip() or "(no subject)",
            message_id=message.message_id,
            now=app.clock.now(),
        )
        with app.states.transition(__name__, ticket.key, message.sender) as conversation:
            conversation.state = NEW.__name__
    log.info("ticket %d opened for %s", ticket.number, ticket.customer)
    answer(message, "customer/acknowledgement.txt", "{{ tag }} {{ subject }}", ticket)
    for agent in desk.agents:
        # The notice stands for the customer's message, so it carries its Message-ID:
        # an agent's reply to it is, for the customer, a reply to what they wrote.
        notify(
            agent,
            "staff/new_ticket.txt",
            "{{ tag }} {{ subject }}",
            ticket,
            message_id=message.message_id,
            attachments=message.attachments(),
            text=quote(message.body()),
        )


# The ticket's conversation ----------------------------------------------------------


@dataclass(frozen=True)
class Visit:
    """One message to one ticket: the ticket, who wrote, and what they asked for."""

    message: MailRequest
    ticket: model.Ticket
    state: str  # the name of the state function that took the message
    role: str
    action: str | None

    @property
    def writer(self) -> str:
        return self.message.sender.lower()


def _visit(
    message: MailRequest, number: str, action: str | None, state: Callable[..., Any]
) -> Visit:
    ticket = model.get(int(number))
    if ticket is None:  # a state without a ticket: the state store and table disagree
        raise LookupError(f"ticket {number} has a conversation but no row in the tickets table")
    desk = desk_of(current_app())
    writer = message.sender.lower()
    if writer and writer == ticket.agent:
        role = ASSIGNEE
    elif writer and writer == ticket.customer:
        role = CUSTOMER
    elif desk.is_manager(writer):
        role = MANAGER
    elif desk.is_agent(writer):
        role = AGENT
    else:
        role = STRANGER
    return Visit(message, ticket, state.__name__, role, action)


@route("ticket-(number)-(action)@(host)", number=NUMBER, action=ACTIONS)
@route("ticket-(number)@(host)", number=NUMBER)
def START(message: MailRequest, number: str, host: str, action: str | None = None) -> Any:
    """No such ticket: tickets begin in NEW (see :func:`open_ticket`), never here."""
    # From the address written to, not support@: a careless robot's answer to this
    # must not open a ticket.
    refuse(
        message,
        "refused/no_such_ticket.txt",
        "No ticket #{{ asked }}",
        from_address=desk_of(current_app()).ticket_address(int(number)),
        asked=int(number),
    )
    return None


@route_like(START)
def NEW(message: MailRequest, number: str, host: str, action: str | None = None) -> Any:
    """Nobody has taken the ticket yet; every agent was told about it."""
    visit = _visit(message, number, action, NEW)
    if visit.role in STAFF and action == "claim":
        _assign(visit)
        notify(
            visit.ticket.customer,
            "customer/in_progress.txt",
            "{{ tag }} An agent is on it",
            visit.ticket,
        )
        return ASSIGNED
    if visit.role in STAFF and action is None:
        # Answering a new ticket takes it: the answer goes straight to the customer.
        _assign(visit)
        relay_copy(message, visit.ticket, visit.ticket.customer)
        model.answered(visit.ticket.number)
        return WAITING_CUSTOMER
    if visit.role == CUSTOMER and action is None:
        for agent in desk_of(current_app()).agents:
            relay_copy(message, visit.ticket, agent)
        return None
    return _refuse(visit)


@route_like(START)
def ASSIGNED(message: MailRequest, number: str, host: str, action: str | None = None) -> Any:
    """An agent has the ticket and has not written to the customer yet."""
    return _working(_visit(message, number, action, ASSIGNED))


@route_like(START)
def WAITING_CUSTOMER(
    message: MailRequest, number: str, host: str, action: str | None = None
) -> Any:
    """The agent has written; it is the customer's turn."""
    return _working(_visit(message, number, action, WAITING_CUSTOMER))


@route_like(START)
def WAITING_AGENT(message: MailRequest, number: str, host: str, action: str | None = None) -> Any:
    """The customer has written and waits for the agent (the answer clock runs)."""
    return _working(_visit(message, number, action, WAITING_AGENT))


def _working(visit: Visit) -> Any:
    """ASSIGNED and the two WAITING states: the customer and the agent write in turn."""
    ticket, action = visit.ticket, visit.action
    if visit.role == ASSIGNEE and action is None:
        relay_copy(visit.message, ticket, ticket.customer)
        model.answered(ticket.number)
        return WAITING_CUSTOMER
    if visit.role == CUSTOMER and action is None:
        assert ticket.agent is not None
        relay_copy(visit.message, ticket, ticket.agent)
        model.customer_wrote(ticket.number, current_app().clock.now())
        return WAITING_AGENT
    if visit.role == ASSIGNEE and action == "resolve":
        model.resolve(ticket.number, current_app().clock.now())
        notify(ticket.customer, "customer/how_did_we_do.txt", "{{ tag }} How did we do?", ticket)
        notify(visit.writer, "staff/resolved.txt", "{{ tag }} Resolved", ticket)
        return RESOLVED
    if visit.role == MANAGER and action == "claim":
        # The manager may take over a ticket an agent has; agents may not.
        previous = ticket.agent
        _assign(visit)
        if previous:
            notify(previous, "staff/taken_over.txt", "{{ tag }} Taken over by the manager", ticket)
        return None
    return _refuse(visit)


@route_like(START)
def RESOLVED(message: MailRequest, number: str, host: str, action: str | None = None) -> Any:
    """The agent says it is done; the customer was asked how we did."""
    visit = _visit(message, number, action, RESOLVED)
    ticket = visit.ticket
    now = current_app().clock.now()
    if visit.role == CUSTOMER and action == "rate-good":
        model.rate(ticket.number, "good")
        model.close(ticket.number, now)
        notify(ticket.customer, "customer/thanks.txt", "{{ tag }} Thank you", ticket)
        return CLOSED
    if visit.role == CUSTOMER and action == "rate-bad":
        model.rate(ticket.number, "bad")
        model.reopen(ticket.number, now)
        comment = quote(message.body())
        notify(ticket.customer, "customer/sorry.txt", "{{ tag }} We are sorry", ticket)
        notify(
            desk_of(current_app()).manager,
            "staff/bad_rating.txt",
            "{{ tag }} Rated bad",
            ticket,
            reply_to=_claim(ticket),
            comment=comment,
        )
        if ticket.agent:
            notify(
                ticket.agent, "staff/reopened.txt", "{{ tag }} Open again", ticket, comment=comment
            )
        return WAITING_AGENT
    if visit.role == CUSTOMER and action is None:
        # Writing back instead of rating: the problem is not solved after all.
        assert ticket.agent is not None
        model.reopen(ticket.number, now)
        relay_copy(message, ticket, ticket.agent)
        return WAITING_AGENT
    if visit.role == ASSIGNEE and action is None:
        relay_copy(message, ticket, ticket.customer)  # an afterthought; still resolved
        return None
    return _refuse(visit)


@route_like(START)
def CLOSED(message: MailRequest, number: str, host: str, action: str | None = None) -> Any:
    """Rated and done. New questions go to support@ as new tickets."""
    return _refuse(_visit(message, number, action, CLOSED))


@route_like(START)
def ERROR(message: MailRequest, number: str, host: str, action: str | None = None) -> Any:
    """A handler failed on this ticket (the log has it, with the Message-ID, and the
    message is in the undeliverable queue). The ticket's row says where it stands,
    so carry on from that state with this message, rather than go silent."""
    ticket = model.get(int(number))
    if ticket is None:
        START(message, number, host, action)
        return START
    if ticket.closed_at is not None:
        state = CLOSED
    elif ticket.resolved_at is not None:
        state = RESOLVED
    elif ticket.agent is None:
        state = NEW
    elif ticket.waiting_since is not None:
        state = WAITING_AGENT
    else:
        state = WAITING_CUSTOMER
    log.warning("ticket %d recovers from ERROR in %s", ticket.number, state.__name__)
    return state(message, number, host, action) or state


# Helpers ------------------------------------------------------------------------


def _claim(ticket: model.Ticket) -> str:
    return desk_of(current_app()).ticket_address(ticket.number, "claim")


def _assign(visit: Visit) -> None:
    """Give the ticket to whoever wrote, and tell them it is theirs."""
    model.assign(visit.ticket.number, visit.writer)
    ticket = model.get(visit.ticket.number)
    assert ticket is not None
    notify(visit.writer, "staff/claimed.txt", "{{ tag }} It is yours", ticket)


# What a refusal says, by reason; the template is refused/<reason>.txt.
REFUSALS = {
    "stranger": "{{ tag }} Not your ticket",
    "staff_only": "{{ tag }} Only for the support staff",
    "customer_only": "{{ tag }} Only the customer can rate",
    "closed": "{{ tag }} This ticket is closed",
    "not_resolved": "{{ tag }} Not resolved yet",
    "already_claimed": "{{ tag }} Already taken",
    "not_claimed": "{{ tag }} Nobody has taken it yet",
    "not_yours": "{{ tag }} Not your ticket",
    "already_resolved": "{{ tag }} Already resolved",
}


def _reason(visit: Visit) -> str:
    """Why *visit* is refused (its state function took everything it allows)."""
    role, action, ticket, state = visit.role, visit.action, visit.ticket, visit.state
    if role == STRANGER:
        return "stranger"
    if action in ("claim", "resolve") and role == CUSTOMER:
        return "staff_only"
    if action in RATINGS and role != CUSTOMER:
        return "customer_only"
    if state == CLOSED.__name__:
        return "closed"
    if action in RATINGS:
        return "not_resolved"
    if action == "claim":
        return "already_claimed"
    if ticket.agent is None:
        return "not_claimed"
    if state == RESOLVED.__name__ and role == ASSIGNEE:
        return "already_resolved"
    return "not_yours"


def _refuse(visit: Visit) -> None:
    """Tell the writer why not (the conversation stays in its state)."""
    reason = _reason(visit)
    log.info(
        "ticket %d: %s from %s refused: %s",
        visit.ticket.number,
        visit.action or "mail",
        visit.writer,
        reason,
    )
    refuse(
        visit.message,
        f"refused/{reason}.txt",
        REFUSALS[reason],
        visit.ticket,
        is_manager=visit.role == MANAGER,
    )
