"""Conversation state stores.

A conversation is identified by a *state key*: the handler module and the
conversation key (the lower-cased envelope sender unless the module's
``state_key_generator`` says otherwise). A store maps state keys to the name of the
conversation's current state; a conversation nobody has seen is in ``START``, and a
conversation set back to ``START`` is forgotten, so stores only hold live
conversations.

:meth:`StateStore.transition` is the one way the router changes a state: it holds
the conversation (a lock in memory, a row lock in SQL) while the handler runs, and
commits the new state atomically when the block ends.

:class:`MemoryStateStore` lives in one process; :class:`SqlStateStore` keeps the
states in SQLite or PostgreSQL, where any number of server processes can share them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from mailsim_runtime import db
from mailsim_runtime.clock import Clock, SystemClock

__all__ = [
    "FIRST_STATE",
    "Conversation",
    "MemoryStateStore",
    "SqlStateStore",
    "StateRecord",
    "StateStore",
]

FIRST_STATE = "START"


@dataclass(frozen=True)
class StateRecord:
    """One stored conversation."""

    module: str
    key: str
    sender: str
    state: str
    last_modified: datetime


@dataclass
class Conversation:
    """A conversation held for a transition; assign ``state`` to move it on."""

    module: str
    key: str
    sender: str
    state: str


class StateStore(Protocol):
    def get(self, module: str, key: str) -> str:
        """The conversation's state, ``START`` when unknown."""
        ...

    def set(self, module: str, key: str, state: str, *, sender: str = "") -> None:
        """Put the conversation in *state* (``START`` forgets it)."""
        ...

    def transition(
        self, module: str, key: str, sender: str
    ) -> AbstractContextManager[Conversation]:
        """Hold the conversation; its ``state`` as assigned in the block is committed."""
        ...

    def records(self) -> list[StateRecord]:
        """Every stored conversation (those not in ``START``)."""
        ...

    def clear(self) -> None:
        """Forget every conversation."""
        ...


class MemoryStateStore:
    """A store in a dict, for tests, the simulated world and single-process servers."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SystemClock()  # App.use swaps it
        self._records: dict[tuple[str, str], StateRecord] = {}
        self._guard = threading.Lock()

    def __repr__(self) -> str:
        return f"<MemoryStateStore {len(self._records)} conversations>"

    def get(self, module: str, key: str) -> str:
        record = self._records.get((module, key))
        return FIRST_STATE if record is None else record.state

    def set(self, module: str, key: str, state: str, *, sender: str = "") -> None:
        with self._guard:
            if state == FIRST_STATE:
                self._records.pop((module, key), None)
            else:
                self._records[(module, key)] = StateRecord(
                    module, key, sender, state, self.clock.now()
                )

    def transition(self, module: str, key: str, sender: str) -> _MemoryTransition:
        # Serialising per conversation is the router's job (its lock table);
        # here the read and the write are each atomic under the store's guard.
        return _MemoryTransition(self, Conversation(module, key, sender, FIRST_STATE))

    def records(self) -> list[StateRecord]:
        with self._guard:
            return list(self._records.values())

    def clear(self) -> None:
        with self._guard:
            self._records.clear()


class _MemoryTransition:
    """:meth:`MemoryStateStore.transition`'s context manager: the state is read on
    entering and committed on leaving without an exception. (A class: the router
    makes one per delivery, and a generator-based one costs several times more.)"""

    __slots__ = ("_conversation", "_store")

    def __init__(self, store: MemoryStateStore, conversation: Conversation) -> None:
        self._store = store
        self._conversation = conversation

    def __enter__(self) -> Conversation:
        conversation = self._conversation
        conversation.state = self._store.get(conversation.module, conversation.key)
        return conversation

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if kind is not None:
            return  # the exception propagates; the stored state stays as it was
        store, conversation = self._store, self._conversation
        module, key, state = conversation.module, conversation.key, conversation.state
        untouched = state == FIRST_STATE and (module, key) not in store._records
        if not untouched:  # also refreshes last_modified of a conversation that stays put
            store.set(module, key, state, sender=conversation.sender)


class _Statements:
    """The statements a :class:`SqlStateStore` runs on every message, built once for
    its database's dialect: building one costs SQLAlchemy more than running it."""

    __slots__ = ("delete", "lock", "placeholder", "read", "update")

    def __init__(self, dialect: str) -> None:
        table = db.states
        which = (table.c.module == sa.bindparam("module_"), table.c.key == sa.bindparam("key_"))
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        self.placeholder = (
            insert(table)
            .values(
                module=sa.bindparam("module_"),
                key=sa.bindparam("key_"),
                sender="",
                state=FIRST_STATE,
                last_modified=sa.bindparam("now"),
            )
            .on_conflict_do_nothing(index_elements=[table.c.module, table.c.key])
        )
        self.read = sa.select(table.c.state).where(*which)
        self.lock = self.read.with_for_update()
        self.delete = sa.delete(table).where(*which)
        self.update = (
            sa.update(table)
            .where(*which)
            .values(
                sender=sa.bindparam("sender_"),
                state=sa.bindparam("state_"),
                last_modified=sa.bindparam("now"),
            )
        )


