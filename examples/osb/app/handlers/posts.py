"""Posting: every mail to ``post@`` becomes a web page; a new author's first one
waits until they confirm it is theirs.

A conversation is one author (the envelope sender)::

    START --a first post--> CONFIRMING --confirmed--> POSTING --a post--> POSTING

``NAME-post@`` does the same as ``post@`` and names the page (``hello-world.html``);
otherwise the page is named after the subject. Deleting (``delete-N@``) is not part
of the conversation: whoever wrote post N may delete it, whatever their state.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from mailsim_runtime import MailRequest, current_app, route, route_like, stateless

from app import index, model, notices, pages

log = logging.getLogger(__name__)

# The confirmation engine keeps a first post under this target until its author
# confirms it; a newer first post takes the waiting one's place.
TARGET = "post"


@route("(name)-post@(host)")
@route("post@(host)")
def START(message: MailRequest, host: str, name: str | None = None) -> object:
    if not message.sender:
        log.info("ignoring %s: nobody can confirm a post from <>", message.message_id)
        return START
    notices.ask_to_confirm(
        _with_recipient(message),
        TARGET,
        "confirm_post.txt",
        "Please confirm your first post: {{ title }}",
        name=pages.name_of(message),
        title=pages.title_of(message),
    )
    return CONFIRMING


@route("post-confirm-(secret)@(host)")
@route_like(START)
def CONFIRMING(
    message: MailRequest, host: str, secret: str | None = None, name: str | None = None
) -> object:
    if secret is None:  # another post before the first was confirmed: it replaces it
        return START(message, host, name)
    kept = current_app().confirmations.verify(TARGET, message.sender, secret)
    if kept is None:  # a wrong secret, or one that has expired: nothing happens
        return CONFIRMING
    _publish(kept, _name_in(kept["Delivered-To"] or ""))
    return POSTING


@route_like(START)
def POSTING(message: MailRequest, host: str, name: str | None = None) -> object:
    _publish(message, name)
    return POSTING


@route("delete-(post_id)@(host)")
@stateless
def DELETE(message: MailRequest, post_id: str, host: str) -> None:
    with current_app().transaction():
        post = model.find_post(int(post_id), lock=True)
        mine = post is not None and post.author == message.sender.lower()
        if post is not None and mine:
            model.delete_post(post.id)
    if post is None:
        notices.tell(message, "no_such_post.txt", "No post {{ number }}", number=post_id)
    elif not mine:
        notices.tell(
            message,
            "not_yours.txt",
            "Not deleted: {{ title }}",
            title=post.title,
            url=pages.url_for(pages.page_name(post)),
        )
    else:
        pages.remove_post(post)
        index.queue_job(f"deleted {post.id}")
        notices.tell(message, "deleted.txt", "Deleted: {{ title }}", title=post.title)


def _publish(message: MailRequest, name: str | None) -> None:
    """Make a page of *message*, queue an index rebuild and tell the author where it is."""
    app = current_app()
    title = pages.title_of(message)
    images = pages.images_in(message)
    with app.transaction():
        post = model.add_post(
            slug=model.free_slug(pages.slugify(name or title)),
            author=message.sender,
            author_name=pages.name_of(message),
            title=title,
            body=pages.text_of(message),
            created=app.clock.now(),
        )
        if images:
            post = replace(post, images=tuple(pages.save_images(post, images)))
            model.set_images(post.id, post.images)
        pages.render_post(post)
    index.queue_job(f"published {post.id}")
    notices.tell(
        message,
        "published.txt",
        "Published: {{ title }}",
        title=post.title,
        url=pages.url_for(pages.page_name(post)),
        comment_address=f"comment-{post.id}@{app.hostname}",
        delete_address=f"delete-{post.id}@{app.hostname}",
        images=len(post.images),
    )


def _with_recipient(message: MailRequest) -> MailRequest:
    """*message* with its envelope recipient written into it, as a delivery agent
    would (``Delivered-To``): the confirmation engine keeps only the sender and the
    bytes, and the address says what the page is to be called."""
    line = f"Delivered-To: {message.recipient}\r\n".encode()
    return MailRequest(message.peer, message.sender, message.recipient, line + message.original)


def _name_in(address: str) -> str | None:
    """The page name in a post address: ``hello-post@…`` → ``hello``; ``post@…`` → None."""
    local = address.rpartition("@")[0]
    return local.removesuffix("-post") if local.endswith("-post") else None
