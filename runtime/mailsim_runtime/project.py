"""A project folder (``mailsim.toml`` and its handler modules) → a running :class:`App`.

``mailsim serve`` builds the app with durable parts (SQL state, Maildir queues);
the simulated world builds the same app with in-memory parts and its own
transport, clock and Message-IDs. Everything else is the same.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy.pool import StaticPool

from mailsim_runtime.app import App
from mailsim_runtime.autoreply import ReplyLimit
from mailsim_runtime.clock import Clock, SystemClock
from mailsim_runtime.config import Config, ConfigError, load_config
from mailsim_runtime.confirm import (
    ConfirmationEngine,
    MemoryConfirmationStorage,
    SqlConfirmationStorage,
)
from mailsim_runtime.db import create_engine, upgrade
from mailsim_runtime.mx import DnsResolver
from mailsim_runtime.outbox import DurableOutbox
from mailsim_runtime.queue import MaildirQueue, MemoryQueue
from mailsim_runtime.relay import MemoryOutbox, Outbox, RetryPolicy
from mailsim_runtime.state import MemoryStateStore, SqlStateStore, StateStore
from mailsim_runtime.transport import LmtpTransport, SmtpTransport, Transport

__all__ = [
    "build_app",
    "find_project",
    "load_project",
    "make_importable",
    "transport_from_config",
]


def find_project(start: str | Path) -> Path | None:
    """The nearest folder at or above *start* holding a ``mailsim.toml``."""
    folder = Path(start).resolve()
    for candidate in (folder, *folder.parents):
        if (candidate / "mailsim.toml").is_file():
            return candidate
    return None


def make_importable(config: Config) -> None:
    """Put the project first on the import path, its packages ahead of any other's.

    Handler modules are named relative to the project folder ("app.handlers.x"), as
    in Lamson, so two projects usually both have an ``app`` package. A package of
    that name imported earlier from another folder is dropped from ``sys.modules``
    (apps already built keep the modules they loaded), so this project's is found.
    """
    root = config.root.resolve()
    entry = str(root)
    if entry in sys.path:
        sys.path.remove(entry)
    sys.path.insert(0, entry)
    references = [*config.app.handlers, *(s.partition(":")[0] for s in config.app.setup)]
    for top in {reference.split(".")[0] for reference in references}:
        loaded = sys.modules.get(top)
        origin = getattr(loaded, "__file__", None)
        if loaded is None or (origin and Path(origin).resolve().is_relative_to(root)):
            continue
        for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
            del sys.modules[name]
    importlib.invalidate_caches()


def transport_from_config(config: Config) -> Transport:
    """The SMTP or LMTP transport ``[relay]`` describes.

    ``mode = "smarthost"`` sends everything to ``host``:``port``; ``mode = "mx"``
    delivers straight to each recipient domain's MX hosts on ``port`` (25), which
    allows neither LMTP, implicit TLS nor AUTH.
    """
    relay = config.relay
    if relay.mode == "mx":
        for key, wrong in (
            ("protocol", relay.protocol == "lmtp"),
            ("ssl", relay.ssl),
            ("username", relay.username is not None),
        ):
            if wrong:
                raise ConfigError(
                    config.path,
                    None,
                    f"[relay] {key}",
                    'direct delivery (mode = "mx") uses SMTP without implicit TLS or AUTH',
                )
        return SmtpTransport(
            port=relay.port,
            resolver=DnsResolver(lifetime=relay.timeout.total_seconds()),
            starttls=relay.starttls,
            timeout=relay.timeout,
            local_hostname=config.app.hostname,
        )
    if relay.starttls and relay.ssl:
        raise ConfigError(
            config.path, None, "[relay] ssl", "choose starttls or ssl (implicit TLS), not both"
        )
    kind = LmtpTransport if relay.protocol == "lmtp" else SmtpTransport
    return kind(
        relay.host,
        relay.port,
        starttls=relay.starttls,
        ssl=relay.ssl,
        username=relay.username,
        password=relay.password,
        timeout=relay.timeout,
        local_hostname=config.app.hostname,
    )


def build_app(
    config: Config,
    *,
    transport: Transport,
    in_memory: bool = False,
    clock: Clock | None = None,
    new_message_id: Callable[[], str] | None = None,
) -> App:
    """Build the app *config* describes, sending through *transport*.

    ``in_memory=True`` keeps state, queues, confirmations and outgoing mail in
    memory (the simulated world); otherwise they live in the configured database
    and folders, outgoing mail in a durable outbox at ``[relay] queue``.
    """
    make_importable(config)
    clock = clock or SystemClock()
    states: StateStore
    queues: dict[str, Any]
    if in_memory:
        # One connection shared by every thread: an in-memory SQLite database
        # exists only on the connection that made it.
        database = sqlalchemy.create_engine(
            "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
        )
        states = MemoryStateStore(clock)
        undeliverable: Any = MemoryQueue()
        queues = {name: MemoryQueue() for name in config.queues}
        confirm_storage: Any = MemoryConfirmationStorage()
        outbox: Outbox = MemoryOutbox()
    else:
        # One engine for the conversations, the confirmations and the app's own
        # tables, so that a handler's writes join its conversation's transaction.
        database = create_engine(config.database.url)
        upgrade(database)
        states = SqlStateStore(database, clock=clock)
        undeliverable = MaildirQueue(
            config.app.undeliverable or config.root / "run" / "undeliverable"
        )
        queues = {name: MaildirQueue(folder) for name, folder in config.queues.items()}
        confirm_storage = SqlConfirmationStorage(database)
        outbox = DurableOutbox(config.relay.queue)
    queues.setdefault("undeliverable", undeliverable)
    spam = None
    if config.spam.enabled:
        from mailsim_runtime import db
        from mailsim_runtime.spam import SpamFilter

        if in_memory:
            # The world's filter starts untrained, in its own in-memory database.
            db.metadata.create_all(database, tables=[db.spam_words, db.spam_totals])
        spam = SpamFilter(
            database if in_memory else config.spam.database or database,
            spam_cutoff=config.spam.spam_cutoff,
            ham_cutoff=config.spam.ham_cutoff,
        )
    relay = config.relay
    app = App(
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
        outbox=outbox,
        retry=RetryPolicy(
            first=relay.retry_first,
            factor=relay.retry_factor,
            longest=relay.retry_longest,
            lifetime=relay.lifetime,
        ),
        reply_limit=ReplyLimit(count=relay.auto_reply_limit, window=relay.auto_reply_window),
        new_message_id=new_message_id,
        queues=queues,
        spam=spam,
        confirmations=ConfirmationEngine(
            confirm_storage, clock=clock, lifetime=config.app.confirmation_lifetime
        ),
        database=database,
    )
    for reference in config.app.setup:
        _setup_function(config, reference)(app)
    return app


def _setup_function(config: Config, reference: str) -> Callable[[App], object]:
    module_name, _, function_name = reference.partition(":")
    if not function_name:
        raise ConfigError(
            config.path, None, "[app] setup", f"expected 'module:function', got {reference!r}"
        )
    function = getattr(importlib.import_module(module_name), function_name, None)
    if not callable(function):
        raise ConfigError(
            config.path, None, "[app] setup", f"{module_name} has no function {function_name!r}"
        )
    return function  # type: ignore[no-any-return]


def load_project(path: str | Path, *, transport: Transport, **options: Any) -> App:
    """:func:`build_app` for the ``mailsim.toml`` in (or at) *path*."""
    return build_app(load_config(path), transport=transport, **options)
