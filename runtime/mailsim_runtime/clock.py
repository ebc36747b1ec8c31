"""Time as a dependency: everything that waits or expires asks a :class:`Clock`.

Production uses :class:`SystemClock`; tests and the simulated world pass a clock
they move by hand, so nothing ever sleeps to test an expiry or a retry.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    """The wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def __repr__(self) -> str:
        return "SystemClock()"
