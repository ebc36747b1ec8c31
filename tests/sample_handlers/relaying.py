"""An app for world tests: it forwards, auto-replies properly, or replies carelessly."""

from mailsim_runtime import MailResponse, current_app, route, stateless
from mailsim_runtime.mail import MailRequest


@route("forward-(user)-at-(domain)@app.example.com")
@stateless
def forward(message: MailRequest, user: str, domain: str) -> None:
    current_app().relay.deliver(
        MailResponse(
            to=f"{user}@{domain}",
            from_="forwarder@app.example.com",
            subject=message["Subject"] or "",
            body=message.body() or "",
        )
    )


@route("auto@app.example.com")
@stateless
def auto(message: MailRequest) -> None:
    current_app().relay.reply(
        message, MailResponse(from_="auto@app.example.com", subject="Got it", body="Thanks.")
    )


@route("careless@app.example.com")
@stateless
def careless(message: MailRequest) -> None:
    # Ignores RFC 3834 on purpose: answers everything, marks nothing.
    current_app().relay.deliver(
        MailResponse(to=message.sender, from_="careless@app.example.com", subject="Re", body="Hi")
    )


@route("broken@app.example.com")
@stateless
def broken(message: MailRequest) -> None:
    raise RuntimeError("the handler is broken")
