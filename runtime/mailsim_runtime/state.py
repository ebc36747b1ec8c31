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
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from mailsim_runtime.clock import Clock, SystemClock

__all__ = [
    "FIRST_STATE",
    "Conversation",
    "MemoryStateStore",
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

    def transition(self, module: str, key: str, sender: str) -> AbstractContextManager[Conversation]:
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
        self._clock = clock or SystemClock()
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
                    module, key, sender, state, self._clock.now()
                )

    @contextmanager
    def transition(self, module: str, key: str, sender: str) -> Iterator[Conversation]:
        # Serialising per conversation is the router's job (its lock table);
        # here the read and the write are each atomic under the store's guard.
        conversation = Conversation(module, key, sender, self.get(module, key))
        yield conversation
        untouched = conversation.state == FIRST_STATE and (module, key) not in self._records
        if not untouched:  # also refreshes last_modified of a conversation that stays put
            self.set(module, key, conversation.state, sender=sender)

    def records(self) -> list[StateRecord]:
        with self._guard:
            return list(self._records.values())

    def clear(self) -> None:
        with self._guard:
            self._records.clear()
