"""``mailsim queue``: list, count, get, pop, remove and clear a Maildir queue."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from mailsim_runtime.queue import MaildirQueue

from mailsim.cli import main


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def _message(number: int) -> bytes:
    return (
        f"From: sender{number}@example.org\r\nSubject: message {number}\r\n\r\nbody {number}\r\n"
    ).encode()


@pytest.fixture
def queue(tmp_path: Path) -> MaildirQueue:
    box = MaildirQueue(tmp_path / "queue", durable=False)
    for number in range(3):
        box.push(_message(number))
    return box


def test_list_shows_each_message(queue: MaildirQueue) -> None:
    result = run("queue", str(queue.path), "list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    for key, line, number in zip(queue.keys(), lines, range(3), strict=True):
        assert line.startswith(key)
        assert f"sender{number}@example.org" in line
        assert line.endswith(f"message {number}")


def test_list_of_an_empty_queue_says_so(tmp_path: Path) -> None:
    empty = MaildirQueue(tmp_path / "empty")
    result = run("queue", str(empty.path), "list")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "no messages waiting" in result.stderr


def test_count(queue: MaildirQueue) -> None:
    result = run("queue", str(queue.path), "count")
    assert result.exit_code == 0
    assert result.stdout == "3\n"


def test_get_writes_the_message_and_keeps_it(queue: MaildirQueue) -> None:
    key = queue.keys()[1]
    result = run("queue", str(queue.path), "get", key)
    assert result.exit_code == 0
    assert result.stdout_bytes == _message(1)
    assert queue.count() == 3


def test_get_names_an_unknown_key(queue: MaildirQueue) -> None:
    result = run("queue", str(queue.path), "get", "no-such-key")
    assert result.exit_code == 1
    assert "no message no-such-key" in result.stderr
    escaping = run("queue", str(queue.path), "get", "../cur/x")
    assert escaping.exit_code == 1


def test_pop_takes_the_oldest(queue: MaildirQueue) -> None:
    first = queue.keys()[0]
    result = run("queue", str(queue.path), "pop")
    assert result.exit_code == 0
    assert result.stdout_bytes == _message(0)
    assert first in result.stderr
    assert queue.keys()[0] != first
    assert queue.count() == 2


def test_pop_on_an_empty_queue_fails(tmp_path: Path) -> None:
    empty = MaildirQueue(tmp_path / "empty")
    result = run("queue", str(empty.path), "pop")
    assert result.exit_code == 1
    assert "empty" in result.stderr


def test_remove(queue: MaildirQueue) -> None:
    key = queue.keys()[2]
    result = run("queue", str(queue.path), "remove", key)
    assert result.exit_code == 0
    assert queue.get(key) is None
    assert queue.count() == 2
    again = run("queue", str(queue.path), "remove", key)
    assert again.exit_code == 1
    assert key in again.stderr


def test_clear(queue: MaildirQueue) -> None:
    result = run("queue", str(queue.path), "clear")
    assert result.exit_code == 0
    assert "removed 3 messages" in result.stdout
    assert queue.count() == 0


def test_a_wrong_path_is_named_and_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "queue"
    result = run("queue", str(missing), "count")
    assert result.exit_code == 1
    assert str(missing) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not missing.exists()


def test_a_folder_that_is_not_a_maildir_is_refused(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    result = run("queue", str(tmp_path / "plain"), "list")
    assert result.exit_code == 1
    assert "not a Maildir queue" in result.stderr


def test_names_resolve_through_the_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mailsim.toml").write_text(
        '[app]\nhandlers = ["app.handlers.x"]\nundeliverable = "run/lost"\n'
        '[queues]\nspam = "run/spam"\n'
    )
    MaildirQueue(tmp_path / "run" / "lost").push(_message(7))
    spam = MaildirQueue(tmp_path / "run" / "spam")
    spam.push(_message(8))
    spam.push(_message(9))
    monkeypatch.chdir(tmp_path)
    assert run("queue", "undeliverable", "count").stdout == "1\n"
    assert run("queue", "spam", "count").stdout == "2\n"
    assert "message 7" in run("queue", "undeliverable", "list").stdout
    unknown = run("queue", "hams", "count")
    assert unknown.exit_code == 1
    assert "spam, undeliverable" in unknown.stderr  # the names it knows
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    by_option = run("queue", "--project", str(tmp_path), "spam", "count")
    assert by_option.stdout == "2\n"


def test_help_needs_no_queue() -> None:
    result = run("queue", "nowhere", "list", "--help")
    assert result.exit_code == 0
    assert "oldest first" in result.stdout
