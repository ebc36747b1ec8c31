"""Steps about the application under test: which one, and how strict the scenario is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mailsim.steps._phrases import phrase
from mailsim.steps._scene import StepFailed, scene_of

__all__ = ["mail_may_go_unexamined", "the_application_in"]


@phrase(
    "Given",
    'the application in "{folder}"',
    example='Given the application in "examples/mailinglist"',
)
def the_application_in(context: Any, folder: str) -> None:
    """Run the app of the project in *folder* (its ``mailsim.toml``).

    Optional when the feature lives in the project: the ``mailsim.toml`` at or above
    the feature file (or the current folder) is used. The folder is looked for in
    the current folder, then beside the feature file and in the folders above it.
    Live, it names the project whose routes, state keys and templates the steps use.
    """
    scene = scene_of(context)
    found = scene.find_folder(scene.expand(folder, localize=False))
    project = found.parent if found.is_file() else found
    if not (project / "mailsim.toml").is_file():
        raise StepFailed(f"{found} has no mailsim.toml: it is not a mailsim project")
    scene.use_project(Path(project))


@phrase(
    "Given",
    "mail may go unexamined",
    example="Given mail may go unexamined",
)
def mail_may_go_unexamined(context: Any) -> None:
    """Loosen this scenario: mail that no step looked at does not fail it.

    Scenarios are strict by default; tagging one (or its feature) ``@loose`` does
    the same as this step.
    """
    scene_of(context).strict = False
