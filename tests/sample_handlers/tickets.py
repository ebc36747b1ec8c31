"""Conversations keyed by ticket number, not by sender; one handler waits on demand."""

import threading

from mailsim_runtime import current_app, nolocking, route, state_key_generator
from mailsim_runtime.mail import MailRequest


@state_key_generator
def ticket_key(module_name: str, message: MailRequest) -> str:
    return message.recipient.split("@")[0].split("-")[-1]


@route("ticket-(number)@help.example.com", number=r"\d+")
def START(message: MailRequest, number: str) -> object:
    settings = current_app().settings
    gate: threading.Event | None = settings.get(f"gate-{number}")
    settings.setdefault("entered", []).append(number)
    if gate is not None:
        gate.wait(timeout=10)
    return OPEN


@route("ticket-(number)@help.example.com", number=r"\d+")
def OPEN(message: MailRequest, number: str) -> object:
    return CLOSED


@route("ticket-(number)@help.example.com", number=r"\d+")
@nolocking
def CLOSED(message: MailRequest, number: str) -> object:
    return None
