"""echo@ answers every mail with what it said; bounces of its answers go to the owner."""

from mailsim_runtime import MailRequest, current_app, route, stateless


def _answer_to(message: MailRequest) -> str:
    return message["Reply-To"] or message["From"] or message.sender


@route("echo@(host)", host="echo\\.example\\.com")
@stateless
def ECHO(message: MailRequest, host: str) -> None:
    app = current_app()
    if message.is_bounce():
        # Our answer could not be delivered: tell the owner, who can do something.
        notice = app.views.respond(
            {"body": message.body() or "", "owner": app.settings["owner"], "host": host},
            text="echo.txt",
            to="{{ owner }}",
            from_="echo@{{ host }}",
            subject="Undeliverable: an answer from echo@{{ host }}",
        )
        app.relay.deliver(notice)
        return
    subject = message["Subject"] or ""
    answer = app.views.respond(
        {
            "body": message.body() or "",
            "to": _answer_to(message),
            "host": host,
            "subject": subject if subject.lower().startswith("re:") else f"Re: {subject}".strip(),
        },
        text="echo.txt",
        to="{{ to }}",
        from_="echo@{{ host }}",
        subject="{{ subject }}",
    )
    app.relay.reply(message, answer)


@route("crash@(host)", host="echo\\.example\\.com")
@stateless
def CRASH(message: MailRequest, host: str) -> None:
    raise RuntimeError("crash@ always fails")
