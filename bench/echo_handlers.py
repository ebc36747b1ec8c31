"""The trivial echo application the benchmarks route mail through: every message is
answered, and each conversation alternates between two states."""

from mailsim_runtime import MailResponse, current_app, route, route_like
from mailsim_runtime.mail import MailRequest


def _echo(message: MailRequest, host: str) -> None:
    current_app().relay.reply(
        message, MailResponse(from_=f"echo@{host}", subject="echo", body="echo")
    )


@route("echo@(host)")
def START(message: MailRequest, host: str) -> object:
    _echo(message, host)
    return ECHOED


@route_like(START)
def ECHOED(message: MailRequest, host: str) -> object:
    _echo(message, host)
    return START
