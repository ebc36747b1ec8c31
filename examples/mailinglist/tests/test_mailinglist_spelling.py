"""Every template is spelled correctly (words the dictionary lacks: words.txt)."""

from pathlib import Path

import pytest

from mailsim.spelling import SpellChecker, SpellingSetupError, assert_spelled_correctly

PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture
def checker():
    try:
        return SpellChecker(word_file=PROJECT / "words.txt")
    except SpellingSetupError as missing:
        pytest.skip(str(missing))


def test_every_template_is_spelled_correctly(mail_world, checker):
    views = mail_world.app.views
    assert {"welcome.txt", "archive/post.html"} <= set(views.template_names())  # mails, pages
    assert_spelled_correctly(checker.check_templates(views))


def test_the_checker_would_notice_a_typo(checker):
    findings = checker.check_text("Welcome to the lsit.", kind="template")
    assert [f.word for f in findings] == ["lsit"]
