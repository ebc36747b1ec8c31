"""The list's other addresses, named in every post's headers (RFC 2369).

``python-help@`` (List-Help) answers with how the list works, ``python-archive@``
(List-Archive) with its latest posts, and ``python-owner@`` (List-Owner) passes
mail on to the person who runs the list. The answers go through ``relay.reply``:
robots get none, so no two robots answer each other for ever.
"""

from __future__ import annotations

from mailsim_runtime import MailRequest, current_app, route, stateless
from mailsim_runtime.spam import spam_filter

from app import model
from app.notices import reply, set_aside


@route("(list_name)-help@(host)")
@stateless
def send_help(message: MailRequest, list_name: str, host: str) -> None:
    reply(
        message,
        "help.txt",
        "How the {{ list_name }} list works",
        from_address=f"{list_name}@{host}",
        list_name=list_name,
        host=host,
    )


@route("(list_name)-archive@(host)")
@stateless
def send_archive(message: MailRequest, list_name: str, host: str) -> None:
    if model.find_list(list_name) is None:
        reply(
            message,
            "no_such_list.txt",
            "There is no list called {{ list_name }}",
            from_address=f"{list_name}-owner@{host}",
            list_name=list_name,
            host=host,
        )
        return
    how_many = int(current_app().settings.get("archive_by_mail", 10))
    reply(
        message,
        "archive.txt",
        "The latest posts to {{ list_name }}",
        from_address=f"{list_name}@{host}",
        list_name=list_name,
        host=host,
        posts=model.posts(list_name, last=how_many),
        archive_url=str(current_app().settings.get("archive_url", "")).rstrip("/"),
    )


@route("(list_name)-owner@(host)")
@stateless
@spam_filter(queue="spam")
def forward_to_owner(message: MailRequest, list_name: str, host: str) -> None:
    app = current_app()
    mailing_list = model.find_list(list_name)
    owner = mailing_list.owner if mailing_list else str(app.settings.get("owner", ""))
    if not owner or owner.rpartition("@")[2].lower() in app.domains:
        # The owner must live elsewhere: passing mail to ourselves could loop.
        set_aside(message, f"mail for the owner of {list_name}, who has no address elsewhere")
        return
    # Bounces of it come back to the list's own bounce address, never to the writer.
    app.relay.deliver(message.original, sender=f"{list_name}-bounce@{host}", recipients=[owner])
