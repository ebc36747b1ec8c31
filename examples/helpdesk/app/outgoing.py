"""The mail the desk sends: notices from templates, refusals, and relayed messages.

Everything comes *from a ticket address* (``"Example Help Desk"
<ticket-7@help.example.com>``), so nobody ever learns another person's address:
the customer writes to the ticket and reads the agent's answers from it, and the
agent does the same from the other side.

A relayed message keeps its Message-ID, In-Reply-To and References, so each side's
mail program threads it with the mail it already has; every other header that
could say who wrote it (From, Sender, Received, Return-Path, Cc, signatures' DKIM
…) is dropped, keeping only a short list of harmless ones.
"""

from __future__ import annotations

import email.policy
import hashlib
import logging
import re
from collections.abc import Iterable
from datetime import timedelta
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from mailsim_runtime import Attachment, MailRequest, current_app
from mailsim_runtime.mail import format_address

from app.desk import Desk, desk_of
from app.model import Ticket

__all__ = ["answer", "notify", "quote", "refuse", "relay_copy", "tag", "ticket_variables"]

log = logging.getLogger(__name__)

# The start of the Message-ID of every refusal the desk sends (see refuse()).
_REFUSAL_MARK = "refused-"

# The headers a relayed message keeps; everything else is dropped.
_KEPT_HEADERS = frozenset(
    {
        "subject",
        "date",
        "message-id",
        "in-reply-to",
        "references",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "content-disposition",
        "content-language",
        "auto-submitted",
    }
)


def tag(number: int) -> str:
    """What every subject about the ticket carries: ``[Ticket #7]``."""
    return f"[Ticket #{number}]"


def quote(text: str | None) -> str:
    """*text* with ``> `` before each line, as mail programs quote."""
    lines = (text or "").strip("\n").splitlines() or [""]
    return "\n".join(f"> {line}".rstrip() for line in lines)


def _span(duration: timedelta) -> str:
    hours = duration.total_seconds() / 3600
    if hours >= 1:
        return f"{hours:g} hour" + ("" if hours == 1 else "s")
    minutes = duration.total_seconds() / 60
    return f"{minutes:g} minute" + ("" if minutes == 1 else "s")


def ticket_variables(desk: Desk, ticket: Ticket) -> dict[str, Any]:
    """What every template about a ticket may use."""
    return {
        "desk": desk.name,
        "number": ticket.number,
        "subject": ticket.subject,
        "agent": ticket.agent or "",
        "ticket_address": desk.ticket_address(ticket.number),
        "claim_address": desk.ticket_address(ticket.number, "claim"),
        "resolve_address": desk.ticket_address(ticket.number, "resolve"),
        "rate_good": desk.ticket_address(ticket.number, "rate-good"),
        "rate_bad": desk.ticket_address(ticket.number, "rate-bad"),
        "support_address": desk.support_address,
        "claim_within": _span(desk.claim_within),
        "answer_within": _span(desk.answer_within),
    }


def _thread(ticket: Ticket, message_id: str | None) -> dict[str, str]:
    """Headers that put a notice in the ticket's thread (the customer's first message),
    unless the notice stands for that very message."""
    if not ticket.message_id or message_id == ticket.message_id:
        return {}
    return {"In-Reply-To": "{{ thread }}", "References": "{{ thread }}"}


def notify(
    recipient: str,
    template: str,
    subject: str,
    ticket: Ticket,
    *,
    reply_to: str | None = None,
    message_id: str | None = None,
    attachments: Iterable[Attachment] = (),
    **variables: Any,
) -> None:
    """Send *recipient* the notice *template* about *ticket*, from the ticket's address.

    *subject* is a template string (``"{{ tag }} It is yours"``); *reply_to* is where
    a reply goes (the ticket address when not given). Notices are automatic mail
    (``Auto-Submitted: auto-generated``), so no vacation program answers them.
    """
    app = current_app()
    desk = desk_of(app)
    values = {
        **ticket_variables(desk, ticket),
        **variables,
        "tag": tag(ticket.number),
        "recipient": recipient,
        "sender": format_address(desk.name, desk.ticket_address(ticket.number)),
        "reply_to": reply_to or desk.ticket_address(ticket.number),
        "thread": ticket.message_id or "",
    }
    response = app.views.respond(
        values,
        text=template,
        to="{{ recipient }}",
        from_="{{ sender }}",
        subject=subject,
        headers={"Reply-To": "{{ reply_to }}", **_thread(ticket, message_id)},
    )
    response["Auto-Submitted"] = "auto-generated"
    if message_id:
        response["Message-ID"] = message_id
    response.attachments.extend(attachments)
    app.relay.deliver(response, recipients=[recipient])


