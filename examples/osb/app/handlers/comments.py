"""Comments: mail ``comment-N@`` to comment on post N. A commenter confirms their
address once, on their first comment; after that their comments appear at once.

A conversation is one commenter (the envelope sender), whatever the post::

    START --a comment--> CONFIRMING --confirmed--> COMMENTING --a comment--> COMMENTING

A confirmation is for one comment on one post (target ``comment-N``, address
``comment-N-confirm-SECRET@``), so someone who comments on two posts before
confirming has two requests to answer; either one makes them a commenter, and
the other still publishes its comment when answered.
"""

from __future__ import annotations

import logging

from mailsim_runtime import MailRequest, current_app, route, route_like

from app import index, model, notices, pages

log = logging.getLogger(__name__)


@route("comment-(post_id)@(host)")
def START(message: MailRequest, post_id: str, host: str) -> object:
    if not message.sender:
        log.info("ignoring %s: nobody can confirm a comment from <>", message.message_id)
        return START
    return CONFIRMING if _ask_to_confirm(message, int(post_id)) else START


@route("comment-(post_id)-confirm-(secret)@(host)")
@route_like(START)
def CONFIRMING(message: MailRequest, post_id: str, host: str, secret: str | None = None) -> object:
    if secret is None:  # another comment while the first waits: it is asked about too
        _ask_to_confirm(message, int(post_id))
        return CONFIRMING
    kept = _confirmed(message, post_id, secret)
    if kept is None:  # a wrong secret, or one that has expired: nothing happens
        return CONFIRMING
    _publish(kept, int(post_id))
    return COMMENTING


@route_like(CONFIRMING)
def COMMENTING(message: MailRequest, post_id: str, host: str, secret: str | None = None) -> object:
    # A comment goes straight on the page; so does one that was still waiting for
    # its confirmation when another made this person a commenter.
    kept = message if secret is None else _confirmed(message, post_id, secret)
    if kept is not None:
        _publish(kept, int(post_id))
    return COMMENTING


def _target(post_id: int | str) -> str:
    return f"comment-{post_id}"


def _confirmed(message: MailRequest, post_id: str, secret: str) -> MailRequest | None:
    kept: MailRequest | None = current_app().confirmations.verify(
        _target(post_id), message.sender, secret
    )
    return kept


def _ask_to_confirm(message: MailRequest, post_id: int) -> bool:
    """Ask the commenter to confirm; False (having said so) when there is no such post."""
    post = model.find_post(post_id)
    if post is None:
        _no_such_post(message, post_id)
        return False
    notices.ask_to_confirm(
        message,
        _target(post_id),
        "confirm_comment.txt",
        "Please confirm your comment on {{ title }}",
        name=pages.name_of(message),
        title=post.title,
        url=pages.url_for(pages.page_name(post)),
    )
    return True


def _publish(message: MailRequest, post_id: int) -> None:
    """Add the comment to the post's page, queue an index rebuild, tell both sides."""
    app = current_app()
    with app.transaction():
        # The post's row stays locked until the page is written, so two comments
        # arriving together both end up on it.
        post = model.find_post(post_id, lock=True)
        if post is not None:
            comment = model.add_comment(
                post_id=post.id,
                author=message.sender,
                author_name=pages.name_of(message),
                body=pages.text_of(message),
                created=app.clock.now(),
            )
            pages.render_post(post)
    if post is None:  # deleted while the comment waited for its confirmation
        _no_such_post(message, post_id)
        return
    index.queue_job(f"comment on {post.id}")
    url = pages.url_for(pages.page_name(post))
    notices.tell(
        message, "comment_published.txt", "Your comment on {{ title }}", title=post.title, url=url
    )
    if post.author != comment.author:
        notices.notify(
            post.author,
            "new_comment.txt",
            "New comment on {{ title }}",
            title=post.title,
            url=url,
            commenter=comment.author_name,
            text=comment.body,
            delete_address=f"delete-{post.id}@{app.hostname}",
        )


def _no_such_post(message: MailRequest, post_id: int) -> None:
    notices.tell(message, "no_such_post.txt", "No post {{ number }}", number=post_id)
