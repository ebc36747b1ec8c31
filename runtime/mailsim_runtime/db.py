"""The SQL schema mailsim keeps its state in, and engines to reach it.

One :class:`~sqlalchemy.MetaData` holds every table (conversation states, the spam
classifier's token counts, pending confirmations); the Alembic migrations in
``mailsim_runtime/migrations`` create and evolve them. SQLite is the default;
anything here must also run unchanged on PostgreSQL.

Engines come from :func:`create_engine`, which tunes each dialect (on SQLite:
write-ahead logging, a busy timeout, foreign keys, and SQLAlchemy rather than the
``sqlite3`` module deciding when transactions begin). Code that reads and then
writes opens :func:`write_transaction`, so SQLite writers queue for the database
lock up front instead of failing half-way with "database is locked".

The schema is never created behind anyone's back: :func:`upgrade` (what
``mailsim db upgrade`` runs) applies the packaged migrations, and stores call
:func:`require_tables` to fail early, naming that command, when it has not run.
Alembic records the revision in :data:`VERSION_TABLE`, next to the tables (in
PostgreSQL's current schema, the first on the ``search_path``).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    event,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import ConnectionPoolEntry

__all__ = [
    "DEFAULT_BUSY_TIMEOUT",
    "MIGRATIONS",
    "VERSION_TABLE",
    "SchemaMissingError",
    "alembic_config",
    "confirmations",
    "create_engine",
    "current_revision",
    "display_url",
    "downgrade",
    "head_revision",
    "is_configured",
    "metadata",
    "read_connection",
    "require_tables",
    "spam_totals",
    "spam_words",
    "states",
    "upgrade",
    "write_transaction",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

states = Table(
    "mailsim_states",
    metadata,
    Column("module", String(255), primary_key=True),
    Column("key", String(512), primary_key=True),
    Column("sender", String(512), nullable=False, default=""),
    Column("state", String(255), nullable=False),
    Column("last_modified", DateTime(timezone=True), nullable=False),
)

spam_words = Table(
    "mailsim_spam_words",
    metadata,
    Column("word", String(1024), primary_key=True),
    Column("spam_count", Integer, nullable=False, default=0),
    Column("ham_count", Integer, nullable=False, default=0),
)

spam_totals = Table(
    "mailsim_spam_totals",
    metadata,
    Column("id", Integer, primary_key=True),  # a single row, id 1
    Column("nspam", Integer, nullable=False, default=0),
    Column("nham", Integer, nullable=False, default=0),
)

confirmations = Table(
    "mailsim_confirmations",
    metadata,
    Column("secret", String(128), primary_key=True),
    Column("target", String(255), nullable=False, index=True),
    Column("sender", String(512), nullable=False, index=True),
    Column("message", LargeBinary, nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("expires", DateTime(timezone=True), nullable=False, index=True),
)


# Engines ----------------------------------------------------------------------

#: Seconds a SQLite connection waits for another's write lock before giving up.
#: Transitions hold the lock while a handler runs, so this is generous.
DEFAULT_BUSY_TIMEOUT = 30.0

# The execution option the SQLite "begin" hook reads to choose the BEGIN mode.
_SQLITE_BEGIN_OPTION = "mailsim_sqlite_begin"
_SQLITE_BEGIN_MODES = frozenset({"DEFERRED", "IMMEDIATE", "EXCLUSIVE"})


def create_engine(
    url: str | sa.URL, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT, **kw: Any
) -> Engine:
    """An engine for *url* set up the way mailsim's stores need it.

    On SQLite every new connection switches to write-ahead logging (readers and
    the one writer stop blocking each other), waits up to *busy_timeout* seconds
    for a lock instead of failing at once, and enforces foreign keys. The
    ``sqlite3`` module's own transaction handling, which starts no transaction
    for a SELECT, is switched off: SQLAlchemy emits ``BEGIN`` itself, so reads are
    repeatable and :func:`write_transaction` can ask for ``BEGIN IMMEDIATE``.
    In-memory SQLite gives every pooled connection a database of its own; use a
    file wherever more than one connection is in play.

    On PostgreSQL pooled connections are checked before use (``pool_pre_ping``),
    so a restarted server costs no failed delivery.

    Other keyword arguments go to :func:`sqlalchemy.create_engine` and win over
    these defaults.
    """
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "postgresql":
        kw.setdefault("pool_pre_ping", True)
    engine = sa.create_engine(parsed, **kw)
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine, busy_timeout)
    return engine


def _configure_sqlite(engine: Engine, busy_timeout: float) -> None:
    milliseconds = max(0, round(busy_timeout * 1000))

    def on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # None hands transaction control to the "begin" hook below.
        dbapi_connection.isolation_level = None
        # synchronous stays at its FULL default: a committed transition must
        # survive a power cut.
        dbapi_connection.execute(f"PRAGMA busy_timeout = {milliseconds}")
        dbapi_connection.execute("PRAGMA foreign_keys = ON")
        _use_write_ahead_log(dbapi_connection, busy_timeout)

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "begin", _sqlite_begin)


def _use_write_ahead_log(dbapi_connection: sqlite3.Connection, timeout: float) -> None:
    """Switch the database file to WAL unless it is there already (the mode persists).

    The switch needs the file to itself, and SQLite reports "database is locked"
    at once, without the busy handler, when connections opening a new file race
    to make it; so the switch is retried for as long as a lock would be waited for.
    """
    deadline = time.monotonic() + timeout
    pause = 0.005
    while True:
        try:
            (mode,) = dbapi_connection.execute("PRAGMA journal_mode").fetchone()
            if mode in ("wal", "memory"):  # an in-memory database has no WAL
                return
            dbapi_connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


def _sqlite_begin(connection: Connection) -> None:
    mode = connection.get_execution_options().get(_SQLITE_BEGIN_OPTION, "DEFERRED")
    if mode not in _SQLITE_BEGIN_MODES:
        raise ValueError(f"unknown SQLite BEGIN mode {mode!r}")
    connection.exec_driver_sql(f"BEGIN {mode}")


def is_configured(engine: Engine) -> bool:
    """Whether *engine* came from :func:`create_engine` (it matters on SQLite only)."""
    return engine.dialect.name != "sqlite" or event.contains(engine, "begin", _sqlite_begin)


# The transaction each engine has open in this context (a handler's thread): work
# done inside it — a handler writing its own tables or a confirmation while its
# conversation's transition holds the database — joins it instead of waiting for it.
_ambient: ContextVar[tuple[tuple[Engine, Connection], ...]] = ContextVar(
    "mailsim_ambient_transaction", default=()
)


def _joined(engine: Engine) -> Connection | None:
    for open_engine, connection in _ambient.get():
        if open_engine is engine:
            return connection
    return None


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that is going to write; commits on normal exit.

    On SQLite the transaction starts with ``BEGIN IMMEDIATE``: it takes the
    database's write lock before the first read, waiting up to the busy timeout
    for it, so two writers can never both read a value and then collide (SQLite
    would fail the second with "database is locked" without waiting). Elsewhere
    it is an ordinary transaction; row locks are the caller's to take.

    Inside another write transaction on the same engine (a handler running within
    its conversation's transition), this joins it: the work commits or rolls back
    with the state change, and never waits for a lock its own context holds.
    """
    joined = _joined(engine)
    if joined is not None:
        yield joined
        return
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            connection.execution_options(**{_SQLITE_BEGIN_OPTION: "IMMEDIATE"})
        with connection.begin():
            token = _ambient.set((*_ambient.get(), (engine, connection)))
            try:
                yield connection
            finally:
                _ambient.reset(token)


