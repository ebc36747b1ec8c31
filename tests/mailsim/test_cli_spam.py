"""``mailsim spam train`` and ``mailsim spam score`` with the project's database."""

from __future__ import annotations

import mailbox
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mailsim.cli import main

HAM_WORDS = [
    "the quarterly planning meeting moves to thursday afternoon in room four",
    "please review the attached draft of the conference paper before friday",
    "lunch with the project team tomorrow, bring the budget spreadsheet",
    "minutes of the steering committee and the action items for next week",
    "the build is green again after the database migration fix",
]
SPAM_WORDS = [
    "cheap pills online, no prescription, lowest prices guaranteed, order now",
    "you have won a million dollars, claim your lottery prize today",
    "hot singles waiting, click here for free access, limited offer",
    "make money fast working from home, guaranteed income, act now",
    "urgent: your account is suspended, verify your password at this link",
]


def run(*args: str, input: bytes | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=input)


def _mail(sender: str, subject: str, body: str) -> bytes:
    return f"From: {sender}\nTo: me@example.com\nSubject: {subject}\n\n{body}\n".encode()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "mailsim.toml").write_text(
        '[app]\nhandlers = ["app.handlers.x"]\n'
        '[spam]\nenabled = true\ndatabase = "sqlite:///run/spam.sqlite3"\n'
    )
    assert run("db", "upgrade", "--project", str(tmp_path)).exit_code == 0
    return tmp_path


@pytest.fixture
def corpora(tmp_path: Path) -> tuple[Path, Path]:
    """Ham in a Maildir, spam in an mbox, each message a few times over."""
    ham = mailbox.Maildir(tmp_path / "ham", create=True)
    spam_path = tmp_path / "spam.mbox"
    spam = mailbox.mbox(spam_path)
    for round_ in range(4):
        for number, text in enumerate(HAM_WORDS):
            ham.add(_mail("colleague@work.example", f"notes {round_}.{number}", text))
        for number, text in enumerate(SPAM_WORDS):
            spam.add(_mail("offers@deals.example", f"OFFER {round_}.{number}", text))
    spam.close()
    return tmp_path / "ham", spam_path


def test_train_then_score(project: Path, corpora: tuple[Path, Path], tmp_path: Path) -> None:
    ham, spam = corpora
    trained = run("spam", "train", "--ham", str(ham), "--spam", str(spam), "-p", str(project))
    assert trained.exit_code == 0, trained.output
    assert f"trained on 20 ham messages from {ham}" in trained.stdout
    assert f"trained on 20 spam messages from {spam}" in trained.stdout
    assert "now knows 20 ham and 20 spam" in trained.stdout
    assert (project / "run" / "spam.sqlite3").is_file()  # [spam] database, in the project

    suspicious = tmp_path / "suspicious.eml"
    suspicious.write_bytes(
        _mail("offers@deals.example", "OFFER", "cheap pills, claim your prize, order now")
    )
    scored = run("spam", "score", str(suspicious), "-p", str(project), "--evidence")
    assert scored.exit_code == 0, scored.output
    value, kind = scored.stdout.splitlines()[0].split()
    assert kind == "spam"
    assert float(value) >= 0.9
    assert "  cheap" in scored.stdout  # a clue, with --evidence

    good = _mail("colleague@work.example", "notes", "the planning meeting and the budget review")
    from_stdin = run("spam", "score", "-", "-p", str(project), input=good)
    assert from_stdin.exit_code == 0, from_stdin.output
    value, kind = from_stdin.stdout.split()
    assert kind == "ham"
    assert float(value) <= 0.2
    assert from_stdin.stderr == ""  # trained on both kinds: no warning


def test_an_untrained_filter_is_unsure_and_says_so(project: Path, tmp_path: Path) -> None:
    message = tmp_path / "m.eml"
    message.write_bytes(_mail("a@example.org", "hi", "hello"))
    result = run("spam", "score", str(message), "-p", str(project))
    assert result.exit_code == 0
    assert result.stdout == "0.500 unsure\n"
    assert "trained on 0 ham and 0 spam" in result.stderr


def test_without_the_tables_it_names_db_upgrade(tmp_path: Path) -> None:
    (tmp_path / "mailsim.toml").write_text('[app]\nhandlers = ["app.handlers.x"]\n')
    (tmp_path / "run").mkdir()
    message = tmp_path / "m.eml"
    message.write_bytes(_mail("a@example.org", "hi", "hello"))
    result = run("spam", "score", str(message), "-p", str(tmp_path))
    assert result.exit_code == 1
    assert "mailsim db upgrade" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_wrong_paths_are_named(project: Path, tmp_path: Path) -> None:
    missing = tmp_path / "missing.eml"
    result = run("spam", "score", str(missing), "-p", str(project))
    assert result.exit_code == 1
    assert str(missing) in result.stderr
    folder = tmp_path / "no-corpus"
    result = run("spam", "train", "--ham", str(folder), "-p", str(project))
    assert result.exit_code == 1
    assert str(folder) in result.stderr
    not_mbox = tmp_path / "notes.txt"
    not_mbox.write_text("hello\n")
    result = run("spam", "train", "--spam", str(not_mbox), "-p", str(project))
    assert result.exit_code == 1
    assert "not an mbox file" in result.stderr
    nothing = run("spam", "train", "-p", str(project))
    assert nothing.exit_code == 1
    assert "--ham" in nothing.stderr
