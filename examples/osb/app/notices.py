"""The mail the blog sends: answers, notifications and confirmation requests.

Every variable that comes from a mail (a title, a name) goes into the templates as
a variable, never into the header template strings themselves, so it cannot add
a header of its own.
"""

from __future__ import annotations

from datetime import timedelta
from email.utils import formataddr
from typing import Any

from mailsim_runtime import MailRequest, MailResponse, current_app


def _variables(more: dict[str, Any]) -> dict[str, Any]:
    app = current_app()
    title = str(app.settings["title"])
    return {
        "blog_title": title,
        "host": app.hostname,
        "from_address": formataddr((title, f"noreply@{app.hostname}")),
        "post_address": f"post@{app.hostname}",
        **more,
    }


def tell(message: MailRequest, template: str, subject: str, **variables: Any) -> None:
    """Answer *message*'s envelope sender — whose address is the one that counts
    here, whatever its From says. As an automatic reply: never to a bounce, a list
    or an autoresponder (RFC 3834)."""
    app = current_app()
    response = app.views.respond(
        _variables({"sender": message.sender, **variables}),
        text=f"mail/{template}",
        to="{{ sender }}",
        from_="{{ from_address }}",
        subject=subject,
    )
    app.relay.reply(message, response)


def notify(address: str, template: str, subject: str, **variables: Any) -> None:
    """Mail *address* about something that happened (not an answer to its mail)."""
    app = current_app()
    response: MailResponse = app.views.respond(
        _variables({"address": address, **variables}),
        text=f"mail/{template}",
        to="{{ address }}",
        from_="{{ from_address }}",
        subject=subject,
        headers={"Auto-Submitted": "auto-generated"},
    )
    app.relay.deliver(response, recipients=[address])


def ask_to_confirm(
    message: MailRequest, target: str, template: str, subject: str, **variables: Any
) -> None:
    """Keep *message* until its sender confirms it for *target*, and ask them to.

    The request comes from the secret confirmation address, so replying to it
    confirms. It is valid for the app's confirmation lifetime (``[app]
    confirmation_lifetime``, three days unless set).
    """
    app = current_app()
    app.confirmations.send(
        app.relay,
        app.views,
        target=target,
        message=message,
        template=f"mail/{template}",
        host=app.hostname,
        from_="{{ confirm_address }}",
        subject=subject,
        variables=_variables({"valid_for": _duration(app.confirmations.lifetime), **variables}),
    )


def _duration(span: timedelta) -> str:
    hours = round(span.total_seconds() / 3600)
    if hours % 24 == 0:
        days = hours // 24
        return "one day" if days == 1 else f"{days} days"
    return "one hour" if hours == 1 else f"{hours} hours"
