"""Comments: confirmed once per commenter, expiring, shown on the page, told to the author."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from mailsim.world import Mailbox, World
from mailsim.world.mailbox import ReceivedMail

MODULE = "app.handlers.comments"
HOST = "blog.example.com"

Mailboxes = Callable[[str], Mailbox]
Publish = Callable[..., ReceivedMail]


def test_a_comment_waits_for_its_writer_to_confirm_it(
    mail_world: World, mailbox: Mailboxes, publish: Publish, site: Path
) -> None:
    publish("alice@example.org", "Hello")
    bob = mailbox("bob@example.org")
    bob.send(f"comment-1@{HOST}", subject="Nice", body="Nice post!")
    asked = bob.expect(
        subject="Please confirm your comment on Hello",
        sender=re.compile(rf"^comment-1-confirm-[0-9a-f]+@{re.escape(HOST)}$"),
        body=f"http://{HOST}/hello.html",
    )
    assert asked["Auto-Submitted"] == "auto-replied"
    mail_world.expect_state(MODULE, "bob@example.org", "CONFIRMING")
    assert "Nice post!" not in (site / "hello.html").read_text()
    mailbox("alice@example.org").expect_no_mail()


def test_a_confirmed_comment_is_on_the_page_and_the_author_is_told(
    mail_world: World, mailbox: Mailboxes, publish: Publish, site: Path
) -> None:
    publish("alice@example.org", "Hello")
    jobs = len(mail_world.app.queues["index"])
    bob = mailbox("bob@example.org")
    bob.send(
        f"comment-1@{HOST}",
        subject="Nice",
        body="Nice <em>post</em>!\n\nSee you & yours.",
        headers={"From": "Bob Builder <bob@example.org>"},
    )
    bob.reply(bob.expect(subject="Please confirm your comment on Hello"))
    bob.expect(subject="Your comment on Hello", body=f"http://{HOST}/hello.html")
    told = mailbox("alice@example.org").expect(
        subject="New comment on Hello", sender=f"noreply@{HOST}"
    )
    assert "Bob Builder commented on your post" in told.body
    assert "Nice <em>post</em>!" in told.body  # plain text: nothing to escape
    assert f"delete-1@{HOST}" in told.body
    assert told["Auto-Submitted"] == "auto-generated"
    assert "bob@example.org" not in told.body
    page = (site / "hello.html").read_text()
    assert '<p class="meta">Bob Builder, ' in page
    assert "<p>Nice &lt;em&gt;post&lt;/em&gt;!</p>\n<p>See you &amp; yours.</p>" in page
    assert "No comments yet." not in page
    mail_world.expect_state(MODULE, "bob@example.org", "COMMENTING")
    assert len(mail_world.app.queues["index"]) == jobs + 1  # the comment count changed


def test_a_commenter_confirms_once(
    mail_world: World, mailbox: Mailboxes, publish: Publish, site: Path
) -> None:
    publish("alice@example.org", "Hello")
    publish("alice@example.org", "Again")
    bob = mailbox("bob@example.org")
    bob.send(f"comment-1@{HOST}", body="First.")
    bob.reply(bob.expect(subject="Please confirm your comment"))
    bob.expect(subject="Your comment on Hello")
    bob.send(f"comment-2@{HOST}", body="Second, on another post.")
    bob.expect(subject="Your comment on Again")  # no confirmation this time
    alice = mailbox("alice@example.org")
    alice.expect(subject="New comment on Hello")
    alice.expect(subject="New comment on Again", body="Second, on another post.")
    assert "Second, on another post." in (site / "again.html").read_text()
    mail_world.expect_state(MODULE, "bob@example.org", "COMMENTING")


def test_comments_are_shown_oldest_first(mailbox: Mailboxes, publish: Publish, site: Path) -> None:
    publish("alice@example.org", "Hello")
    bob = mailbox("bob@example.org")
    bob.send(f"comment-1@{HOST}", body="One.")
    bob.reply(bob.expect(subject="Please confirm your comment"))
    bob.expect(subject="Your comment")
    bob.send(f"comment-1@{HOST}", body="Two.")
    bob.expect(subject="Your comment")
    mailbox("alice@example.org").expect(subject="New comment", body="One.")
    mailbox("alice@example.org").expect(subject="New comment", body="Two.")
    page = (site / "hello.html").read_text()
    assert page.index("<p>One.</p>") < page.index("<p>Two.</p>")


def test_a_comment_confirmation_expires(
    mail_world: World, mailbox: Mailboxes, publish: Publish, site: Path
) -> None:
    publish("alice@example.org", "Hello")
    bob = mailbox("bob@example.org")
    bob.send(f"comment-1@{HOST}", body="Late.")
    asked = bob.expect(subject="Please confirm your comment", body="good for 3 days")
    mail_world.clock.advance(days=3)
    bob.reply(asked)
    bob.expect_no_mail()
    mailbox("alice@example.org").expect_no_mail()
    assert "Late." not in (site / "hello.html").read_text()
    mail_world.expect_state(MODULE, "bob@example.org", "CONFIRMING")
    bob.send(f"comment-1@{HOST}", body="Once more.")  # asking again is the way out
    bob.reply(bob.expect(subject="Please confirm your comment"))
    bob.expect(subject="Your comment on Hello")
    mailbox("alice@example.org").expect(subject="New comment", body="Once more.")


def test_a_comment_confirmed_just_in_time(
    mail_world: World, mailbox: Mailboxes, publish: Publish
) -> None:
    publish("alice@example.org", "Hello")
    bob = mailbox("bob@example.org")
    bob.send(f"comment-1@{HOST}", body="Just in time.")
    asked = bob.expect(subject="Please confirm your comment")
    mail_world.clock.advance(days=2, hours=23)
    bob.reply(asked)
    bob.expect(subject="Your comment on Hello")
    mailbox("alice@example.org").expect(subject="New comment")


def test_a_wrong_confirmation_address_does_nothing(
    mail_world: World, mailbox: Mailboxes, publish: Publish
) -> None:
    publish("alice@example.org", "Hello")
    bob = mailbox("bob@example.org")
    bob.send(f"comment-1@{HOST}", body="Hi.")
    bob.expect(subject="Please confirm your comment")
    bob.send(f"comment-1-confirm-0000@{HOST}")
    bob.expect_no_mail()
    mail_world.expect_state(MODULE, "bob@example.org", "CONFIRMING")


def test_a_comment_on_an_unknown_post(mail_world: World, mailbox: Mailboxes) -> None:
    bob = mailbox("bob@example.org")
    bob.send(f"comment-42@{HOST}", body="Hello?")
    bob.expect(subject="No post 42", body="no post number 42")
    mail_world.expect_state(MODULE, "bob@example.org", "START")
    assert mail_world.app.confirmations.storage.all() == []


def test_comments_on_two_posts_before_confirming_both_get_published(
    mail_world: World, mailbox: Mailboxes, publish: Publish, site: Path
) -> None:
    publish("alice@example.org", "Hello")
    publish("carol@example.org", "Howdy")
    bob = mailbox("bob@example.org")
    bob.send(f"comment-1@{HOST}", body="On hello.")
    on_hello = bob.expect(subject="Please confirm your comment on Hello")
    bob.send(f"comment-2@{HOST}", body="On howdy.")  # CONFIRMING: asked about too
    on_howdy = bob.expect(subject="Please confirm your comment on Howdy")
    bob.send(f"comment-42@{HOST}", body="On nothing.")
    bob.expect(subject="No post 42")
    mail_world.expect_state(MODULE, "bob@example.org", "CONFIRMING")
    bob.reply(on_howdy)
    bob.expect(subject="Your comment on Howdy")
    mailbox("carol@example.org").expect(subject="New comment on Howdy")
    mail_world.expect_state(MODULE, "bob@example.org", "COMMENTING")
    bob.reply(on_hello)  # answered late: still publishes its comment
    bob.expect(subject="Your comment on Hello")
    mailbox("alice@example.org").expect(subject="New comment on Hello")
    assert "On hello." in (site / "hello.html").read_text()
    assert "On howdy." in (site / "howdy.html").read_text()
    bob.reply(on_hello)  # a confirmation works once only
    bob.expect_no_mail()


def test_a_post_deleted_while_its_comment_waits(
    mail_world: World, mailbox: Mailboxes, publish: Publish
) -> None:
    publish("alice@example.org", "Brief")
    bob = mailbox("bob@example.org")
    bob.send(f"comment-1@{HOST}", body="Wait for me.")
    asked = bob.expect(subject="Please confirm your comment")
    alice = mailbox("alice@example.org")
    alice.send(f"delete-1@{HOST}")
    alice.expect(subject="Deleted: Brief")
    bob.reply(asked)
    bob.expect(subject="No post 1")
    mail_world.expect_state(MODULE, "bob@example.org", "COMMENTING")  # bob is confirmed
    bob.send(f"comment-1@{HOST}")
    bob.expect(subject="No post 1")


def test_the_author_is_not_told_of_their_own_comment(
    mailbox: Mailboxes, publish: Publish, site: Path
) -> None:
    publish("alice@example.org", "Hello")
    alice = mailbox("alice@example.org")
    alice.send(f"comment-1@{HOST}", body="Thanks, all.")
    alice.reply(alice.expect(subject="Please confirm your comment"))
    alice.expect(subject="Your comment on Hello")
    alice.expect_no_mail()
    assert "Thanks, all." in (site / "hello.html").read_text()
