"""notice@ answers with a template that has a misspelled word in it."""

from mailsim_runtime import MailRequest, current_app, route, stateless


@route("notice@(host)", host="typos\\.example\\.com")
@stateless
def NOTICE(message: MailRequest, host: str) -> None:
    app = current_app()
    notice = app.views.respond(
        {"name": message.sender, "host": host, "to": message.sender},
        text="notice.txt",
        html="page.html",
        to="{{ to }}",
        from_="notice@{{ host }}",
        subject="Your notice from Typoville",
    )
    app.relay.reply(message, notice)
