"""join@ and leave@: a conversation per sender, in START or MEMBER."""

from mailsim_runtime import MailRequest, current_app, route, route_like


def _tell(message: MailRequest, host: str, news: str) -> None:
    app = current_app()
    answer = app.views.respond(
        {"news": news, "host": host, "to": message["From"] or message.sender},
        text="membership.txt",
        to="{{ to }}",
        from_="members@{{ host }}",
        subject="{{ news }}",
    )
    app.relay.reply(message, answer)


@route("(action)@(host)", action="join|leave", host="echo\\.example\\.com")
def START(message: MailRequest, action: str, host: str) -> object:
    if action == "leave":
        _tell(message, host, "You are not a member")
        return START
    _tell(message, host, "Welcome")
    return MEMBER


@route_like(START)
def MEMBER(message: MailRequest, action: str, host: str) -> object:
    if action == "leave":
        _tell(message, host, "Goodbye")
        return START
    _tell(message, host, "You are a member already")
    return MEMBER
