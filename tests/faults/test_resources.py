"""Resources failing: a full disk, a read-only queue, the state database gone, the smart
host down. Each fault is answered with a temporary refusal (never a 250 for mail not
on disk) or waited out with the mail kept; each recovers when the fault clears, and
the messages are counted: every one accepted is delivered, once.
"""

from __future__ import annotations

import builtins
import errno
import os
import smtplib
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from faults_support import (
    DOMAIN,
    free_port,
    message,
    queue_empty,
    receiver,
    recording_app,
    send_one,
    tmpfs,
    wait_until,
)
from mailsim_runtime import App, current_app, db
from mailsim_runtime import queue as queue_module
from mailsim_runtime.mail import MailRequest, MailResponse
from mailsim_runtime.outbox import DurableOutbox
from mailsim_runtime.queue import MemoryQueue
from mailsim_runtime.relay import RelayRunner, RetryPolicy
from mailsim_runtime.server import SmtpSink
from mailsim_runtime.state import SqlStateStore
from mailsim_runtime.transport import SmtpTransport
from sqlalchemy.pool import NullPool

BODY = ("y" * 70 + "\r\n") * 450  # about 32 KB: a 1 MB disk holds some thirty


def _files(folder: Path) -> list[str]:
    return os.listdir(folder) if folder.exists() else []


def test_a_full_disk_refuses_with_452_keeps_what_it_took_and_recovers(tmp_path: Path) -> None:
    release = threading.Event()
    app, recorder = recording_app(before=lambda m: release.wait(30))
    with tmpfs(tmp_path / "spool", "1m") as spool:
        server = receiver(app, spool)
        accepted: list[int] = []
        refused: list[int] = []
        with server:
            for number in range(100):  # the disk is full long before
                code, text = send_one(server.port, message(f"m{number}", BODY))
                if code == 250:
                    accepted.append(number)
                    continue
                assert (code, text) == (452, "4.3.1 Insufficient system storage, try again later")
                refused.append(number)
                if len(refused) == 3:
                    break
            assert len(accepted) >= 10 and len(refused) == 3
            # Nothing half-written was left behind, and nothing refused was kept.
            incoming = spool / "incoming"
            assert _files(incoming / "tmp") == []
            assert len(_files(incoming / "new")) + len(server.queue.claimed()) == len(accepted)
            release.set()  # the handlers go on; delivered mail leaves the disk
            recorder.wait_for(len(accepted), timeout=30)
            wait_until(lambda: queue_empty(incoming), what="the queue drained")
            for number in refused:  # the client's retry, now that there is room
                assert send_one(server.port, message(f"m{number}", BODY))[0] == 250
            recorder.wait_for(len(accepted) + len(refused), timeout=30)
            wait_until(lambda: queue_empty(incoming), what="the queue drained")
    subjects = recorder.subjects()
    assert set(subjects) == {f"m{n}" for n in accepted + refused}
    assert set(subjects.values()) == {1}  # each exactly once
    print(f"\n{len(accepted)} accepted before the disk was full, {len(refused)} refused 452")


class _ReadOnlyOs:
    """The queue module's ``os``, failing every change to the folder while ``on`` is set:
    a queue folder made read-only under a running server."""

    def __init__(self) -> None:
        self.on = threading.Event()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(os, name)
        if name not in ("rename", "unlink", "open"):
            return attribute

        def guarded(*args: Any, **kwargs: Any) -> Any:
            if self.on.is_set() and not (name == "open" and _reading(args, kwargs)):
                raise OSError(errno.EROFS, "Read-only file system", str(args[0]))
            return attribute(*args, **kwargs)

        return guarded


def _reading(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    flags = args[1] if len(args) > 1 else kwargs.get("flags", 0)
    return not flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)


