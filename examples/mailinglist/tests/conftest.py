"""Shared steps of the mailing list's tests: joining, and looking inside the app."""

from __future__ import annotations

import email.policy
import importlib
from collections.abc import Callable
from email.message import EmailMessage
from email.parser import BytesParser
from types import ModuleType

import pytest

from mailsim.world import Mailbox, World

MODULE = "app.handlers.mailinglist"
OWNER = "listmaster@example.com"  # [settings] owner in mailsim.toml
_PARSER = BytesParser(policy=email.policy.default)


@pytest.fixture
def model(mail_world: World) -> ModuleType:
    """The app's ``app.model``: the world put this project's ``app`` package on the path.

    Its functions work on the current app: ``with mail_world.app.bound(): ...``.
    """
    return importlib.import_module("app.model")


@pytest.fixture
def archive(mail_world: World) -> ModuleType:
    """The app's ``app.archive``, which writes the HTML pages."""
    return importlib.import_module("app.archive")


@pytest.fixture
def join(mail_world: World) -> Callable[..., None]:
    """``join(alice, bob)``: each person subscribes to python and confirms."""

    def join(*people: Mailbox, list_name: str = "python") -> None:
        for person in people:
            person.send(f"{list_name}-subscribe@lists.example.com", subject="subscribe")
            person.reply(person.expect(subject=f"Please confirm: subscribe to {list_name}"))
            person.expect(subject=f"Welcome to {list_name}")
            mail_world.expect_state(MODULE, f"{list_name}:{person.address}", "POSTING")

    return join


@pytest.fixture
def owner(mailbox: Callable[[str], Mailbox]) -> Mailbox:
    """The owner of every list, from ``[settings] owner``."""
    return mailbox(OWNER)


@pytest.fixture
def queued(mail_world: World) -> Callable[[str], list[EmailMessage]]:
    """``queued("spam")``: what the app put in one of its queues, oldest first.

    Each message says why it is there in its ``X-Mailsim-Reason`` header.
    """

    def queued(name: str) -> list[EmailMessage]:
        box = mail_world.app.queues[name]
        parsed = [_PARSER.parsebytes(box.get(key)) for key in box]
        return [message for message in parsed if isinstance(message, EmailMessage)]

    return queued
