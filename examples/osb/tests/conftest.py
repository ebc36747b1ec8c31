"""Fixtures of the one-shot blog's tests.

Each test's world runs the blog of this project, writing its web site into the
test's own temporary folder: ``mailsim_app`` (mailsim's fixture, overridden here)
builds the app and points ``[settings] output`` there.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from mailsim_runtime import App
from mailsim_runtime.project import load_project
from mailsim_runtime.transport import FunctionTransport

from mailsim.world import Mailbox, World
from mailsim.world.mailbox import ReceivedMail

PROJECT = Path(__file__).resolve().parent.parent
HOST = "blog.example.com"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """The folder the blog's pages go to."""
    return tmp_path / "site"


@pytest.fixture
def mailsim_app(site: Path) -> Callable[[], App]:
    def make() -> App:
        # The world puts in its own transport, clock and Message-IDs.
        app = load_project(PROJECT, transport=FunctionTransport(), in_memory=True)
        app.settings["output"] = str(site)
        return app

    return make


@pytest.fixture
def index(mail_world: World) -> ModuleType:
    """The app's ``app.index`` module, as the world's app imported it (the project's
    ``app`` package is importable once its app is built)."""
    return importlib.import_module("app.index")


@pytest.fixture
def publish(mailbox: Callable[[str], Mailbox]) -> Callable[..., ReceivedMail]:
    """``publish("alice@example.org", "Hello", "text")``: a post by a confirmed author
    (confirming first if this is their first post); returns the "Published" mail."""

    def post(person: str, subject: str, body: str = "", to: str = f"post@{HOST}") -> ReceivedMail:
        author = mailbox(person)
        author.send(to, subject=subject, body=body)
        asked = [m for m in author.unseen if m.subject.startswith("Please confirm your first")]
        if asked:
            author.reply(author.expect(subject="Please confirm your first post"))
        return author.expect(subject=f"Published: {subject}")

    return post


@pytest.fixture
def comment(mailbox: Callable[[str], Mailbox]) -> Callable[..., ReceivedMail]:
    """``comment("bob@example.org", 1, "text")``: a comment by a commenter, confirming
    it if asked to; returns the "Your comment" mail."""

    def write(person: str, post_id: int, body: str) -> ReceivedMail:
        commenter = mailbox(person)
        commenter.send(f"comment-{post_id}@{HOST}", subject="A comment", body=body)
        asked = [m for m in commenter.unseen if m.subject.startswith("Please confirm your comm")]
        if asked:
            commenter.reply(commenter.expect(subject="Please confirm your comment"))
        return commenter.expect(subject="Your comment on")

    return write
