"""A stateful handler module for the state-database fault test: START records the
message and moves the conversation to HEARD."""

from __future__ import annotations

from mailsim_runtime import current_app, route, route_like
from mailsim_runtime.mail import MailRequest


@route("(user)@(host)", user=".+", host=".+")
def START(message: MailRequest, user: str, host: str) -> object:
    current_app().settings["seen"].append(message["Subject"])
    return HEARD


@route_like(START)
def HEARD(message: MailRequest, user: str, host: str) -> None:
    current_app().settings["seen"].append(message["Subject"])
