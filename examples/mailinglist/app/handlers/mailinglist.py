"""The mailing list: join with a confirmation, post to everyone, leave the same way.

A conversation is one person's membership of one list (see ``membership``), so a
person can be on several lists at once. Its states:

``START``
    Not a member. ``python-subscribe@`` asks for a confirmation.
``CONFIRMING_SUBSCRIBE``
    Waiting for the person to confirm (reply to the confirmation, or write to its
    ``python-confirm-SECRET@`` address). The first member to confirm creates the list.
``POSTING``
    A member: mail to ``python@`` goes to everyone else on the list.
``CONFIRMING_UNSUBSCRIBE``
    A member who asked to leave, waiting for the confirmation.

In every state ``python@`` takes posts (a non-member's post is held for the owner
or refused, see :mod:`app.posting`), and ``-subscribe``/``-unsubscribe`` get an
answer that fits. Bounces, moderation and the list's other addresses have
stateless handlers of their own in the modules beside this one.
"""

from __future__ import annotations

from mailsim_runtime import MailRequest, current_app, route, route_like, state_key_generator

from app import model, posting
from app.notices import reply


@state_key_generator
def membership(module_name: str, message: MailRequest) -> str:
    list_name = message.recipient.split("@")[0].split("-")[0]
    return f"{list_name}:{message.sender.lower()}"


def _ask_to_confirm(message: MailRequest, list_name: str, host: str, action: str) -> None:
    app = current_app()
    app.confirmations.send(
        app.relay,
        app.views,
        target=list_name,
        message=message,
        template="confirm.txt",
        host=host,
        from_="{{ confirm_address }}",
        subject="Please confirm: {{ action }} {{ list_name }}",
        variables={"list_name": list_name, "action": action},
    )


def _tell(message: MailRequest, list_name: str, host: str, template: str, subject: str) -> None:
    reply(
        message,
        template,
        subject,
        from_address=f"{list_name}@{host}",
        list_name=list_name,
        host=host,
        address=message.sender,
    )


@route("(list_name)-(action)@(host)", action="subscribe|unsubscribe")
@route("(list_name)@(host)")
def START(message: MailRequest, list_name: str, host: str, action: str | None = None) -> object:
    if action == "subscribe":
        _ask_to_confirm(message, list_name, host, "subscribe to")
        return CONFIRMING_SUBSCRIBE
    if action == "unsubscribe":
        _tell(message, list_name, host, "not_member.txt", "You are not on {{ list_name }}")
        return START
    posting.receive(message, list_name, host)
    return START


@route("(list_name)-confirm-(id_number)@(host)")
@route_like(START)
def CONFIRMING_SUBSCRIBE(
    message: MailRequest,
    list_name: str,
    host: str,
    id_number: str | None = None,
    action: str | None = None,
) -> object:
    confirmations = current_app().confirmations
    if id_number is not None:
        if confirmations.verify(list_name, message.sender, id_number) is None:
            return CONFIRMING_SUBSCRIBE  # a wrong or expired secret: nothing happens
        model.create_list(list_name, host)  # lists are created on first use
        model.add_member(list_name, message.sender)
        _tell(message, list_name, host, "welcome.txt", "Welcome to {{ list_name }}")
        return POSTING
    if action == "subscribe":  # lost the confirmation, or it expired: a new one
        _ask_to_confirm(message, list_name, host, "subscribe to")
        return CONFIRMING_SUBSCRIBE
    if action == "unsubscribe":
        confirmations.cancel(list_name, message.sender)
        if model.find_member(list_name, message.sender) is not None:
            # A disabled member who was asked to confirm coming back, leaving instead.
            _ask_to_confirm(message, list_name, host, "unsubscribe from")
            return CONFIRMING_UNSUBSCRIBE
        _tell(message, list_name, host, "not_member.txt", "You are not on {{ list_name }}")
        return START
    posting.receive(message, list_name, host)
    return CONFIRMING_SUBSCRIBE


@route_like(START)
def POSTING(message: MailRequest, list_name: str, host: str, action: str | None = None) -> object:
    if action == "unsubscribe":
        _ask_to_confirm(message, list_name, host, "unsubscribe from")
        return CONFIRMING_UNSUBSCRIBE
    if action == "subscribe":
        member = model.find_member(list_name, message.sender)
        if member is None or not member.enabled:
            # Disabled after bounces: a confirmation that arrives shows the address
            # works again, and confirming it turns the posts back on.
            _ask_to_confirm(message, list_name, host, "subscribe to")
            return CONFIRMING_SUBSCRIBE
        _tell(message, list_name, host, "already_member.txt", "You are already on {{ list_name }}")
        return POSTING
    posting.receive(message, list_name, host)
    return POSTING


@route_like(CONFIRMING_SUBSCRIBE)
def CONFIRMING_UNSUBSCRIBE(
    message: MailRequest,
    list_name: str,
    host: str,
    id_number: str | None = None,
    action: str | None = None,
) -> object:
    confirmations = current_app().confirmations
    if id_number is not None:
        if confirmations.verify(list_name, message.sender, id_number) is None:
            return POSTING  # a wrong or expired secret: still a member
        model.remove_member(list_name, message.sender)
        _tell(message, list_name, host, "goodbye.txt", "You have left {{ list_name }}")
        return START
    if action == "unsubscribe":
        _ask_to_confirm(message, list_name, host, "unsubscribe from")
        return CONFIRMING_UNSUBSCRIBE
    if action == "subscribe":  # changed their mind: stay
        confirmations.cancel(list_name, message.sender)
        return POSTING(message, list_name, host, action)
    posting.receive(message, list_name, host)
    return CONFIRMING_UNSUBSCRIBE
