"""What the list says to people, and what it keeps aside for a human to look at.

Two ways to write to someone:

- :func:`reply` answers a message the list received. It goes through
  ``relay.reply``, which follows RFC 3834: it never answers a bounce, an
  automatic message or list mail, and marks the answer ``Auto-Submitted:
  auto-replied``, so two robots can never answer each other for ever.
- :func:`notify` writes to someone unprompted (a member whose mail bounces, the
  owner), marked ``Auto-Submitted: auto-generated``.

Header values are template strings rendered with the variables; user data (an
address, a subject) only ever goes in as a variable, so it cannot add headers.
"""

from __future__ import annotations

import logging
from typing import Any

from mailsim_runtime import MailRequest, current_app

log = logging.getLogger("mailinglist")


def reply(
    message: MailRequest, template: str, subject: str, /, *, from_address: str, **variables: Any
) -> None:
    """Answer *message*'s envelope sender with *template*, unless RFC 3834 says not to."""
    app = current_app()
    response = app.views.respond(
        {**variables, "from_address": from_address, "recipient": message.sender},
        text=template,
        to="{{ recipient }}",
        from_="{{ from_address }}",
        subject=subject,
    )
    app.relay.reply(message, response)


def notify(
    to: str,
    template: str,
    subject: str,
    /,
    *,
    from_address: str,
    envelope_sender: str,
    **variables: Any,
) -> None:
    """Write to *to* unprompted; bounces of it go to *envelope_sender*."""
    app = current_app()
    response = app.views.respond(
        {**variables, "from_address": from_address, "recipient": to},
        text=template,
        to="{{ recipient }}",
        from_="{{ from_address }}",
        subject=subject,
        headers={"Auto-Submitted": "auto-generated"},
    )
    app.relay.deliver(response, sender=envelope_sender, recipients=[to])


def set_aside(message: MailRequest, reason: str) -> None:
    """Keep *message* in the app's undeliverable queue, saying why: nothing the list
    receives is silently dropped."""
    log.info("set aside %s from %r: %s", message.message_id, message.sender, reason)
    queue = current_app().queues.get("undeliverable")
    if queue is not None:
        queue.push(message, reason)