def test_a_read_only_queue_refuses_with_451_and_what_was_claimed_finishes_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    app, recorder = recording_app(before=lambda m: release.wait(30))
    read_only = _ReadOnlyOs()
    real_open: Callable[..., Any] = builtins.open

    def faulty_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if read_only.on.is_set() and any(c in mode for c in "wxa+"):
            raise OSError(errno.EROFS, "Read-only file system", str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(queue_module, "os", read_only)
    monkeypatch.setattr(queue_module, "open", faulty_open, raising=False)
    server = receiver(app, tmp_path, workers=2)
    incoming = tmp_path / "incoming"
    with server:
        for number in range(5):  # two claimed by held workers, three waiting
            assert send_one(server.port, message(f"before{number}"))[0] == 250
        wait_until(lambda: len(server.queue.claimed()) == 2, what="two claimed")
        read_only.on.set()
        for number in range(3):
            code, text = send_one(server.port, message(f"during{number}"))
            assert (code, text) == (451, "4.3.0 Cannot queue the message now, try again later")
        # The held handlers finish, but their messages can be neither removed nor put
        # back: they must not be delivered again, nor stay stuck once it clears.
        release.set()
        recorder.wait_for(2)
        wait_until(lambda: len(server.dispatcher._unreleased) == 2, what="two unreleased")
        read_only.on.clear()
        recorder.wait_for(5, timeout=30)
        wait_until(lambda: queue_empty(incoming), timeout=30, what="the queue drained")
        for number in range(3):  # the client's retry
            assert send_one(server.port, message(f"during{number}"))[0] == 250
        recorder.wait_for(8, timeout=30)
        wait_until(lambda: queue_empty(incoming), what="the queue drained")
    subjects = recorder.subjects()
    assert set(subjects) == {f"before{n}" for n in range(5)} | {f"during{n}" for n in range(3)}
    assert set(subjects.values()) == {1}


@pytest.mark.parametrize(
    ("error", "reply"),
    [
        (errno.ENOSPC, (452, "4.3.1 Insufficient system storage, try again later")),
        (errno.EDQUOT, (452, "4.3.1 Insufficient system storage, try again later")),
        (errno.EACCES, (451, "4.3.0 Cannot queue the message now, try again later")),
        (errno.EIO, (451, "4.3.0 Cannot queue the message now, try again later")),
    ],
    ids=["ENOSPC", "EDQUOT", "EACCES", "EIO"],
)
def test_a_failing_queue_write_is_never_answered_250(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: int, reply: tuple[int, str]
) -> None:
    """The same faults injected at the writer's seam (the file it opens in tmp/), so
    that they are tested where no tmpfs can be mounted too."""
    failing = threading.Event()
    real_open: Callable[..., Any] = builtins.open

    def faulty_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if failing.is_set() and "x" in mode:  # push_many's new file in tmp/
            raise OSError(error, os.strerror(error), str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(queue_module, "open", faulty_open, raising=False)
    app, recorder = recording_app()
    with receiver(app, tmp_path) as server:
        failing.set()
        assert send_one(server.port, message("refused")) == reply
        assert _files(tmp_path / "incoming" / "tmp") == []
        failing.clear()
        assert send_one(server.port, message("refused"))[0] == 250  # the retry
        recorder.wait_for(1)
        wait_until(lambda: queue_empty(tmp_path / "incoming"))
    assert recorder.subjects() == {"refused": 1}


def test_journal_writes_failing_mid_message_deliver_to_nobody_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A three-recipient message whose delivery journal cannot be written (the disk
    filled between recipients): tried again later, each recipient has it once."""
    app, recorder = recording_app()
    server = receiver(app, tmp_path)
    server.dispatcher.retry_first = server.dispatcher.retry_longest = 0.05
    record = server.queue.record_delivered
    failures = iter([True, True, False])

    def full_disk(entries: Any, **kwargs: Any) -> list[Path]:
        if next(failures, False):
            raise OSError(errno.ENOSPC, "No space left on device")
        return record(entries, **kwargs)

    monkeypatch.setattr(server.queue, "record_delivered", full_disk)
    recipients = [f"r{n}@{DOMAIN}" for n in range(3)]
    with server:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
            client.sendmail("s@client.example", recipients, message("three"))
        recorder.wait_for(3)
        wait_until(lambda: queue_empty(tmp_path / "incoming"))
    assert sorted(item.recipient for item in recorder.items) == recipients


# The state database -----------------------------------------------------------------

STATEFUL = "faults_stateful"


def test_the_state_database_gone_keeps_the_mail_queued_until_it_is_back(tmp_path: Path) -> None:
    """SQLite in a folder that disappears: every connection made meanwhile fails.

    The receiver never reads the state database, so its 250 stands (the message is
    on disk); the workers cannot move the conversation on, so the message stays
    queued, is tried again with a growing pause, and is delivered once the
    database is back — each exactly once, in the state the handler chose.
    """
    folder = tmp_path / "db"
    folder.mkdir()
    url = f"sqlite:///{folder / 'states.sqlite3'}"
    db.upgrade(url)
    engine = db.create_engine(url, poolclass=NullPool)  # a new connection every time
    app = App([STATEFUL], hostname=DOMAIN, states=SqlStateStore(engine), settings={"seen": []})
    app.router.undeliverable = MemoryQueue()
    server = receiver(app, tmp_path)
    server.dispatcher.retry_first, server.dispatcher.retry_longest = 0.05, 0.2
    away = tmp_path / "db-away"
    try:
        with server:
            folder.rename(away)  # the database is gone
            for number in range(4):
                code, _ = send_one(server.port, message(f"m{number}", to=f"u{number}@{DOMAIN}"))
                assert code == 250
            incoming = tmp_path / "incoming"
            wait_until(lambda: server.dispatcher._retry_at, what="a retry scheduled")
            assert not app.settings["seen"]
            assert not queue_empty(incoming)  # kept
            assert len(app.router.undeliverable) == 0  # type: ignore[arg-type]
            away.rename(folder)  # and back
            wait_until(lambda: len(app.settings["seen"]) == 4, timeout=30, what="4 delivered")
            wait_until(lambda: queue_empty(incoming), what="the queue drained")
    finally:
        if away.exists():
            away.rename(folder)
    assert sorted(app.settings["seen"]) == [f"m{n}" for n in range(4)]
    with engine.connect() as connection:
        states = connection.execute(sa.select(db.states.c.state)).scalars().all()
    assert states == ["HEARD"]  # one conversation (one sender): START, then HEARD
    engine.dispose()


# The smart host -------------------------------------------------------------------


def test_a_smart_host_down_is_retried_and_gets_every_reply_once_back(
    tmp_path: Path,
) -> None:
    port = free_port()  # nothing listens there yet: the smart host is down
    replies = SmtpSink(port=port)
    retry = RetryPolicy(first=timedelta(seconds=0.1), factor=1.0, longest=timedelta(seconds=0.1))
    app, recorder = recording_app(before=_answer)
    app.relay.transport = SmtpTransport("127.0.0.1", port, timeout=5)
    app.relay.outbox = outbox = DurableOutbox(tmp_path / "outbox")
    app.relay.retry = retry
    runner = RelayRunner(app.relay, interval=timedelta(seconds=0.05))
    with receiver(app, tmp_path) as server, runner:
        for number in range(5):
            assert send_one(server.port, message(f"m{number}"))[0] == 250
        recorder.wait_for(5)
        wait_until(
            lambda: len(outbox.items()) == 5 and all(i.attempts >= 2 for i in outbox.items()),
            what="five replies queued, each tried at least twice",
        )
        assert all(i.results[i.pending[0]].code == 451 for i in outbox.items())
        with replies:  # the smart host is back
            replies.wait_for(lambda got: len(got) == 5, timeout=30)
            wait_until(lambda: not outbox.items(), what="the outbox emptied")
    subjects = sorted(MailRequest(None, "", "", m.data)["Subject"] or "" for m in replies.messages)
    assert subjects == [f"Re: m{n}" for n in range(5)]  # each once
    assert outbox.failed == []


def _answer(message: MailRequest) -> None:
    current_app().relay.reply(
        message, MailResponse(from_=f"robot@{DOMAIN}", subject=f"Re: {message['Subject']}")
    )
