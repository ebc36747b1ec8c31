"""The owner's decisions on posts from non-members.

A held post (see :func:`app.posting.hold`) is known by a secret number, and the
owner gets two addresses for it: ``python-moderate-approve-NUMBER@`` sends it to
the list as if a member had posted it, ``python-moderate-reject-NUMBER@`` drops it
and tells the person who wrote it. Only the list's owner may decide, and only the
first decision on a post counts.
"""

from __future__ import annotations

from mailsim_runtime import MailRequest, route, stateless

from app import model, posting
from app.notices import reply, set_aside


@route(
    "(list_name)-moderate-(decision)-(post_id)@(host)",
    decision="approve|reject",
    post_id="[a-z0-9]+",
)
@stateless
def moderate(message: MailRequest, list_name: str, decision: str, post_id: str, host: str) -> None:
    mailing_list = model.find_list(list_name)
    if mailing_list is None or message.sender.lower() != mailing_list.owner:
        set_aside(message, f"a moderation decision for {list_name} from someone not its owner")
        return
    held = model.take_held_post(list_name, post_id)
    if held is None:
        reply(
            message,
            "moderation_done.txt",
            "Nothing waits for approval at that address",
            from_address=f"{list_name}-owner@{host}",
            list_name=list_name,
            host=host,
        )
        return
    post = MailRequest(None, held.sender, mailing_list.address, held.raw)
    if decision == "approve":
        posting.distribute(post, mailing_list)
    else:
        reply(
            post,
            "rejected.txt",
            "Your post to {{ list_name }} was not accepted",
            from_address=f"{list_name}-owner@{host}",
            list_name=list_name,
            host=host,
            subject=held.subject,
        )
