"""State coverage: which states of an application's handler modules the specs reached.

A state counts as reached when its function handled a message, or a conversation
moved into it (a final state may never receive mail). Fed by worlds' transcripts —
`mailsim run --coverage` and pytest's `--mailsim-coverage` print the report.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from mailsim.world.transcript import Transcript

__all__ = ["StateCoverage"]


@dataclass
class StateCoverage:
    """States known per module, and those reached, gathered over many worlds."""

    known: dict[str, set[str]] = field(default_factory=dict)
    reached: dict[str, set[str]] = field(default_factory=dict)

    def add(self, states: Mapping[str, Iterable[str]], transcript: Transcript | None) -> None:
        """One world's application states (``Router.state_names()``) and what it did."""
        for module, names in states.items():
            self.known.setdefault(module, set()).update(names)
        if transcript is None:
            return
        for event in transcript.transitions:
            reached = self.reached.setdefault(event.module, set())
            reached.update((event.function, event.to_state))

    def missing(self, module: str) -> list[str]:
        return sorted(self.known.get(module, set()) - self.reached.get(module, set()))

    @property
    def complete(self) -> bool:
        return all(not self.missing(module) for module in self.known)

    def report(self) -> str:
        """One line per module: reached/known, and the states never reached."""
        if not self.known:
            return "state coverage: no stateful handler module ran"
        lines = ["state coverage:"]
        for module in sorted(self.known):
            known = self.known[module]
            reached = known & self.reached.get(module, set())
            missing = self.missing(module)
            line = f"  {module}: {len(reached)}/{len(known)} states"
            lines.append(line + (f"; never reached: {', '.join(missing)}" if missing else ""))
        return "\n".join(lines)
