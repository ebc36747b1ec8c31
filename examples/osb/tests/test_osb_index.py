"""The index: handlers queue jobs, a background worker (or a test) builds index.html."""

from __future__ import annotations

import dataclasses
import email
import importlib
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from mailsim_runtime import App, MailRequest
from mailsim_runtime.config import DatabaseSection, load_config
from mailsim_runtime.inbound import envelope_from_headers
from mailsim_runtime.project import build_app
from mailsim_runtime.queue import MaildirQueue
from mailsim_runtime.server import QueueReceiver
from mailsim_runtime.transport import FunctionTransport

from mailsim.world import Mailbox, World
from mailsim.world.mailbox import ReceivedMail

HOST = "blog.example.com"
PROJECT = Path(__file__).resolve().parent.parent

Mailboxes = Callable[[str], Mailbox]
Publish = Callable[..., ReceivedMail]
Comment = Callable[..., ReceivedMail]


def titles_in(index_html: str) -> list[str]:
    return re.findall(r'<h2><a href="[^"]+">([^<]*)</a></h2>', index_html)


def test_jobs_wait_in_the_queue_until_the_index_is_built(
    mail_world: World,
    mailbox: Mailboxes,
    publish: Publish,
    comment: Comment,
    site: Path,
    index: ModuleType,
) -> None:
    queue = mail_world.app.queues["index"]
    publish("alice@example.org", "Older")
    mail_world.clock.advance(days=1)
    publish("bob@example.org", "Newer <3")
    comment("carol@example.org", 1, "Nice.")
    mailbox("alice@example.org").expect(subject="New comment on Older")
    assert len(queue) == 3  # two posts and a comment, and no index yet
    assert not (site / "index.html").exists()

    assert index.run_jobs(mail_world.app) == 3
    assert len(queue) == 0
    page = (site / "index.html").read_text()
    assert titles_in(page) == ["Newer &lt;3", "Older"]  # newest first, escaped
    assert '<a href="newer-3.html">' in page
    assert "By bob, 6 January 2026 · 0 comments" in page
    assert "By alice, 5 January 2026 · 1 comment</p>" in page

    (site / "index.html").unlink()
    assert index.run_jobs(mail_world.app) == 0  # nothing waiting: nothing built
    assert not (site / "index.html").exists()


def test_the_index_of_an_empty_blog(mail_world: World, site: Path, index: ModuleType) -> None:
    with mail_world.app.bound():
        path = index.build_index()
    assert path == site / "index.html"
    assert "Nothing has been published yet." in path.read_text()


def test_a_job_is_a_mail_to_the_index_address(mail_world: World, publish: Publish) -> None:
    publish("alice@example.org", "Hello")
    queue = mail_world.app.queues["index"]
    [key] = queue.keys()
    data = queue.get(key)
    job = email.message_from_bytes(data)
    assert job["Subject"] == "index: published 1"
    assert job["Delivered-To"] == f"index@{HOST}"
    # What a QueueReceiver reads to route it:
    stored = envelope_from_headers(data, mail_world.app.accepts)
    assert stored is not None
    assert (stored.sender, stored.recipients) == (f"noreply@{HOST}", (f"index@{HOST}",))


def test_the_server_takes_no_mail_for_the_index(mail_world: World, mailbox: Mailboxes) -> None:
    assert not mail_world.app.accepts(f"index@{HOST}")
    mallory = mailbox("mallory@example.net")
    mallory.send(f"index@{HOST}", subject="rebuild it, again and again")
    mallory.expect(sender=re.compile("^MAILER-DAEMON@"), body=f"index@{HOST}")
    assert len(mail_world.app.queues["index"]) == 0


def test_a_queue_receiver_builds_the_index_from_a_maildir(
    mail_world: World, publish: Publish, site: Path, tmp_path: Path
) -> None:
    # As in production, the handlers queue their jobs in a Maildir.
    maildir = MaildirQueue(tmp_path / "index", durable=False)
    mail_world.app.queues["index"] = maildir
    for title in ("One", "Two", "Three"):
        publish("alice@example.org", title)
    assert len(maildir) == 3
    # The worker's app: the index's handler, with the blog's database and templates.
    blog = mail_world.app
    worker = App(
        ["app.handlers.index"],
        hostname=blog.hostname,
        templates=blog.views.folders,
        settings=blog.settings,
        database=blog.database,
    )
    with QueueReceiver(worker, maildir, workers=2, poll=0.05) as receiver:
        assert receiver.wait_idle(10)
    assert len(maildir) == 0
    assert sorted(titles_in((site / "index.html").read_text())) == ["One", "Three", "Two"]


def test_in_production_the_worker_builds_the_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server's app and the worker's, as ``mailsim serve`` and ``python -m app.worker``
    build them: conversations and posts in one SQLite file, jobs in a Maildir."""
    monkeypatch.delenv("OSB_OUTPUT", raising=False)
    config = load_config(PROJECT)
    config = dataclasses.replace(
        config,
        app=dataclasses.replace(config.app, undeliverable=tmp_path / "undeliverable"),
        database=DatabaseSection(url=f"sqlite:///{tmp_path / 'osb.sqlite3'}"),
        relay=dataclasses.replace(config.relay, queue=tmp_path / "outbox"),
        queues={"index": tmp_path / "index"},
        settings={**config.settings, "output": str(tmp_path / "site")},
    )
    sent = FunctionTransport()
    server = build_app(config, transport=sent)
    worker_module: ModuleType = importlib.import_module("app.worker")
    worker = worker_module.worker_app(config, transport=FunctionTransport())
    try:

        def deliver(recipient: str, subject: str) -> None:
            head = f"From: alice@example.org\r\nTo: {recipient}\r\nSubject: {subject}\r\n\r\n"
            server.deliver(
                MailRequest("127.0.0.1", "alice@example.org", recipient, head.encode() + b"Hi.")
            )

        deliver(f"post@{HOST}", "First")
        [pending] = server.confirmations.storage.all()
        deliver(f"post-confirm-{pending.secret}@{HOST}", "Re: confirm")
        for title in ("Second", "Third"):
            deliver(f"post@{HOST}", title)
        assert server.states.get("app.handlers.posts", "alice@example.org") == "POSTING"
        assert [
            m.split(b"Subject: ")[1].split(b"\r\n")[0]
            for m in sent.messages_to("alice@example.org")
        ] == [
            b"Please confirm your first post: First",
            b"Published: First",
            b"Published: Second",
            b"Published: Third",
        ]
        jobs = worker.queues["index"]
        assert isinstance(jobs, MaildirQueue)
        assert len(jobs) == 3

        with QueueReceiver(worker, jobs, workers=3, poll=0.05) as receiver:
            assert receiver.wait_idle(10)
        assert len(jobs) == 0
        index_html = (tmp_path / "site" / "index.html").read_text()
        assert titles_in(index_html) == ["Third", "Second", "First"]
    finally:
        server.database.dispose()
        worker.database.dispose()
