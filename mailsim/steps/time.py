"""Steps that move the world's virtual clock.

Everything that falls due on the way runs in order: relay retries, bounces when a
message's lifetime ends, confirmations expiring. Against a live server the clock
cannot be moved: the scenario is skipped, saying so.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from mailsim.steps._phrases import phrase
from mailsim.steps._scene import scene_of

__all__ = ["time_passes"]


@phrase("When", "{count:int} {unit:unit} pass", example="When 3 days pass")
@phrase("When", "{count:int} {unit:unit} passes", example="When 1 hour passes")
def time_passes(context: Any, count: str, unit: str) -> None:
    """Move the clock on by *count* seconds, minutes, hours, days or weeks."""
    units = unit if unit.endswith("s") else unit + "s"
    scene_of(context).driver.advance(timedelta(**{units: int(count)}))
