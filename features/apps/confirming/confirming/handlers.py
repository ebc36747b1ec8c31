"""subscribe@ must be confirmed: the sender answers from the address it was mailed to.

START --subscribe@--> CONFIRMING --news-confirm-SECRET@--> MEMBER. The runtime's
confirmation engine keeps the request until the sender writes to the secret address,
for ``[app] confirmation_lifetime``; an answer after that finds it expired, and the
sender is back in START. Asking again while CONFIRMING sends a new address, and the
old one stops working.
"""

from mailsim_runtime import MailRequest, current_app, route, route_like

TARGET = "news"


def _tell(message: MailRequest, host: str, template: str, subject: str) -> None:
    app = current_app()
    answer = app.views.respond(
        {"host": host, "to": message.sender, "subject": subject},
        text=template,
        to="{{ to }}",
        from_="news@{{ host }}",
        subject="{{ subject }}",
    )
    app.relay.reply(message, answer)


@route("subscribe@(host)", host="confirm\\.example\\.com")
def START(message: MailRequest, host: str) -> object:
    app = current_app()
    app.confirmations.send(
        app.relay,
        app.views,
        target=TARGET,
        message=message,
        template="confirm.txt",
        host=host,
        from_="{{ confirm_address }}",
        subject="Please confirm: the news from {{ host }}",
        variables={"host": host},
    )
    return CONFIRMING


@route_like(START)
@route("news-confirm-(secret)@(host)", secret="[a-z0-9]+", host="confirm\\.example\\.com")
def CONFIRMING(message: MailRequest, host: str, secret: str = "") -> object:
    if not secret:  # asked again: a new address (the old one stops working)
        return START(message, host)
    engine = current_app().confirmations
    if engine.verify(TARGET, message.sender, secret) is None:
        _tell(message, host, "expired.txt", "Not confirmed")
        waiting = engine.storage.find(TARGET, message.sender.lower())
        return CONFIRMING if waiting and not waiting.expired(engine.clock.now()) else START
    _tell(message, host, "welcome.txt", "Welcome to the news")
    return MEMBER


@route_like(START)
def MEMBER(message: MailRequest, host: str) -> object:
    _tell(message, host, "subscribed.txt", "You are subscribed already")
    return MEMBER
