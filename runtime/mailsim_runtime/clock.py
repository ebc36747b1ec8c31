"""Time as a dependency: everything that waits or expires asks a :class:`Clock`.

Production uses :class:`SystemClock`; tests and the simulated world pass a clock
they move by hand, so nothing ever sleeps to test an expiry or a retry.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from functools import lru_cache
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock", "format_date", "wall_clock_text"]


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


def format_date(moment: datetime) -> str:
    """``email.utils.format_datetime(moment)``: an RFC 5322 date, such as a Date header's.

    Mail stamps the same moment many times over (a Date and a Received line per
    message, under a virtual clock that stands still): see :func:`wall_clock_text`.
    """
    return wall_clock_text(moment, format_datetime)


def wall_clock_text(moment: datetime, render: Callable[[datetime], str]) -> str:
    """``render(moment)``, kept for recent moments: formatting a date costs
    microseconds, and the same moment is formatted again and again.

    *render* must read only the wall-clock time to the second and the UTC offset,
    as ``format_datetime`` and ``strftime`` (without ``%Z`` or ``%f``) do. Two aware
    times that are equal (the same instant) with the same offset have the same
    wall-clock time, and naive ones are equal only with the same wall-clock time, so
    (moment, offset) is the key; except for a zone that gives no offset (compared
    as naive, written differently) or a subclass of datetime (which may write itself
    differently). The moment is keyed to the second, which is all *render* reads:
    a real clock gives a new microsecond every time, but seldom a new second.
    """
    offset = moment.utcoffset()
    if type(moment) is not datetime or (offset is None and moment.tzinfo is not None):
        return render(moment)
    if moment.microsecond:
        moment = moment.replace(microsecond=0)
    return _rendered(render, moment, offset)


@lru_cache(maxsize=256)
def _rendered(render: Callable[[datetime], str], moment: datetime, offset: timedelta | None) -> str:
    return render(moment)
