"""The desk's own step: running the periodic escalation check, as cron does.

Moving the clock (``When 4 hours pass``) runs only what the runtime itself
schedules — relay retries, bounces, expiries. The desk's time limits are checked
by ``app.escalation.check_escalations``, which production runs from cron; this
step runs it in the simulated world. Against a live server it cannot be run from
here, so the scenario is skipped, saying so.
"""

from __future__ import annotations

import importlib
from typing import Any

from behave import when


@when("the desk checks for overdue tickets")
def the_desk_checks_for_overdue_tickets(context: Any) -> None:
    driver = context.mailsim.driver  # the scenario's world (or live server)
    world = getattr(driver, "world", None)
    if world is None:
        context.scenario.skip(
            "the escalation check runs from cron next to a live server, not from a feature"
        )
        return
    escalation = importlib.import_module("app.escalation")  # this project's, put first by the world
    escalation.check_escalations(world.app)
    world.run_until_quiet()
