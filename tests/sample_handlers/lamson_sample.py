"""A Lamson-style application: START -> NEW_USER -> END, plus a stateless logger.

Handlers reach their app only through ``current_app()``; the ``seen`` setting of the
current app records what the stateless logger saw.
"""

from mailsim_runtime import MailResponse, current_app, route, route_like, stateless
from mailsim_runtime.mail import MailRequest


@route("(address)@(host)", address=".+")
def START(message: MailRequest, address: str, host: str) -> object:
    app = current_app()
    app.relay.reply(
        message,
        MailResponse(from_=f"noreply@{host}", subject="Welcome", body=f"Hello {address}"),
    )
    return NEW_USER


@route_like(START)
def NEW_USER(message: MailRequest, address: str, host: str) -> object:
    if address == "bye":
        return END
    return NEW_USER


@route_like(START)
def END(message: MailRequest, address: str, host: str) -> object:
    return START(message, address, host)


@route("(address)@(host)", address=".+")
@stateless
def LOG(message: MailRequest, address: str, host: str) -> None:
    current_app().settings.setdefault("seen", []).append((message.sender, address))
