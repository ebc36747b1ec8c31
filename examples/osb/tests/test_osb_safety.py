"""Fit to run: spelled correctly, no open relay, only the blog's addresses taken."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailsim.spelling import SpellChecker, assert_spelled_correctly
from mailsim.world import World

PROJECT = Path(__file__).resolve().parent.parent
HOST = "blog.example.com"


def test_every_template_is_spelled_correctly(mail_world: World) -> None:
    words = PROJECT / "words.txt"  # the blog's own words, if it ever needs any
    checker = SpellChecker(word_file=words if words.is_file() else None)
    names = mail_world.app.views.template_names()
    assert "web/post.html" in names
    assert "mail/confirm_post.txt" in names
    assert_spelled_correctly(checker.check_templates(mail_world.app.views))


def test_the_server_is_not_an_open_relay(mail_world: World) -> None:
    report = mail_world.check_open_relay()
    assert not report.open, str(report)


@pytest.mark.parametrize(
    "address",
    [
        f"post@{HOST}",
        f"post@{HOST.upper()}",
        f"hello-world-post@{HOST}",
        f"Hello-World-post@{HOST}",
        f"post-confirm-abc123@{HOST}",
        f"comment-7@{HOST}",
        f"comment-7-confirm-abc123@{HOST}",
        f"delete-7@{HOST}",
        f"postmaster@{HOST}",
    ],
)
def test_the_blogs_addresses_are_taken(mail_world: World, address: str) -> None:
    assert mail_world.app.accepts(address)


@pytest.mark.parametrize(
    "address",
    [
        f"index@{HOST}",
        f"noreply@{HOST}",
        f"comment-seven@{HOST}",
        f"delete-@{HOST}",
        f"-post@{HOST}",
        f"hello_world-post@{HOST}",
        "post@example.org",
        f"post%example.org@{HOST}",
    ],
)
def test_other_addresses_are_refused(mail_world: World, address: str) -> None:
    assert not mail_world.app.accepts(address)
