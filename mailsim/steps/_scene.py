"""What the steps share: the run's :class:`Session` and each scenario's :class:`Scene`.

A :class:`Session` is one run of features (``mailsim run``, or plain ``behave``):
world or live, the records of finished scenarios. It travels in behave's
``config.userdata`` under :data:`SESSION_KEY`, so the hooks and steps find it
without any global. A :class:`Scene` is one scenario: its driver (made on first use,
so ``Given the application in …`` can choose the app first), the values captured
so far, the mail each person last looked at, and who wrote to which address.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mailsim_runtime.project import AppTemplates, find_project

from mailsim.live import LiveError, LiveRun, NotPossibleLive
from mailsim.report import ScenarioRecord, StepRecord
from mailsim.steps.drivers import Driver, WorldDriver
from mailsim.world.mailbox import ReceivedMail

__all__ = [
    "LOOSE_TAG",
    "SESSION_KEY",
    "Scene",
    "Session",
    "StepFailed",
    "scene_of",
    "session_of",
]

SESSION_KEY = "mailsim.session"
LOOSE_TAG = "loose"  # @loose: mail may go unexamined in this scenario

_REFERENCE = re.compile(r"\$\{([^}]*)\}")
_FAILED = {"failed", "error", "undefined", "hook_error", "cleanup_error", "pending"}


class StepFailed(AssertionError):
    """A step could not do what it says; the message says why, in the feature's words."""


class Session:
    """One run of features: in the world, or against a live server (*live*)."""

    def __init__(
        self,
        *,
        live: LiveRun | None = None,
        project: Path | None = None,
        on_record: Callable[[ScenarioRecord], None] | None = None,
    ) -> None:
        self.live = live
        self.project = project
        self.on_record = on_record
        self.records: list[ScenarioRecord] = []
        # Each project's app is set up once per run and copied for every scenario's
        # world: the run owns the templates, and they go with it.
        self.templates = AppTemplates()

    def __repr__(self) -> str:
        return f"<Session {self.mode} {len(self.records)} scenarios>"

    @property
    def mode(self) -> str:
        return "live" if self.live is not None else "world"

    def open(self, project: Path | None, *, strict: bool) -> Driver:
        """A fresh driver for one scenario."""
        if self.live is not None:
            return self.live.scenario(project)
        if project is None:
            raise StepFailed(
                "no application to run: no mailsim.toml at or above the feature file or the "
                'current folder; name one with Given the application in "path/to/project"'
            )
        return WorldDriver(self.templates.template(project), strict=strict)

    def add(self, record: ScenarioRecord) -> None:
        self.records.append(record)
        if self.on_record is not None:
            self.on_record(record)


def session_of(context: Any) -> Session:
    """The run's session; plain ``behave`` runs get a world session on first use."""
    userdata = context.config.userdata
    session = userdata.get(SESSION_KEY)
    if not isinstance(session, Session):
        session = Session()
        userdata[SESSION_KEY] = session
    return session


