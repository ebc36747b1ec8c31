"""Virtual time for the simulated world."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

__all__ = ["VirtualClock"]

WORLD_EPOCH = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


class VirtualClock:
    """A clock that stands still until it is moved.

    Moving it (:meth:`advance`, :meth:`advance_to`) lets the world run everything
    that falls due on the way — relay retries, delayed bounces, greylisting —
    each at its own moment, in order. Nothing ever sleeps.
    """

    def __init__(self, start: datetime = WORLD_EPOCH) -> None:
        if start.tzinfo is None:
            raise ValueError("the world's clock needs an aware datetime (tzinfo=UTC)")
        self.start = start
        self._now = start
        # Set by the world: when is the next thing due, and run what is due now.
        self.next_event: Callable[[], datetime | None] = lambda: None
        self.run_due: Callable[[], None] = lambda: None

    def __repr__(self) -> str:
        return f"<VirtualClock {self._now.isoformat()} (+{self.elapsed})>"

    def now(self) -> datetime:
        return self._now

    @property
    def elapsed(self) -> timedelta:
        return self._now - self.start

    def advance(self, delta: timedelta | None = None, **units: float) -> datetime:
        """Move forward by *delta* (or ``days=3``, ``minutes=5`` …), running what falls due."""
        step = (delta or timedelta()) + timedelta(**units)
        if step < timedelta(0):
            raise ValueError("the world's clock only moves forward")
        return self.advance_to(self._now + step)

    def advance_to(self, target: datetime) -> datetime:
        if target < self._now:
            raise ValueError(f"cannot go back from {self._now} to {target}")
        while (due := self.next_event()) is not None and due <= target:
            self._now = max(self._now, due)
            self.run_due()
        self._now = target
        self.run_due()
        return self._now