def answer(
    message: MailRequest,
    template: str,
    subject: str,
    ticket: Ticket | None = None,
    *,
    from_address: str | None = None,
    message_id: str | None = None,
    **variables: Any,
) -> None:
    """Answer *message* automatically with *template* (the acknowledgement of a ticket).

    The answer comes from the ticket's address (else *from_address*, else
    ``support@``) and goes to the writer's Reply-To or From. ``relay.reply``
    threads it to *message* and applies RFC 3834: no answer to bounces, to other
    programs' automatic replies or to mailing lists.
    """
    app = current_app()
    desk = desk_of(app)
    if ticket is not None:
        from_address = desk.ticket_address(ticket.number)
    values = {
        "desk": desk.name,
        "support_address": desk.support_address,
        **({} if ticket is None else ticket_variables(desk, ticket)),
        **variables,
        "tag": "" if ticket is None else tag(ticket.number),
        "recipient": message["Reply-To"] or message["From"] or message.sender,
        "sender": format_address(desk.name, from_address or desk.support_address),
    }
    response = app.views.respond(
        values, text=template, to="{{ recipient }}", from_="{{ sender }}", subject=subject
    )
    if message_id:
        response["Message-ID"] = message_id
    app.relay.reply(message, response)


def refuse(
    message: MailRequest,
    template: str,
    subject: str,
    ticket: Ticket | None = None,
    **variables: Any,
) -> None:
    """Tell the writer of *message* why it was not taken: :func:`answer`, loop-proof.

    RFC 3834 keeps careful robots from answering a refusal, but careless ones (an
    old out-of-office program) answer everything, and their answer would be refused
    in turn, for ever. So a refusal carries a Message-ID the desk recognises, and
    a message that replies to one is not refused again: the desk stays silent.
    """
    hostname = current_app().hostname
    if _replies_to_a_refusal(message, hostname):
        log.info(
            "not refusing %s from %r again: it answers one of our refusals",
            message.message_id,
            message.sender,
        )
        return
    seed = f"{message.message_id or len(message.original)}\n{message.recipient}".encode()
    mark = f"<{_REFUSAL_MARK}{hashlib.sha256(seed).hexdigest()[:24]}@{hostname}>"
    answer(message, template, subject, ticket, message_id=mark, **variables)


def _replies_to_a_refusal(message: MailRequest, hostname: str) -> bool:
    thread = " ".join(message.get_all("In-Reply-To") + message.get_all("References"))
    pattern = rf"<{_REFUSAL_MARK}[0-9a-f]{{24}}@{re.escape(hostname)}>"
    return re.search(pattern, thread, re.IGNORECASE) is not None


def relay_copy(message: MailRequest, ticket: Ticket, recipient: str) -> None:
    """Pass *message* on to *recipient* as if written by the ticket itself."""
    app = current_app()
    desk = desk_of(app)
    address = desk.ticket_address(ticket.number)
    copy = BytesParser(policy=email.policy.default).parsebytes(message.original)
    assert isinstance(copy, EmailMessage)
    for name in {name.lower() for name in copy}:
        if name not in _KEPT_HEADERS:
            del copy[name]
    copy["From"] = format_address(desk.name, address)
    copy["To"] = recipient
    copy["Reply-To"] = address
    subject = str(copy.get("Subject", ""))
    if tag(ticket.number) not in subject:
        del copy["Subject"]
        copy["Subject"] = f"{tag(ticket.number)} {subject}".strip()
    app.relay.deliver(copy, sender=address, recipients=[recipient])
