"""Mail to a list's address: spam is caught, members' posts go out, others wait or are refused.

A post goes to every other enabled member in an envelope of its own whose sender
names the member (VERP, ``python-bounce+bob=example.net@lists.example.com``), so
a bounce says which member it is about even when a forwarding address bounced.
The post keeps its Message-ID, In-Reply-To and References, so mail readers keep
threads together, and gets the list headers of RFC 2369 and RFC 2919.
"""

from __future__ import annotations

import email.policy
import secrets
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime

from mailsim_runtime import MailRequest, current_app
from mailsim_runtime.spam import spam_filter

from app import model
from app.notices import notify, reply, set_aside

_PARSER = BytesParser(policy=email.policy.default)

# Headers a post loses on its way through the list: the list's own (they are set
# again), and the traces of its trip to the list server.
_REPLACED = (
    "List-Id",
    "List-Help",
    "List-Post",
    "List-Subscribe",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Archive",
    "List-Owner",
    "Precedence",
    "Return-Path",
    "Delivered-To",
    "X-Original-To",
    "Received",
    "Bcc",
)


# Addresses --------------------------------------------------------------------------


def list_id(list_name: str, host: str) -> str:
    """The list's identifier (RFC 2919): its name under the list server's domain."""
    return f"{list_name}.{host}"


def verp_address(list_name: str, host: str, member: str) -> str:
    """The envelope sender of mail to *member*: bounces come back to it."""
    return f"{list_name}-bounce+{member.lower().replace('@', '=')}@{host}"


def member_of_verp(encoded: str) -> str:
    """``bob=example.net`` (from a VERP address) back to ``bob@example.net``."""
    local, _, domain = encoded.rpartition("=")
    return f"{local}@{domain}".lower()


def list_headers(mailing_list: model.MailingList) -> dict[str, str]:
    """The RFC 2369 and RFC 2919 headers of the list's posts."""
    name, host = mailing_list.name, mailing_list.host
    archives = [f"<mailto:{name}-archive@{host}>"]
    archive_url = str(current_app().settings.get("archive_url", "")).rstrip("/")
    if archive_url:
        archives.insert(0, f"<{archive_url}/{name}/>")
    return {
        "List-Id": f"<{list_id(name, host)}>",
        "List-Help": f"<mailto:{name}-help@{host}>",
        "List-Post": f"<mailto:{name}@{host}>",
        "List-Subscribe": f"<mailto:{name}-subscribe@{host}>",
        "List-Unsubscribe": f"<mailto:{name}-unsubscribe@{host}>",
        "List-Archive": ", ".join(archives),
        "List-Owner": f"<mailto:{name}-owner@{host}>",
        "Precedence": "list",
    }


def without_tag(subject: str, list_name: str) -> str:
    """*subject* without the list's ``[name]`` tag: ``Re: [python] Hi`` → ``Re: Hi``."""
    return " ".join(subject.replace(f"[{list_name}]", " ").split())


# Receiving --------------------------------------------------------------------------


def _not_a_post(message: MailRequest, list_name: str, host: str) -> str | None:
    """Why *message* is no post from a person, or None when it is one."""
    if not message.sender:
        return "a bounce (null envelope sender) sent to the list address"
    auto = (message["Auto-Submitted"] or "no").split(";")[0].strip().lower()
    if auto != "no":
        return f"automatic mail (Auto-Submitted: {auto}) sent to the list address"
    if f"<{list_id(list_name, host)}>" in (message["List-Id"] or ""):
        return "the list's own post came back to it (a mail loop)"
    if message.is_bounce(threshold=0.6):
        return "a bounce sent to the list address"
    return None


@spam_filter(queue="spam")
def receive(message: MailRequest, list_name: str, host: str) -> None:
    """Mail to ``list@host`` from anyone: post it, hold it for the owner, or refuse it.

    Spam never gets this far: ``@spam_filter`` puts it in the app's ``spam`` queue.
    """
    reason = _not_a_post(message, list_name, host)
    if reason is not None:
        set_aside(message, reason)
        return
    mailing_list = model.find_list(list_name)
    if mailing_list is None:
        reply(
            message,
            "no_such_list.txt",
            "There is no list called {{ list_name }}",
            from_address=f"{list_name}-owner@{host}",
            list_name=list_name,
            host=host,
        )
    elif model.find_member(list_name, message.sender) is not None:
        distribute(message, mailing_list)
    elif mailing_list.non_members == "refuse":
        reply(
            message,
            "members_only.txt",
            "Only members can post to {{ list_name }}",
            from_address=f"{list_name}-owner@{host}",
            list_name=list_name,
            host=host,
        )
    else:
        hold(message, mailing_list)


