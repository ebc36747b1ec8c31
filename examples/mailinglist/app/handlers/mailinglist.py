"""The mailing list: subscribe with confirmation, post to everyone, unsubscribe.

A conversation is one person's membership of one list (see ``membership``), so a
person can be on several lists at once.
"""

from __future__ import annotations

import email.policy
from email.message import EmailMessage
from email.parser import BytesParser

from mailsim_runtime import MailRequest, current_app, route, route_like, state_key_generator

from app import model


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


def _tell(message: MailRequest, template: str, subject: str, **variables: str) -> None:
    app = current_app()
    response = app.views.respond(
        variables,
        text=template,
        to="{{ address }}",
        from_="{{ list_name }}@{{ host }}",
        subject=subject,
    )
    app.relay.deliver(response, recipients=[message.sender])


@route("(list_name)-subscribe@(host)")
def START(message: MailRequest, list_name: str, host: str) -> object:
    _ask_to_confirm(message, list_name, host, "subscribe to")
    return CONFIRMING_SUBSCRIBE


@route("(list_name)-confirm-(id_number)@(host)")
def CONFIRMING_SUBSCRIBE(message: MailRequest, list_name: str, id_number: str, host: str) -> object:
    if current_app().confirmations.verify(list_name, message.sender, id_number) is None:
        return CONFIRMING_SUBSCRIBE
    model.add_subscriber(list_name, message.sender.lower())
    _tell(
        message,
        "welcome.txt",
        "Welcome to {{ list_name }}",
        address=message.sender,
        list_name=list_name,
        host=host,
    )
    return POSTING


@route("(list_name)-(action)@(host)", action="unsubscribe")
@route("(list_name)@(host)")
def POSTING(message: MailRequest, list_name: str, host: str, action: str | None = None) -> object:
    if action == "unsubscribe":
        _ask_to_confirm(message, list_name, host, "unsubscribe from")
        return CONFIRMING_UNSUBSCRIBE
    _post(message, list_name, host)
    return POSTING


@route_like(CONFIRMING_SUBSCRIBE)
def CONFIRMING_UNSUBSCRIBE(
    message: MailRequest, list_name: str, id_number: str, host: str
) -> object:
    if current_app().confirmations.verify(list_name, message.sender, id_number) is None:
        return POSTING
    model.remove_subscriber(list_name, message.sender.lower())
    _tell(
        message,
        "goodbye.txt",
        "You have left {{ list_name }}",
        address=message.sender,
        list_name=list_name,
        host=host,
    )
    return START


def _post(message: MailRequest, list_name: str, host: str) -> None:
    """Send the post to every other member, as the list, threading kept."""
    post = BytesParser(policy=email.policy.default).parsebytes(message.original)
    assert isinstance(post, EmailMessage)
    list_address = f"{list_name}@{host}"
    for header in (
        "List-Id",
        "List-Post",
        "List-Subscribe",
        "List-Unsubscribe",
        "Precedence",
        "Return-Path",
        "Delivered-To",
        "Received",
    ):
        del post[header]
    post["List-Id"] = f"<{list_name}.{host}>"
    post["List-Post"] = f"<mailto:{list_address}>"
    post["List-Subscribe"] = f"<mailto:{list_name}-subscribe@{host}>"
    post["List-Unsubscribe"] = f"<mailto:{list_name}-unsubscribe@{host}>"
    post["Precedence"] = "list"
    subject = post["Subject"] or ""
    if f"[{list_name}]" not in subject:
        del post["Subject"]
        post["Subject"] = f"[{list_name}] {subject}".strip()
    poster = message.sender.lower()
    relay = current_app().relay
    for member in model.members(list_name):
        if member != poster:
            # One envelope per member, its address in the return path (VERP), so a
            # bounce says which member it is about.
            verp = f"{list_name}-bounce+{member.replace('@', '=')}@{host}"
            relay.deliver(post, sender=verp, recipients=[member])
