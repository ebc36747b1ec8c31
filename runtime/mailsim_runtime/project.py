"""A project folder (``mailsim.toml`` and its handler modules) → a running :class:`App`.

``mailsim serve`` builds the app with durable parts (SQL state, Maildir queues);
the simulated world builds the same app with in-memory parts and its own
transport, clock and Message-IDs. Everything else is the same. A run of many
worlds builds each from an :class:`AppTemplate`, which sets the project up once.
"""

from __future__ import annotations

import copy
import importlib
import sqlite3
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import sqlalchemy
from jinja2 import BytecodeCache
from jinja2.bccache import Bucket
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import StaticPool
from sqlalchemy.util import LRUCache

from mailsim_runtime import db
from mailsim_runtime.app import App
from mailsim_runtime.autoreply import ReplyLimit
from mailsim_runtime.clock import Clock, SystemClock
from mailsim_runtime.config import CONFIG_FILE, Config, ConfigError, load_config
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
    "AppTemplate",
    "AppTemplates",
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
    memory (the simulated world), the app's database in an in-memory SQLite one;
    otherwise they live in the configured database and folders, outgoing mail in a
    durable outbox at ``[relay] queue``.
    """
    make_importable(config)
    if in_memory:
        # One connection shared by every thread: an in-memory SQLite database
        # exists only on the connection that made it.
        database = sqlalchemy.create_engine(
            "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
        )
        _create_memory_tables(config, database)
    else:
        # One engine for the conversations, the confirmations and the app's own
        # tables, so that a handler's writes join its conversation's transaction.
        database = create_engine(config.database.url)
        upgrade(database)
    return _assemble(
        config,
        database,
        transport=transport,
        in_memory=in_memory,
        clock=clock or SystemClock(),
        new_message_id=new_message_id,
    )


def _create_memory_tables(config: Config, database: sqlalchemy.Engine) -> None:
    """mailsim's own tables an in-memory app needs in its database (its other state
    is kept in memory): the spam filter's, which starts untrained."""
    if config.spam.enabled:
        db.metadata.create_all(database, tables=[db.spam_words, db.spam_totals])


def _assemble(
    config: Config,
    database: sqlalchemy.Engine,
    *,
    transport: Transport,
    in_memory: bool,
    clock: Clock,
    new_message_id: Callable[[], str] | None,
    compiled_templates: BytecodeCache | None = None,
) -> App:
    """The app's parts around *database*, put together; then its ``[app] setup`` run."""
    states: StateStore
    queues: dict[str, Any]
    if in_memory:
        states = MemoryStateStore(clock)
        undeliverable: Any = MemoryQueue()
        queues = {name: MemoryQueue() for name in config.queues}
        confirm_storage: Any = MemoryConfirmationStorage()
        outbox: Outbox = MemoryOutbox()
    else:
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
        from mailsim_runtime.spam import SpamFilter

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
        compiled_templates=compiled_templates,
        router_defaults=config.app.router_defaults,
        # A copy all the way down: apps built from one Config (the world's, one per
        # scenario) must not see each other's changes to a nested setting.
        settings=copy.deepcopy(config.settings),
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


