"""The trivial application ``bench/receive_compare.py`` serves with ``mailsim serve``:
every recipient is routed, and its conversation moves from START to SEEN and back
(a state change stored in the app's SQL state store). Nothing is sent."""

from mailsim_runtime import route, route_like
from mailsim_runtime.mail import MailRequest


@route("(user)@(host)", user=".+", host=".+")
def START(message: MailRequest, user: str, host: str) -> object:
    return SEEN


@route_like(START)
def SEEN(message: MailRequest, user: str, host: str) -> object:
    return START
