"""Assertions on conversation state."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailsim.world.world import World

__all__ = ["StateExpectationError", "expect_state"]


class StateExpectationError(AssertionError):
    """A conversation was not in the state a test expected."""


def expect_state(world: World, module: str, key: str, expected: str) -> None:
    """Fail unless the conversation *key* of handler *module* is in state *expected*.

    The failure names the state it is in, and the conversations the module does have
    (a wrong key — say, a sender where the module keys by list — shows up there).
    """
    __tracebackhide__ = True
    actual = world.state(module, key)
    if actual == expected:
        return
    known = sorted(
        f"{record.key} in {record.state}"
        for record in world.app.states.records()
        if record.module == module
    )
    loaded = world.app.router.modules
    lines = [
        f"expected conversation {key!r} of {module} in state {expected}, but it is in {actual}"
    ]
    if module not in loaded:
        lines.append(f"(no handler module {module} is loaded; the app has: {', '.join(loaded)})")
    elif known:
        lines.append("conversations of that module: " + "; ".join(known))
    else:
        lines.append("that module has no conversation past START")
    raise StateExpectationError("\n".join(lines))
