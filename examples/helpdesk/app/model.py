"""Tickets, kept in the application's own table.

The ticket's *conversation state* (NEW, ASSIGNED, …) lives in mailsim's state
store, keyed ``ticket-N``; this table keeps what the state machine does not: who
the customer is, which agent has the ticket, and the times the escalation check
reads. Every function here runs in ``current_app().transaction()``: inside a
handler that is the handler's own transaction, committed with its state change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from mailsim_runtime import App, current_app

__all__ = [
    "Ticket",
    "answered",
    "assign",
    "close",
    "create_tables",
    "customer_wrote",
    "get",
    "mark_escalated",
    "number_in",
    "open_ticket",
    "rate",
    "reopen",
    "resolve",
    "unanswered_since",
    "unclaimed_since",
]

metadata = sa.MetaData()

tickets = sa.Table(
    "helpdesk_tickets",
    metadata,
    sa.Column("number", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("customer", sa.String(512), nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    # The Message-ID of the customer's first message: every mail about the ticket
    # refers to it, so mail programs show the whole ticket as one thread.
    sa.Column("message_id", sa.Text),
    sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("agent", sa.String(512)),
    # Since when the customer has been waiting for an answer (None: not waiting).
    sa.Column("waiting_since", sa.DateTime(timezone=True)),
    # When the manager was told; each is told once (a new wait may be told again).
    sa.Column("escalated_unclaimed_at", sa.DateTime(timezone=True)),
    sa.Column("escalated_unanswered_at", sa.DateTime(timezone=True)),
    sa.Column("resolved_at", sa.DateTime(timezone=True)),
    sa.Column("rating", sa.String(8)),
    sa.Column("closed_at", sa.DateTime(timezone=True)),
)

_TICKET_LOCAL_PART = re.compile(r"ticket-([0-9]+)(?:-.*)?")


@dataclass(frozen=True)
class Ticket:
    number: int
    customer: str
    subject: str
    message_id: str | None
    opened_at: datetime
    agent: str | None
    waiting_since: datetime | None
    resolved_at: datetime | None
    rating: str | None
    closed_at: datetime | None

    @property
    def key(self) -> str:
        """The ticket's conversation key in the state store."""
        return f"ticket-{self.number}"


def create_tables(app: App) -> None:
    """``[app] setup``: make the tickets table if it is not there."""
    metadata.create_all(app.database)


def number_in(address: str) -> int | None:
    """The ticket number of a ticket address (``ticket-7-claim@…`` → 7), else None."""
    found = _TICKET_LOCAL_PART.fullmatch(address.rpartition("@")[0])
    return int(found.group(1)) if found else None


def _utc(moment: datetime | None) -> datetime | None:
    """SQLite keeps no time zone: what comes back naive was written in UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _ticket(row: sa.Row[tuple[object, ...]]) -> Ticket:
    values = row._mapping
    opened_at = _utc(values["opened_at"])
    assert opened_at is not None
    return Ticket(
        number=values["number"],
        customer=values["customer"],
        subject=values["subject"],
        message_id=values["message_id"],
        opened_at=opened_at,
        agent=values["agent"],
        waiting_since=_utc(values["waiting_since"]),
        resolved_at=_utc(values["resolved_at"]),
        rating=values["rating"],
        closed_at=_utc(values["closed_at"]),
    )


def open_ticket(customer: str, subject: str, message_id: str | None, now: datetime) -> Ticket:
    """A new ticket (its number comes from the table), its customer waiting from *now*."""
    values = {
        "customer": customer.lower(),
        "subject": subject,
        "message_id": message_id,
        "opened_at": now,
        "waiting_since": now,
    }
    with current_app().transaction() as connection:
        inserted = connection.execute(sa.insert(tickets).values(**values)).inserted_primary_key
        assert inserted is not None
        number: int = inserted[0]
    ticket = get(number)
    assert ticket is not None
    return ticket


def get(number: int) -> Ticket | None:
    with current_app().transaction() as connection:
        row = connection.execute(sa.select(tickets).where(tickets.c.number == number)).first()
    return None if row is None else _ticket(row)


def _update(number: int, **values: object) -> None:
    with current_app().transaction() as connection:
        connection.execute(sa.update(tickets).where(tickets.c.number == number).values(**values))


def assign(number: int, agent: str) -> None:
    _update(number, agent=agent.lower())


def answered(number: int) -> None:
    """Staff wrote to the customer: nobody is waiting, and a new wait may be escalated."""
    _update(number, waiting_since=None, escalated_unanswered_at=None)


def customer_wrote(number: int, now: datetime) -> None:
    """The customer wrote: they wait from now, unless they were waiting already."""
    with current_app().transaction() as connection:
        connection.execute(
            sa.update(tickets)
            .where(tickets.c.number == number, tickets.c.waiting_since.is_(None))
            .values(waiting_since=now, escalated_unanswered_at=None)
        )


def resolve(number: int, now: datetime) -> None:
    _update(number, resolved_at=now, waiting_since=None, escalated_unanswered_at=None)


def reopen(number: int, now: datetime) -> None:
    """Resolved, but not for the customer: open again, the customer waiting."""
    _update(number, resolved_at=None, waiting_since=now, escalated_unanswered_at=None)


def rate(number: int, rating: str) -> None:
    _update(number, rating=rating)


def close(number: int, now: datetime) -> None:
    _update(number, closed_at=now)


def unclaimed_since(cutoff: datetime) -> list[Ticket]:
    """Tickets opened at or before *cutoff* that no agent has taken, not yet escalated."""
    query = (
        sa.select(tickets)
        .where(
            tickets.c.agent.is_(None),
            tickets.c.opened_at <= cutoff,
            tickets.c.escalated_unclaimed_at.is_(None),
        )
        .order_by(tickets.c.number)
    )
    with current_app().transaction() as connection:
        return [_ticket(row) for row in connection.execute(query)]


def unanswered_since(cutoff: datetime) -> list[Ticket]:
    """Taken tickets whose customer has waited since *cutoff* or longer, not yet escalated."""
    query = (
        sa.select(tickets)
        .where(
            tickets.c.agent.is_not(None),
            tickets.c.waiting_since <= cutoff,
            tickets.c.escalated_unanswered_at.is_(None),
        )
        .order_by(tickets.c.number)
    )
    with current_app().transaction() as connection:
        return [_ticket(row) for row in connection.execute(query)]


def mark_escalated(number: int, reason: str, now: datetime) -> bool:
    """Note that the manager is told about *reason* ("unclaimed" or "unanswered").

    True when this call made the note; False when the ticket no longer qualifies
    (an agent took or answered it meanwhile) or another check got there first. The
    condition is in the UPDATE itself, so two checks running at once send one mail.
    """
    if reason == "unclaimed":
        column, still = tickets.c.escalated_unclaimed_at, tickets.c.agent.is_(None)
    elif reason == "unanswered":
        column, still = tickets.c.escalated_unanswered_at, tickets.c.waiting_since.is_not(None)
    else:
        raise ValueError(f"no escalation reason {reason!r}")
    with current_app().transaction() as connection:
        result = connection.execute(
            sa.update(tickets)
            .where(tickets.c.number == number, column.is_(None), still)
            .values({column: now})
        )
    return result.rowcount == 1