class Scene:
    """One scenario's conversations, as the steps see them."""

    def __init__(self, session: Session, scenario: Any) -> None:
        self.session = session
        self.scenario = scenario
        self.feature_file = Path(scenario.filename).resolve()
        self.project: Path | None = None
        self.strict = LOOSE_TAG not in scenario.effective_tags
        self.captures: dict[str, str] = {}
        self.last_claimed: dict[str, ReceivedMail] = {}  # by person, lower-cased
        self.last_mail: ReceivedMail | None = None  # the one "its" means
        self.sent: list[tuple[str, str]] = []  # (person, recipient), oldest first
        self.started = time.perf_counter()
        self.finished = False
        self._driver: Driver | None = None

    def __repr__(self) -> str:
        return f"<Scene {self.scenario.name!r} {self.session.mode}>"

    # The driver -------------------------------------------------------------------

    @property
    def driver(self) -> Driver:
        if self._driver is None:
            self._driver = self.session.open(
                self.project or self.default_project(), strict=self.strict
            )
        return self._driver

    def default_project(self) -> Path | None:
        """The run's ``--project``, else the mailsim.toml at or above the feature, else the
        current folder's."""
        return (
            self.session.project
            or find_project(self.feature_file.parent)
            or find_project(Path.cwd())
        )

    def use_project(self, folder: Path) -> None:
        if self._driver is not None:
            raise StepFailed(
                "the application is chosen before anything happens: put "
                "Given the application in … first in the scenario (or in its Background)"
            )
        self.project = folder

    def find_folder(self, name: str) -> Path:
        """*name* relative to the current folder, the feature's folder or a folder above it."""
        given = Path(name)
        if given.is_absolute():
            return given
        for base in (Path.cwd(), self.feature_file.parent, *self.feature_file.parent.parents):
            if (base / given).exists():
                return (base / given).resolve()
        raise StepFailed(
            f"no folder {name!r} in {Path.cwd()} nor beside {self.feature_file.name} "
            "or in a folder above it"
        )

    # Texts --------------------------------------------------------------------------

    def expand(self, text: str, *, localize: bool = True) -> str:
        """*text* with ``${name}`` references to captured values filled in.

        Live, the people's addresses in it become the ones this scenario uses.
        """

        def value(found: re.Match[str]) -> str:
            name = found.group(1).strip()
            if name not in self.captures:
                known = ", ".join(repr(n) for n in self.captures) or "nothing yet"
                raise StepFailed(f"nothing was kept as {name!r} (kept so far: {known})")
            return self.captures[name]

        expanded = _REFERENCE.sub(value, text)
        return self.driver.localize(expanded) if localize else expanded

    def expand_regex(self, text: str) -> str:
        """Like :meth:`expand` for a regular expression: captured values are escaped."""

        def value(found: re.Match[str]) -> str:
            return re.escape(self.expand(found.group(0), localize=False))

        return self.driver.localize(_REFERENCE.sub(value, text), regex=True)

    # Mail looked at -----------------------------------------------------------------

    def claimed(self, person: str, mail: ReceivedMail) -> ReceivedMail:
        self.last_claimed[person.lower()] = mail
        self.last_mail = mail
        return mail

    def last_mail_of(self, person: str) -> ReceivedMail:
        """The mail a receive step last found for *person*, else the newest one they got."""
        if person.lower() in self.last_claimed:
            return self.last_claimed[person.lower()]
        received = self.driver.received(person)
        if not received:
            raise StepFailed(f"{person} has received no mail yet, so there is no last mail")
        return received[-1]

    # The end ------------------------------------------------------------------------

    def finish(self, scenario: Any) -> ScenarioRecord:
        """The scenario's record; strictness checked, the driver let go of."""
        self.finished = True
        steps = [_step_record(step) for step in scenario.all_steps]
        failed = [s for s in steps if s.status in _FAILED]
        skip_reason = getattr(scenario, "skip_reason", None)
        skipped = bool(skip_reason) or (bool(steps) and all(s.status == "skipped" for s in steps))
        driver = self._driver
        problems: list[str] = []
        if driver is not None and self.strict and not failed and not skipped:
            left = driver.unexpected_mail()
            if left:
                problems.append(
                    "mail arrived that no step looked at (strict: tag the scenario "
                    f"@{LOOSE_TAG} or add Given mail may go unexamined, to allow it):\n  "
                    + "\n  ".join(left)
                )
        if failed:
            status, reason = "failed", _failure_reason(failed[0])
        elif problems or getattr(scenario, "hook_failed", False):
            status = "failed"
            reason = problems[0] if problems else str(getattr(scenario, "error_message", ""))
        elif skipped:
            status, reason = "skipped", skip_reason or "every step was skipped"
        else:
            status, reason = "passed", ""
        conversations: list[str] = []
        sources: dict[tuple[str, str], bytes] = {}
        if driver is not None:
            sources = driver.message_sources()
            try:
                conversations = list(driver.conversations())
            except (LiveError, NotPossibleLive) as error:
                conversations = [f"(not available: {error})"]
            driver.close()
        return ScenarioRecord(
            feature=scenario.feature.name,
            name=scenario.name,
            location=f"{scenario.location}",
            tags=tuple(scenario.effective_tags),
            mode=self.session.mode,
            status=status,
            reason=reason,
            duration=time.perf_counter() - self.started,
            steps=steps,
            transcript=driver.transcript if driver is not None else None,
            sources=sources,
            state_note=driver.state_note() if driver is not None else "",
            conversations=conversations,
            states=driver.app.router.state_names() if driver is not None else {},
            problems=problems,
        )


def scene_of(context: Any) -> Scene:
    """This scenario's scene (a clear failure when mailsim's hooks are not installed)."""
    scene = getattr(context, "mailsim", None)
    if not isinstance(scene, Scene):
        raise StepFailed(
            "mailsim's hooks did not run for this scenario: run the features with "
            "`mailsim run`, or put `from mailsim.steps.environment import *` in "
            "features/environment.py"
        )
    return scene


def _step_record(step: Any) -> StepRecord:
    table: tuple[tuple[str, ...], ...] = ()
    if step.table is not None:
        table = (tuple(step.table.headings), *(tuple(row.cells) for row in step.table.rows))
    return StepRecord(
        keyword=step.keyword,
        text=step.name,
        status=step.status.name,
        duration=float(step.duration or 0.0),
        error=str(step.error_message or "").removeprefix("ASSERT FAILED: "),
        docstring=step.text,
        table=table,
        location=str(step.location),
    )


def _failure_reason(step: StepRecord) -> str:
    if step.status == "undefined":
        return f"undefined step: {step.keyword} {step.text}  (mailsim steps lists the vocabulary)"
    return step.error or f"{step.keyword} {step.text}: {step.status}"
