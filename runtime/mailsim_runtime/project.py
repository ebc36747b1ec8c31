"""A project folder (``mailsim.toml`` and its handler modules) → a running :class:`App`.

``mailsim serve`` builds the app with durable parts (SQL state, Maildir queues);
the simulated world builds the same app with in-memory parts and its own
transport, clock and Message-IDs. Everything else is the same.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mailsim_runtime.app import App
from mailsim_runtime.clock import Clock, SystemClock
from mailsim_runtime.config import Config, load_config
from mailsim_runtime.confirm import (
    ConfirmationEngine,
    MemoryConfirmationStorage,
    SqlConfirmationStorage,
)
from mailsim_runtime.queue import MaildirQueue, MemoryQueue
from mailsim_runtime.relay import RetryPolicy
from mailsim_runtime.state import MemoryStateStore, SqlStateStore, StateStore
from mailsim_runtime.transport import Transport

__all__ = ["build_app", "find_project", "load_project"]


def find_project(start: str | Path) -> Path | None:
    """The nearest folder at or above *start* holding a ``mailsim.toml``."""
    folder = Path(start).resolve()
    for candidate in (folder, *folder.parents):
        if (candidate / "mailsim.toml").is_file():
            return candidate
    return None


def _importable(root: Path) -> None:
    # Handler modules are named relative to the project folder ("app.handlers.x"),
    # as in Lamson; the folder has to be on the import path to load them.
    entry = str(root)
    if entry not in sys.path:
        sys.path.insert(0, entry)


def build_app(
    config: Config,
    *,
    transport: Transport,
    in_memory: bool = False,
    clock: Clock | None = None,
    new_message_id: Callable[[], str] | None = None,
) -> App:
    """Build the app *config* describes, sending through *transport*.

    ``in_memory=True`` keeps state, queues and confirmations in memory (the
    simulated world); otherwise they live in the configured database and folders.
    """
    _importable(config.root)
    clock = clock or SystemClock()
    states: StateStore
    queues: dict[str, Any]
    if in_memory:
        states = MemoryStateStore(clock)
        undeliverable: Any = MemoryQueue()
        queues = {name: MemoryQueue() for name in config.queues}
        confirm_storage: Any = MemoryConfirmationStorage()
    else:
        states = SqlStateStore.from_url(config.database.url, clock=clock)
        undeliverable = MaildirQueue(config.app.undeliverable or config.root / "run" / "undeliverable")
        queues = {name: MaildirQueue(folder) for name, folder in config.queues.items()}
        confirm_storage = SqlConfirmationStorage(states.engine)
    queues.setdefault("undeliverable", undeliverable)
    spam = None
    if config.spam.enabled:
        from mailsim_runtime.spam import SpamFilter

        spam = SpamFilter(
            config.spam.database or config.database.url,
            spam_cutoff=config.spam.spam_cutoff,
            ham_cutoff=config.spam.ham_cutoff,
        )
    relay = config.relay
    return App(
        config.app.handlers,
        hostname=config.app.hostname,
        domains=config.domains,
        states=states,
        transport=transport,
        templates=config.app.templates,
        router_defaults=config.app.router_defaults,
        settings=config.settings,
        clock=clock,
        undeliverable=undeliverable,
        retry=RetryPolicy(
            first=relay.retry_first,
            factor=relay.retry_factor,
            longest=relay.retry_longest,
            lifetime=relay.lifetime,
        ),
        new_message_id=new_message_id,
        queues=queues,
        spam=spam,
        confirmations=ConfirmationEngine(
            confirm_storage, clock=clock, lifetime=config.app.confirmation_lifetime
        ),
    )


def load_project(path: str | Path, *, transport: Transport, **options: Any) -> App:
    """:func:`build_app` for the ``mailsim.toml`` in (or at) *path*."""
    return build_app(load_config(path), transport=transport, **options)