class AppTemplate:
    """A project's app for the simulated world: set up once, copied for every world.

    Building an app from its ``mailsim.toml`` costs far more than most scenarios'
    mail: reading the file, and the ``[app] setup`` functions filling an empty
    database (making the app's tables, training its spam filter). A template does
    that once per start time: the first app it builds is set up in full, and the
    template keeps a copy of its database, taken before the app has done anything,
    that no app ever touches. Every later app gets a copy of that copy (SQLite's
    backup API copies its pages: a fraction of a millisecond); every other part of
    it — state store, queues, confirmations, outbox, settings — is new, as
    :func:`build_app` makes them with ``in_memory=True``. Nothing one app does is
    seen by another.

    What the copies do share holds no data of theirs, only work done once: the SQL
    dialect (set up by the first connection) and the statements compiled for it,
    and the Jinja templates compiled to Python code.

    The setup functions run again on each copy, as they do when a server restarts
    on its database: what they do besides filling the database (settling settings)
    is done for each app, and on a database they filled already they have little
    to do. The database is set up at each start time (the clock's time when an app
    is built), so a setup that stamps rows with the clock gets the same stamps as
    without a template.

    The template belongs to whoever runs the worlds (a ``mailsim run``, a pytest
    session); it reads ``mailsim.toml`` again, and starts afresh, when the file changes.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._config: Config | None = None
        self._signature: tuple[int, int] | None = None
        self._pristine: dict[datetime, sqlite3.Connection] = {}
        self._dialect: Dialect | None = None
        # SQLAlchemy keys a compiled statement by its dialect too: only engines that
        # share the dialect can share these. 500 is SQLAlchemy's own default size.
        self._statements: LRUCache[Any, Any] = LRUCache(500)
        self._compiled_templates = _CompiledTemplates()

    def __repr__(self) -> str:
        return f"<AppTemplate {self.path} {len(self._pristine)} databases>"

    @property
    def config(self) -> Config:
        """The project's configuration, read again when ``mailsim.toml`` has changed."""
        config_file = self.path / CONFIG_FILE if self.path.is_dir() else self.path
        try:
            found = config_file.stat()
            signature: tuple[int, int] | None = (found.st_mtime_ns, found.st_size)
        except OSError:
            signature = None  # load_config names the problem
        if self._config is None or signature is None or signature != self._signature:
            self.close()
            self._config = load_config(self.path)
            self._signature = signature
        return self._config

    def build(
        self,
        *,
        transport: Transport,
        clock: Clock,
        new_message_id: Callable[[], str] | None = None,
    ) -> App:
        """A new app, its database a copy of the template's for *clock*'s time.

        The first app for a time is set up from scratch; its database, just set up,
        becomes the template's.
        """
        config = self.config
        make_importable(config)
        start = clock.now()
        pristine = self._pristine.get(start)
        connection = sqlite3.connect(":memory:", check_same_thread=False)
        if pristine is not None:
            pristine.backup(connection)
        database = self._engine(connection)
        if pristine is None:
            _create_memory_tables(config, database)
        app = _assemble(
            config,
            database,
            transport=transport,
            in_memory=True,
            clock=clock,
            new_message_id=new_message_id,
            compiled_templates=self._compiled_templates,
        )
        if pristine is None:
            # Copied before the app has done anything, and never touched again.
            pristine = sqlite3.connect(":memory:", check_same_thread=False)
            connection.backup(pristine)
            self._pristine[start] = pristine
        return app

    def _engine(self, connection: sqlite3.Connection) -> Engine:
        """An engine over *connection* that shares the template's dialect and statements."""
        if self._dialect is None:
            engine = sqlalchemy.create_engine(
                "sqlite://",
                poolclass=StaticPool,
                creator=lambda: connection,
                query_cache_size=0,
                execution_options={"compiled_cache": self._statements},
            )
            with engine.connect():  # the first connection sets the dialect up
                self._dialect = engine.dialect
            return engine
        dialect = self._dialect
        set_up = dialect.on_connect()  # SQLite's own functions, as create_engine adds them

        def connect() -> DBAPIConnection:
            if set_up is not None:
                set_up(connection)
            return cast("DBAPIConnection", connection)  # sqlite3 is a DB-API driver

        return Engine(
            StaticPool(connect, dialect=dialect),
            dialect,
            sqlalchemy.make_url("sqlite://"),
            query_cache_size=0,
            execution_options={"compiled_cache": self._statements},
        )

    def close(self) -> None:
        """Let go of the template's databases (the next build sets one up again)."""
        for pristine in self._pristine.values():
            pristine.close()
        self._pristine.clear()


class AppTemplates:
    """An :class:`AppTemplate` for each project folder, made on first use.

    Whoever runs many worlds owns one (a ``mailsim run``, a pytest session), and
    its templates go with it.
    """

    def __init__(self) -> None:
        self._templates: dict[Path, AppTemplate] = {}

    def __repr__(self) -> str:
        return f"<AppTemplates {sorted(str(folder) for folder in self._templates)}>"

    def template(self, project: str | Path) -> AppTemplate:
        """The template of the project at or above *project* (as a world finds it)."""
        folder = find_project(project)
        if folder is None:
            raise FileNotFoundError(f"no mailsim.toml at or above {project}")
        if folder not in self._templates:
            self._templates[folder] = AppTemplate(folder)
        return self._templates[folder]

    def close(self) -> None:
        for template in self._templates.values():
            template.close()
        self._templates.clear()


class _CompiledTemplates(BytecodeCache):
    """Jinja's bytecode cache, in memory: each template compiled once for every app
    built from one template (Jinja checks the source is unchanged before using it)."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()

    def clear(self) -> None:
        self._code.clear()


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
