"""Bounces: every post goes out with a VERP envelope sender, and this is where they return.

``python-bounce+bob=example.net@lists.example.com`` says the bounce is about
bob@example.net on the python list, whatever the report itself names (a
forwarding address may have bounced). :func:`~mailsim_runtime.bounce.bounce_to`
reads the report and picks:

- a **hard** bounce (the address is gone: unknown user, unknown domain): the
  member is disabled at once — no more posts are sent to it — and the owner is told;
- a **soft** one (full mailbox, a server down for days, a block): the member is
  warned, and after ``soft_bounce_limit`` soft bounces in a row (at most one a day
  counts; ``soft_bounce_days`` without one forgets them) disabled as for a hard one.

An automatic "I am away" reply that comes back to the bounce address is neither:
it is only logged. A disabled member who subscribes again, and confirms, gets the
posts again.
"""

from __future__ import annotations

from datetime import timedelta

from mailsim_runtime import MailRequest, current_app, route, stateless
from mailsim_runtime.bounce import BounceReport, bounce_to

from app import model
from app.notices import log, notify, set_aside
from app.posting import member_of_verp, verp_address


def _why(report: BounceReport | None) -> str:
    """The remote server's words about the failure, for people to read."""
    if report is None:
        return "a bounce that could not be read"
    failed = next((r for r in report.recipients if r.hard), report.recipients[0])
    return failed.diagnostic or failed.reason


def _disable(list_name: str, host: str, address: str, because: str) -> None:
    model.disable_member(list_name, address, because)
    mailing_list = model.find_list(list_name)
    if mailing_list is None:
        return
    notify(
        mailing_list.owner,
        "disabled.txt",
        "{{ member }} no longer gets mail from {{ list_name }}",
        from_address=f"{list_name}-owner@{host}",
        envelope_sender=f"{list_name}-bounce@{host}",
        list_name=list_name,
        host=host,
        member=address,
        because=because,
    )


def soft_bounce(message: MailRequest, list_name: str, member: str, host: str) -> None:
    report = message.bounce
    address = member_of_verp(member)
    if report is not None and all(r.reason == "vacation" for r in report.recipients):
        log.info("%s on %s is away (an auto-reply came back); not a bounce", address, list_name)
        return
    found = model.find_member(list_name, address)
    if found is None or not found.enabled:
        log.info("a soft bounce for %s, who gets no mail from %s", address, list_name)
        return
    settings = current_app().settings
    limit = int(settings.get("soft_bounce_limit", 3))
    forget_after = timedelta(days=int(settings.get("soft_bounce_days", 14)))
    count = model.count_soft_bounce(list_name, address, forget_after=forget_after)
    if count is None:
        return  # one bad day counts once: this member was warned today
    if count >= limit:
        because = f"{count} soft bounces in a row; the last: {_why(report)}"
        _disable(list_name, host, address, because)
        return
    notify(
        address,
        "bouncing.txt",
        "Mail from {{ list_name }} to you is bouncing",
        from_address=f"{list_name}@{host}",
        # Its own bounce counts as one more, as a post's would.
        envelope_sender=verp_address(list_name, host, address),
        list_name=list_name,
        host=host,
        because=_why(report),
        count=count,
        limit=limit,
    )


def hard_bounce(message: MailRequest, list_name: str, member: str, host: str) -> None:
    address = member_of_verp(member)
    found = model.find_member(list_name, address)
    if found is None or not found.enabled:
        log.info("a hard bounce for %s, who gets no mail from %s", address, list_name)
        return
    _disable(list_name, host, address, _why(message.bounce))


@route("(list_name)-bounce+(member)@(host)", member="[^@]+=[^@=]+")
@stateless
@bounce_to(soft=soft_bounce, hard=hard_bounce)
def bounce(message: MailRequest, list_name: str, member: str, host: str) -> None:
    """Mail to a member's bounce address that is not a bounce at all (bounces go to
    ``soft_bounce`` or ``hard_bounce``): kept for a person to look at."""
    set_aside(message, f"mail to {list_name}'s bounce address that is not a bounce")


@route("(list_name)-bounce@(host)")
@stateless
def owner_mail_bounced(message: MailRequest, list_name: str, host: str) -> None:
    """A bounce of mail the list sent its owner: nobody to disable, so kept for a person."""
    set_aside(message, f"a bounce of mail {list_name} sent to its owner")
