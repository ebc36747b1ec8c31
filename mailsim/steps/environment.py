"""behave's hooks for the step library.

``mailsim run`` installs them itself. To run features with plain ``behave``, put
this line in ``features/environment.py``::

    from mailsim.steps.environment import *  # noqa: F403

Before each scenario, a fresh :class:`~mailsim.steps._scene.Scene` (its world, or
its live conversations, made when first needed). After it, strictness is checked —
mail that no step looked at fails the scenario unless it is ``@loose`` — the
transcript is attached for formatters that take attachments, and the scenario's
record goes to the session (and from there to the terminal and the report).
Both hooks are idempotent, so a project hook that calls them as well does no harm.
"""

from __future__ import annotations

from typing import Any

from mailsim.steps._scene import Scene, StepFailed, session_of

__all__ = ["after_scenario", "before_scenario"]


def before_scenario(context: Any, scenario: Any) -> None:
    """Give the scenario a fresh scene."""
    scene = getattr(context, "mailsim", None)
    if isinstance(scene, Scene) and scene.scenario is scenario:
        return
    context.mailsim = Scene(session_of(context), scenario)


def after_scenario(context: Any, scenario: Any) -> None:
    """Check strictness, record the scenario, attach its transcript."""
    scene = getattr(context, "mailsim", None)
    if not isinstance(scene, Scene) or scene.scenario is not scenario or scene.finished:
        return
    record = scene.finish(scenario)
    scene.session.add(record)
    if record.transcript is not None and len(record.transcript):
        context.attach("text/plain", record.transcript.log().encode("utf-8"))
    if record.problems:
        raise StepFailed("\n".join(record.problems))