def _utc(moment: datetime) -> datetime:
    """*moment* as an aware UTC datetime; naive ones (SQLite keeps no zone) are UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


_SUPPORTED_DIALECTS = ("sqlite", "postgresql")


class SqlStateStore:
    """Conversation states in the ``mailsim_states`` table, shared by every process.

    The store does not create its table: run the migrations first
    (``mailsim db upgrade``, :func:`mailsim_runtime.db.upgrade`) or build the store
    with :meth:`from_url`, which runs them. The constructor checks the table is
    there and raises :class:`~mailsim_runtime.db.SchemaMissingError`, naming the
    command, when it is not.

    :meth:`transition` holds the conversation for its whole block. On PostgreSQL
    that is a row lock (``SELECT … FOR UPDATE`` on a row made to exist first with
    ``INSERT … ON CONFLICT DO NOTHING``), so other conversations proceed in
    parallel; it relies on the default READ COMMITTED isolation. On SQLite the
    transaction begins ``IMMEDIATE`` and holds the whole database's write lock,
    so transitions everywhere take turns, and a handler must not write to the
    same SQLite file through another connection while its transition is open:
    that write would wait for the lock its own transition holds.

    Only SQLite and PostgreSQL are supported (the upserts use their dialects'
    ``ON CONFLICT``). An engine passed in must come from
    :func:`mailsim_runtime.db.create_engine` when it is SQLite's; the store then
    leaves it open. One it made from a URL, it disposes of in :meth:`close`.
    """

    def __init__(self, engine_or_url: Engine | str, *, clock: Clock | None = None) -> None:
        owns_engine = not isinstance(engine_or_url, Engine)
        engine = (
            db.create_engine(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url
        )
        try:
            if engine.dialect.name not in _SUPPORTED_DIALECTS:
                raise ValueError(
                    f"SqlStateStore supports {' and '.join(_SUPPORTED_DIALECTS)}, "
                    f"not {engine.dialect.name} ({db.display_url(engine)})"
                )
            if not db.is_configured(engine):
                raise ValueError(
                    "SqlStateStore needs a SQLite engine made by "
                    "mailsim_runtime.db.create_engine (it takes the write lock up front); "
                    f"got one for {db.display_url(engine)}"
                )
            db.require_tables(engine, db.states)
        except BaseException:
            if owns_engine:
                engine.dispose()
            raise
        self._engine = engine
        self._owns_engine = owns_engine
        self._sql = _Statements(engine.dialect.name)
        self.clock: Clock = clock or SystemClock()  # App.use swaps it

    @classmethod
    def from_url(
        cls, url: str, *, clock: Clock | None = None, upgrade: bool = True
    ) -> SqlStateStore:
        """A store on a new engine for *url*, migrating the database first if *upgrade*."""
        engine = db.create_engine(url)
        try:
            if upgrade:
                db.upgrade(engine)
            store = cls(engine, clock=clock)
        except BaseException:
            engine.dispose()
            raise
        store._owns_engine = True
        return store

    def __repr__(self) -> str:
        return f"<SqlStateStore {db.display_url(self._engine)}>"

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        """Dispose of the engine if the store made it; an engine passed in stays open."""
        if self._owns_engine:
            self._engine.dispose()

    # Reading --------------------------------------------------------------------

    def get(self, module: str, key: str) -> str:
        with db.read_connection(self._engine) as connection:
            state: str | None = connection.execute(
                self._sql.read, {"module_": module, "key_": key}
            ).scalar_one_or_none()
        return FIRST_STATE if state is None else state

    def records(self) -> list[StateRecord]:
        table = db.states
        query = (
            sa.select(table)
            .where(table.c.state != FIRST_STATE)
            .order_by(table.c.module, table.c.key)
        )
        with db.read_connection(self._engine) as connection:
            rows = connection.execute(query).all()
        return [
            StateRecord(row.module, row.key, row.sender, row.state, _utc(row.last_modified))
            for row in rows
        ]

    # Writing --------------------------------------------------------------------

    def set(self, module: str, key: str, state: str, *, sender: str = "") -> None:
        with db.write_transaction(self._engine) as connection:
            if state == FIRST_STATE:
                connection.execute(self._sql.delete, {"module_": module, "key_": key})
                return
            changes = {"sender": sender, "state": state, "last_modified": self._now()}
            upsert = self._insert(connection, module=module, key=key, **changes)
            connection.execute(
                upsert.on_conflict_do_update(
                    index_elements=[db.states.c.module, db.states.c.key], set_=changes
                )
            )

    @contextmanager
    def transition(self, module: str, key: str, sender: str) -> Iterator[Conversation]:
        """Hold the conversation for the block; commit the state assigned in it.

        The read, the block and the write are one database transaction, so no
        other process or thread can change the conversation in between; an
        exception out of the block rolls it back and leaves the stored state as
        it was. While it is held, change this conversation only through the
        yielded :class:`Conversation`: a :meth:`set` on another connection would
        wait for the lock this transition holds.
        """
        with db.write_transaction(self._engine) as connection:
            conversation = Conversation(module, key, sender, self._hold(connection, module, key))
            yield conversation
            which = {"module_": module, "key_": key}
            if conversation.state == FIRST_STATE:
                connection.execute(self._sql.delete, which)
            else:
                connection.execute(
                    self._sql.update,
                    {**which, "sender_": sender, "state_": conversation.state, "now": self._now()},
                )

    def clear(self) -> None:
        with db.write_transaction(self._engine) as connection:
            connection.execute(sa.delete(db.states))

    # Helpers --------------------------------------------------------------------

    def _hold(self, connection: Connection, module: str, key: str) -> str:
        """Lock the conversation's row for this transaction; its state.

        A conversation in START has no row, and there is nothing to lock, so a
        placeholder in START is inserted first (the transition deletes it again
        unless the state moves on; a rollback takes it away). Concurrent
        inserters of the same key wait for each other on the primary key.
        """
        which = {"module_": module, "key_": key}
        placeholder = {**which, "now": self._now()}
        while True:
            connection.execute(self._sql.placeholder, placeholder)
            state: str | None = connection.execute(self._sql.lock, which).scalar_one_or_none()
            if state is not None:
                return state
            # The row existed when we inserted, but the transaction we waited on
            # for its lock deleted it (its conversation went back to START).
            # READ COMMITTED gives each statement a fresh snapshot, so trying
            # again inserts the placeholder.

    @staticmethod
    def _insert(connection: Connection, **values: Any) -> postgresql.Insert | sqlite.Insert:
        if connection.dialect.name == "postgresql":
            return postgresql.insert(db.states).values(**values)
        return sqlite.insert(db.states).values(**values)

    def _now(self) -> datetime:
        return _utc(self.clock.now())
