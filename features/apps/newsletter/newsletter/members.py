"""A newsletter: people join, the editor posts, and bounces decide who stays.

``join@`` makes the sender a member (START → MEMBER). The editor's mail to ``post@``
goes to every member with a VERP envelope sender, ``bounce+bob=example.net@…``, so
that a bounce names the member it is about whatever the report says. The state key
generator reads that address, so a bounce reaches the member's own conversation,
where :func:`~mailsim_runtime.bounce.bounce_to` picks:

- **hard** (the address is gone: unknown user or domain): the member is DISABLED and
  gets no more issues; the editor is told;
- **soft** (anything that may pass: a host down for days, a refusal for policy): the
  member stays; the editor is told.

A DISABLED member has no state function for bounces: a late one is kept in the
undeliverable queue. Joining again makes a member again.
"""

import re

from mailsim_runtime import (
    MailRequest,
    MailResponse,
    current_app,
    route,
    route_like,
    state_key_generator,
    stateless,
)
from mailsim_runtime.bounce import bounce_to

_VERP = re.compile(r"bounce\+(?P<local>[^@=]+)=(?P<domain>[^@=]+)@", re.IGNORECASE)


def verp(member: str, host: str) -> str:
    local, _, domain = member.rpartition("@")
    return f"bounce+{local}={domain}@{host}"


@state_key_generator
def member_key(module_name: str, message: MailRequest) -> str:
    found = _VERP.match(message.recipient)
    if found:
        return f"{found['local']}@{found['domain']}".lower()
    return message.sender.lower()


def _tell(message: MailRequest, host: str, template: str, subject: str) -> None:
    app = current_app()
    answer = app.views.respond(
        {"host": host, "to": message["From"] or message.sender, "subject": subject},
        text=template,
        to="{{ to }}",
        from_="news@{{ host }}",
        subject="{{ subject }}",
    )
    app.relay.reply(message, answer)


def _tell_editor(message: MailRequest, member: str, host: str, verdict: str) -> None:
    app = current_app()
    report = message.bounce
    address = member_key(__name__, message)
    notice = app.views.respond(
        {
            "editor": app.settings["editor"],
            "member": address,
            "host": host,
            "verdict": verdict,
            "failures": report.recipients if report is not None else [],
            "kind": "Hard" if verdict.startswith("hard") else "Soft",
        },
        text="bounce.txt",
        to="{{ editor }}",
        from_="news@{{ host }}",
        subject="{{ kind }} bounce: {{ member }}",
        headers={"Auto-Submitted": "auto-generated"},
    )
    app.relay.deliver(notice)


def soft_bounce(message: MailRequest, host: str, member: str = "") -> object:
    _tell_editor(message, member, host, "soft, still a member")
    return MEMBER


def hard_bounce(message: MailRequest, host: str, member: str = "") -> object:
    _tell_editor(message, member, host, "hard, no more issues go to this address")
    return DISABLED


@route("join@(host)", host="news\\.example\\.com")
def START(message: MailRequest, host: str) -> object:
    _tell(message, host, "welcome.txt", "Welcome to the news")
    return MEMBER


@route_like(START)
@route("bounce+(member)@(host)", member="[^@]+", host="news\\.example\\.com")
@bounce_to(soft=soft_bounce, hard=hard_bounce)
def MEMBER(message: MailRequest, host: str, member: str = "") -> object:
    if member:  # mail to a bounce address that is no bounce: a person should look
        current_app().queues["undeliverable"].push(message, "mail to a bounce address")
        return MEMBER
    _tell(message, host, "welcome.txt", "Welcome to the news")
    return MEMBER


@route_like(START)
def DISABLED(message: MailRequest, host: str) -> object:
    return START(message, host)


@route("post@(host)", host="news\\.example\\.com")
@stateless
def POST(message: MailRequest, host: str) -> None:
    app = current_app()
    if message.sender.lower() != app.settings["editor"].lower():
        _tell(message, host, "editor_only.txt", "Not sent")
        return
    members = [
        record.key
        for record in app.states.records()
        if record.module == __name__ and record.state == "MEMBER"
    ]
    for member in sorted(members):
        issue = MailResponse(
            to=member,
            from_=f"news@{host}",
            subject=message["Subject"] or "",
            body=message.body() or "",
            headers={"List-Id": f"<news.{host}>", "Precedence": "list"},
        )
        app.relay.deliver(issue, sender=verp(member, host))
