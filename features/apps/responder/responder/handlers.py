"""support@ answers every mail automatically, as far as RFC 3834 allows.

The rules are the runtime's own (``relay.reply``): no answer to a bounce (``<>``), to
mail that says ``Auto-Submitted``, to list or bulk mail. What it may not answer is
kept in the ``unanswered`` queue with the reason, for a person to read.
"""

from mailsim_runtime import MailRequest, current_app, route, stateless
from mailsim_runtime.autoreply import auto_reply_refusal


@route("support@(host)", host="responder\\.example\\.com")
@stateless
def SUPPORT(message: MailRequest, host: str) -> None:
    app = current_app()
    subject = message["Subject"] or ""
    answer = app.views.respond(
        {
            "host": host,
            "to": message["Reply-To"] or message["From"] or message.sender,
            "subject": subject if subject.lower().startswith("re:") else f"Re: {subject}".strip(),
        },
        text="answer.txt",
        to="{{ to }}",
        from_="support@{{ host }}",
        subject="{{ subject }}",
    )
    if app.relay.reply(message, answer) is None:
        app.queues["unanswered"].push(message, auto_reply_refusal(message) or "not answered")
