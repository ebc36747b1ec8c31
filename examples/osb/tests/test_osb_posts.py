"""Posting: the first post's confirmation, publishing, the page, deleting."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from mailsim_runtime import Attachment, MailRequest

from mailsim.world import Mailbox, World
from mailsim.world.mailbox import ReceivedMail

MODULE = "app.handlers.posts"
HOST = "blog.example.com"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32

Mailboxes = Callable[[str], Mailbox]
Publish = Callable[..., ReceivedMail]


def test_a_first_post_waits_for_its_author_to_confirm_it(
    mail_world: World, mailbox: Mailboxes, site: Path
) -> None:
    alice = mailbox("alice@example.org")
    alice.send(f"post@{HOST}", subject="Hello world", body="My first post.")
    asked = alice.expect(
        subject="Please confirm your first post: Hello world",
        sender=re.compile(rf"^post-confirm-[0-9a-f]+@{re.escape(HOST)}$"),
        body="reply to this message",
    )
    assert asked["Auto-Submitted"] == "auto-replied"
    mail_world.expect_state(MODULE, "alice@example.org", "CONFIRMING")
    assert not (site / "hello-world.html").exists()
    assert len(mail_world.app.queues["index"]) == 0


def test_confirming_publishes_the_first_post(
    mail_world: World, mailbox: Mailboxes, site: Path
) -> None:
    alice = mailbox("alice@example.org")
    alice.send(f"post@{HOST}", subject="Hello world", body="My first post.")
    alice.reply(alice.expect(subject="Please confirm your first post"))
    published = alice.expect(subject="Published: Hello world", sender=f"noreply@{HOST}")
    assert f"http://{HOST}/hello-world.html" in published.body
    assert f"comment-1@{HOST}" in published.body
    assert f"delete-1@{HOST}" in published.body
    assert "My first post." in (site / "hello-world.html").read_text()
    mail_world.expect_state(MODULE, "alice@example.org", "POSTING")
    assert len(mail_world.app.queues["index"]) == 1  # the index is rebuilt later


def test_a_confirmed_author_publishes_at_once(
    mail_world: World, mailbox: Mailboxes, publish: Publish, site: Path
) -> None:
    publish("alice@example.org", "First")
    alice = mailbox("alice@example.org")
    alice.send(f"post@{HOST}", subject="Second", body="No questions asked.")
    published = alice.expect(subject="Published: Second")
    assert f"http://{HOST}/second.html" in published.body
    assert f"comment-2@{HOST}" in published.body
    assert (site / "second.html").exists()
    mail_world.expect_state(MODULE, "alice@example.org", "POSTING")


def test_the_page_has_the_subject_as_its_title_and_shows_the_text_escaped(
    mailbox: Mailboxes, publish: Publish, site: Path
) -> None:
    publish("alice@example.org", "Warm-up")
    mailbox("alice@example.org").send(
        f"post@{HOST}",
        subject="Tips & <tricks>",
        body='Try this:\n<script>alert("owned")</script>\n\nAnd <b>bold</b> & "quotes".\n',
        headers={"From": "Alice Liddell <alice@example.org>"},
    )
    mailbox("alice@example.org").expect(subject="Published: Tips & <tricks>")
    page = (site / "tips-tricks.html").read_text()
    assert "<title>Tips &amp; &lt;tricks&gt; · The one-shot blog</title>" in page
    assert "<h1>Tips &amp; &lt;tricks&gt;</h1>" in page
    assert "<script>" not in page
    assert "Try this:\n&lt;script&gt;alert(&#34;owned&#34;)&lt;/script&gt;</p>" in page
    assert "<p>And &lt;b&gt;bold&lt;/b&gt; &amp; &#34;quotes&#34;.</p>" in page
    assert "By Alice Liddell, " in page
    assert "alice@example.org" not in page  # no addresses for spammers to harvest


def test_a_post_without_a_subject_is_untitled(mailbox: Mailboxes, publish: Publish) -> None:
    published = publish("alice@example.org", "", "Just some text.")
    assert published.subject == "Published: Untitled"
    assert "/untitled.html" in published.body


def test_the_signature_is_left_off_the_page(publish: Publish, site: Path) -> None:
    publish("alice@example.org", "Signed", "The post.\n\n-- \nAlice, who writes\n")
    page = (site / "signed.html").read_text()
    assert "The post." in page
    assert "who writes" not in page


def test_a_named_address_names_the_page_even_through_the_confirmation(
    mail_world: World, mailbox: Mailboxes, site: Path
) -> None:
    alice = mailbox("alice@example.org")
    alice.send(f"My-Trip-post@{HOST}", subject="Where I went", body="Far away.")
    alice.reply(alice.expect(subject="Please confirm your first post: Where I went"))
    published = alice.expect(subject="Published: Where I went")
    assert f"http://{HOST}/my-trip.html" in published.body
    assert "Far away." in (site / "my-trip.html").read_text()
    alice.send(f"second-trip-post@{HOST}", subject="Back again")
    alice.expect(subject="Published: Back again", body="/second-trip.html")


def test_page_names_are_never_reused_or_the_index(publish: Publish) -> None:
    assert "/hello.html" in publish("alice@example.org", "Hello").body
    assert "/hello-2.html" in publish("alice@example.org", "Hello").body
    assert "/hello-3.html" in publish("bob@example.org", "Hello", to=f"hello-post@{HOST}").body
    assert "/index-2.html" in publish("alice@example.org", "Index").body
    assert "/images-2.html" in publish("alice@example.org", "Images").body


def test_a_wrong_confirmation_address_does_nothing(mail_world: World, mailbox: Mailboxes) -> None:
    alice = mailbox("alice@example.org")
    alice.send(f"post@{HOST}", subject="Hello")
    alice.expect(subject="Please confirm your first post")
    alice.send(f"post-confirm-0000@{HOST}", subject="yes")
    alice.expect_no_mail()
    mail_world.expect_state(MODULE, "alice@example.org", "CONFIRMING")


def test_a_post_confirmation_expires_and_a_new_post_asks_again(
    mail_world: World, mailbox: Mailboxes, site: Path
) -> None:
    alice = mailbox("alice@example.org")
    alice.send(f"post@{HOST}", subject="Too late")
    asked = alice.expect(subject="Please confirm your first post", body="good for 3 days")
    mail_world.clock.advance(days=3)
    alice.reply(asked)
    alice.expect_no_mail()
    mail_world.expect_state(MODULE, "alice@example.org", "CONFIRMING")
    assert not (site / "too-late.html").exists()
    alice.send(f"post@{HOST}", subject="In time")
    alice.reply(alice.expect(subject="Please confirm your first post: In time"))
    alice.expect(subject="Published: In time")
    mail_world.expect_state(MODULE, "alice@example.org", "POSTING")


def test_a_second_post_before_confirming_takes_the_first_ones_place(
    mail_world: World, mailbox: Mailboxes, site: Path
) -> None:
    alice = mailbox("alice@example.org")
    alice.send(f"post@{HOST}", subject="Draft")
    first = alice.expect(subject="Please confirm your first post: Draft")
    alice.send(f"post@{HOST}", subject="Better")
    second = alice.expect(subject="Please confirm your first post: Better")
    alice.reply(first)  # its secret stopped working when the second was asked
    alice.expect_no_mail()
    alice.reply(second)
    alice.expect(subject="Published: Better")
    assert not (site / "draft.html").exists()
    mail_world.expect_state(MODULE, "alice@example.org", "POSTING")


def test_attached_pictures_are_published_with_the_post(
    mailbox: Mailboxes, publish: Publish, site: Path
) -> None:
    publish("alice@example.org", "Warm-up")
    alice = mailbox("alice@example.org")
    alice.send(
        f"post@{HOST}",
        subject="Holiday",
        body="Look!",
        attachments=[
            Attachment("../../beach.png", "image/png", PNG),
            Attachment("fake.png", "image/png", b"<html>not a picture</html>"),
            Attachment("notes.pdf", "application/pdf", b"%PDF-1.4"),
        ],
    )
    published = alice.expect(subject="Published: Holiday")
    assert "1 picture is shown with it" in published.body
    assert (site / "images" / "2-1.png").read_bytes() == PNG
    assert sorted(p.name for p in (site / "images").iterdir()) == ["2-1.png"]
    assert '<img src="images/2-1.png"' in (site / "holiday.html").read_text()


def test_mail_from_the_null_sender_is_ignored(mail_world: World) -> None:
    bounce = b"From: MAILER-DAEMON@example.org\r\nSubject: Undelivered\r\n\r\nSorry.\r\n"
    mail_world.app.deliver(MailRequest("127.0.0.1", "", f"post@{HOST}", bounce))
    mail_world.app.deliver(MailRequest("127.0.0.1", "", f"comment-1@{HOST}", bounce))
    assert mail_world.state(MODULE, "") == "START"
    assert mail_world.state("app.handlers.comments", "") == "START"
    assert mail_world.app.confirmations.storage.all() == []


# Deleting ------------------------------------------------------------------------


def test_the_author_deletes_a_post(
    mail_world: World, mailbox: Mailboxes, publish: Publish, site: Path, index: ModuleType
) -> None:
    publish("alice@example.org", "Keep")
    alice = mailbox("alice@example.org")
    alice.send(f"post@{HOST}", subject="Oops", attachments=[Attachment("a.png", "image/png", PNG)])
    alice.expect(subject="Published: Oops")
    index.run_jobs(mail_world.app)
    assert "oops.html" in (site / "index.html").read_text()
    alice.send(f"delete-2@{HOST}")
    alice.expect(subject="Deleted: Oops", body="no longer on the web")
    assert not (site / "oops.html").exists()
    assert not (site / "images" / "2-1.png").exists()
    assert (site / "keep.html").exists()
    assert index.run_jobs(mail_world.app) == 1
    assert "oops.html" not in (site / "index.html").read_text()
    alice.send(f"delete-2@{HOST}")  # once more: it is gone
    alice.expect(subject="No post 2")
    mail_world.expect_state(MODULE, "alice@example.org", "POSTING")


def test_a_stranger_cannot_delete_a_post(
    mail_world: World, mailbox: Mailboxes, publish: Publish, site: Path
) -> None:
    publish("alice@example.org", "Mine")
    for stranger in ("mallory@example.net", "bob@example.org"):
        if stranger.startswith("bob"):
            publish(stranger, "Bob's own")  # a confirmed author, but not this post's
        mailbox(stranger).send(f"delete-1@{HOST}", headers={"From": "alice@example.org"})
        mailbox(stranger).expect(subject="Not deleted: Mine", body="only its author")
    assert (site / "mine.html").exists()
    mailbox("alice@example.org").expect_no_mail()
    mail_world.expect_state(MODULE, "mallory@example.net", "START")  # delete is stateless


def test_deleting_an_unknown_post(mailbox: Mailboxes) -> None:
    mallory = mailbox("mallory@example.net")
    mallory.send(f"delete-99@{HOST}")
    mallory.expect(subject="No post 99", body="no post number 99")


def test_notices_come_from_an_address_that_takes_no_mail(
    mail_world: World, publish: Publish
) -> None:
    published = publish("alice@example.org", "Hello")
    assert published["From"] == f"The one-shot blog <noreply@{HOST}>"
    assert not mail_world.app.accepts(f"noreply@{HOST}")
