"""Hooks: mailsim's (for plain ``behave``; ``mailsim run`` adds them anyway), and a
web site folder of its own for each scenario, given to the app through OSB_OUTPUT."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from mailsim.steps import environment as mailsim_hooks


def before_all(context: Any) -> None:
    context.osb_sites = tempfile.mkdtemp(prefix="osb-features-")
    context.osb_output_before = os.environ.get("OSB_OUTPUT")


def before_scenario(context: Any, scenario: Any) -> None:
    mailsim_hooks.before_scenario(context, scenario)
    # Read when the scenario's app is built, on its first step.
    os.environ["OSB_OUTPUT"] = tempfile.mkdtemp(dir=context.osb_sites)


def after_scenario(context: Any, scenario: Any) -> None:
    mailsim_hooks.after_scenario(context, scenario)


def after_all(context: Any) -> None:
    shutil.rmtree(context.osb_sites, ignore_errors=True)
    if context.osb_output_before is None:
        os.environ.pop("OSB_OUTPUT", None)
    else:
        os.environ["OSB_OUTPUT"] = context.osb_output_before