@contextmanager
def read_connection(engine: Engine) -> Iterator[Connection]:
    """A connection to read with: the context's open transaction on *engine*, if any,
    so a handler reads what its own transaction has written."""
    joined = _joined(engine)
    if joined is not None:
        yield joined
        return
    with engine.connect() as connection:
        yield connection


def display_url(engine: Engine) -> str:
    """The engine's URL with any password masked, for messages."""
    return engine.url.render_as_string(hide_password=True)


class SchemaMissingError(RuntimeError):
    """mailsim's tables are not in the database (the migrations have not run)."""


def require_tables(engine: Engine, *tables: Table) -> None:
    """Raise :class:`SchemaMissingError`, naming the fix, unless every table exists."""
    with engine.connect() as connection:
        inspector = sa.inspect(connection)
        missing = [t.name for t in tables if not inspector.has_table(t.name, schema=t.schema)]
    if missing:
        raise SchemaMissingError(
            f"{display_url(engine)} has no table {', '.join(missing)}: "
            "create mailsim's tables with `mailsim db upgrade` "
            "(or mailsim_runtime.db.upgrade(url))"
        )


# Migrations -------------------------------------------------------------------

#: The Alembic script directory shipped inside the package.
MIGRATIONS = Path(__file__).with_name("migrations")

#: Where Alembic records the revision. Not the default "alembic_version", so an
#: application that keeps its own Alembic history in the same schema is unharmed.
VERSION_TABLE = "mailsim_alembic_version"

# Two processes that upgrade the same PostgreSQL database at once (workers
# starting together) take turns on this transaction-scoped advisory lock instead
# of both creating the tables. The number is "mailsim" in ASCII.
_PG_MIGRATION_LOCK = 0x6D61696C73696D


def alembic_config(*, url: str | None = None, connection: Connection | None = None) -> Config:
    """An Alembic :class:`~alembic.config.Config` for mailsim's packaged migrations.

    ``env.py`` runs the migrations on *connection* when given (inside whatever
    transaction it is in), else on an engine it makes from *url*. Any
    :mod:`alembic.command` works with it, which is how the CLI offers
    ``history``, ``revision --autogenerate`` and the like.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        # The option is read through ConfigParser interpolation, which would
        # eat the %-escapes of a URL such as "?options=-csearch_path%3Dx".
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@contextmanager
def _engine_for(engine_or_url: Engine | str) -> Iterator[Engine]:
    if isinstance(engine_or_url, Engine):
        yield engine_or_url
        return
    engine = create_engine(engine_or_url)
    try:
        yield engine
    finally:
        engine.dispose()


def _migrate(
    engine_or_url: Engine | str, run: Callable[[Config, str], None], revision: str
) -> None:
    with _engine_for(engine_or_url) as engine, write_transaction(engine) as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
            )
        run(alembic_config(connection=connection), revision)


def upgrade(engine_or_url: Engine | str, revision: str = "head") -> None:
    """Migrate the database up to *revision*, in one transaction; a no-op when there.

    On PostgreSQL the tables and :data:`VERSION_TABLE` go into the connection's
    current schema, so a URL whose ``options`` set the ``search_path`` keeps
    everything in that schema.
    """
    _migrate(engine_or_url, command.upgrade, revision)


def downgrade(engine_or_url: Engine | str, revision: str = "base") -> None:
    """Migrate the database down to *revision*; ``"base"`` drops every mailsim table."""
    _migrate(engine_or_url, command.downgrade, revision)


def current_revision(engine_or_url: Engine | str) -> str | None:
    """The revision the database is at; ``None`` before the first :func:`upgrade`."""
    with _engine_for(engine_or_url) as engine, engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def head_revision() -> str:
    """The newest revision the packaged migrations know."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # only a broken install has no migrations
        raise RuntimeError(f"no Alembic revisions in {MIGRATIONS}")
    return head