# Posting ----------------------------------------------------------------------------


def _date(post: EmailMessage) -> datetime:
    """The post's Date, or now when it has none that can be read."""
    try:
        written = post["Date"].datetime if post["Date"] is not None else None
    except (AttributeError, TypeError, ValueError):
        written = None
    if not isinstance(written, datetime) or written.tzinfo is None:
        return current_app().clock.now().astimezone(UTC)
    return written.astimezone(UTC)


def distribute(message: MailRequest, mailing_list: model.MailingList) -> bool:
    """Archive *message* and send it to every other enabled member, as the list.

    Returns False (and sends nothing) when the list has had this Message-ID
    before: the same post sent twice, or a loop.
    """
    app = current_app()
    name, host = mailing_list.name, mailing_list.host
    post = _PARSER.parsebytes(message.original)
    assert isinstance(post, EmailMessage)
    for header in _REPLACED:
        del post[header]
    for header, value in list_headers(mailing_list).items():
        post[header] = value
    subject = str(post["Subject"] or "")
    if f"[{name}]" not in subject:
        tagged = f"[{name}] {subject}".strip()
        if post["Subject"] is None:
            post["Subject"] = tagged
        else:
            post.replace_header("Subject", tagged)
    # Stamped once, here, so every member (and the archive) sees the same post: the
    # relay would otherwise give each copy a Message-ID of its own and break threads.
    if post["Message-ID"] is None:
        post["Message-ID"] = app.relay.new_message_id()
    if post["Date"] is None:
        post["Date"] = format_datetime(app.clock.now())
    message_id = str(post["Message-ID"]).strip()
    archived = model.archive_post(
        name,
        message_id=message_id,
        in_reply_to=str(post["In-Reply-To"] or "").strip(),
        references=str(post["References"] or "").split(),
        sender=message.sender,
        author=str(post["From"] or message.sender),
        subject=without_tag(subject, name),
        date=_date(post),
        raw=post.as_bytes(policy=email.policy.SMTP),
    )
    if not archived:
        set_aside(message, f"{message_id} was posted to {name} before")
        return False
    poster = message.sender.lower()
    for member in model.members(name):
        if member != poster:
            app.relay.deliver(post, sender=verp_address(name, host, member), recipients=[member])
    return True


# Non-members ------------------------------------------------------------------------


def _new_post_id() -> str:
    # The app's own secret maker: unguessable in production, reproducible in the
    # simulated world (which seeds it).
    maker = getattr(current_app().confirmations, "new_secret", None)
    return str(maker()) if maker is not None else secrets.token_hex(16)


def _excerpt(message: MailRequest, lines: int = 40) -> str:
    text = message.body() or "(the post has no text)"
    shown = text.strip().splitlines()
    more = ["[…]"] if len(shown) > lines else []
    return "\n".join([*shown[:lines], *more])


def hold(message: MailRequest, mailing_list: model.MailingList) -> None:
    """Keep a non-member's post for the owner to approve or reject, and tell both."""
    name, host = mailing_list.name, mailing_list.host
    post_id = _new_post_id()
    subject = str(message["Subject"] or "")
    model.hold_post(post_id, name, message.sender, subject, message.original)
    notify(
        mailing_list.owner,
        "moderate.txt",
        "Post to {{ list_name }} from {{ poster }} needs approval",
        from_address=f"{name}-owner@{host}",
        envelope_sender=f"{name}-bounce@{host}",
        list_name=name,
        host=host,
        poster=message.sender,
        subject=subject,
        excerpt=_excerpt(message),
        approve=f"{name}-moderate-approve-{post_id}@{host}",
        reject=f"{name}-moderate-reject-{post_id}@{host}",
    )
    reply(
        message,
        "held.txt",
        "Your post to {{ list_name }} awaits approval",
        from_address=f"{name}-owner@{host}",
        list_name=name,
        host=host,
        subject=subject,
    )
