"""Running feature files through behave, as a library: what ``mailsim run`` does.

:func:`run_features` builds a behave :class:`~behave.configuration.Configuration`
and runs a :class:`~behave.runner.Runner` that always has mailsim's vocabulary and
hooks, whatever the project's ``features/steps`` and ``environment.py`` hold (a
project's own hooks run too, around mailsim's). Each scenario gets a fresh world
(or a fresh live scenario, with *live*); as each ends, a line is printed — and for
a scenario that did not pass, the failing step, the reason and the conversation.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from behave.configuration import Configuration
from behave.exception import ConfigError
from behave.parser import ParserError
from behave.runner import Runner
from behave.runner_util import load_step_modules

from mailsim.live import LiveRun
from mailsim.report import ScenarioRecord
from mailsim.steps._scene import SESSION_KEY, Session

__all__ = ["RunError", "RunResult", "describe", "run_features"]

Hook = Callable[..., None]


class RunError(Exception):
    """The features could not be run at all (none found, a parse error, no steps folder)."""


@dataclass
class RunResult:
    """What a run did: each scenario's record, and behave's own verdict."""

    records: list[ScenarioRecord]
    behave_failed: bool  # undefined steps, hook errors, …: behave's view
    elapsed: float
    mode: str
    undefined: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        return {
            s: sum(r.status == s for r in self.records) for s in ("passed", "failed", "skipped")
        }

    @property
    def passed(self) -> bool:
        """True only when scenarios ran and every one of them passed."""
        return bool(self.records) and not self.behave_failed and all(r.passed for r in self.records)

    @property
    def exit_status(self) -> int:
        return 0 if self.passed else 1

    def summary(self) -> str:
        counts = self.counts
        where = "in the simulated world" if self.mode == "world" else "against the live server"
        return (
            f"{len(self.records)} scenarios: {counts['passed']} passed, {counts['failed']} "
            f"failed, {counts['skipped']} skipped, in {self.elapsed:.2f}s {where}"
        )


class _MailsimRunner(Runner):  # type: ignore[misc]  # behave has no type hints
    """behave's runner, with mailsim's vocabulary and hooks always there."""

    def before_all_default_hook(self, context: Any) -> None:
        # behave's default sets up logging for the whole process; a library call
        # leaves the caller's logging alone (behave still captures what steps log).
        del context

    def load_hooks(self, filename: str | None = None) -> None:
        super().load_hooks(filename)
        from mailsim.steps import environment

        for name in ("before_scenario", "after_scenario"):
            ours: Hook = getattr(environment, name)
            theirs: Hook | None = self.hooks.get(name)
            if theirs is None or theirs is ours:
                self.hooks[name] = ours
            else:
                self.hooks[name] = _chained(ours, theirs, ours_first=name.startswith("before"))

    def load_step_definitions(self, extra_step_paths: list[str] | None = None) -> None:
        # mailsim's vocabulary is registered already (importing this module imported
        # mailsim.steps); a project with only an environment.py needs no steps folder.
        # behave reads the steps folder of the first path only: the others' are added.
        extra = [*(extra_step_paths or []), *self._other_steps_folders()]
        own = os.path.join(self.base_dir, self.config.steps_dir)
        _forget_steps_from([own, *extra])
        if os.path.isdir(own):
            super().load_step_definitions(extra)
        elif extra:
            load_step_modules(extra)

    def _other_steps_folders(self) -> list[str]:
        """The steps folder beside each path's features, beyond the first path's."""
        own = os.path.join(self.base_dir, self.config.steps_dir)
        found: list[str] = []
        for path in self.config.paths:
            where = Path(re.sub(r":\d+$", "", str(getattr(path, "filename", path)))).resolve()
            for folder in (where, *where.parents):
                steps = folder / self.config.steps_dir
                if steps.is_dir():
                    if str(steps) != own and str(steps) not in found:
                        found.append(str(steps))
                    break
        return found


def _forget_steps_from(folders: list[str]) -> None:
    """Drop the step definitions an earlier run in this process loaded from *folders*.

    behave's registry is one per process. It recognises a step file loaded again
    only by its path relative to the current folder, so a second run from another
    folder (tests do that) would find each of the project's steps clashing with
    itself. Steps defined in imported modules (mailsim's own) are kept.
    """
    from behave.runner import the_step_registry

    roots = [Path(folder).resolve() for folder in folders]
    for matchers in the_step_registry.steps.values():
        matchers[:] = [m for m in matchers if not _defined_in(m.func, roots)]


def _defined_in(function: Any, roots: list[Path]) -> bool:
    # behave runs a step file with __file__ set to its full path.
    origin = getattr(inspect.unwrap(function), "__globals__", {}).get("__file__")
    if not isinstance(origin, str):
        return False
    path = Path(origin).resolve()
    return any(path.is_relative_to(root) for root in roots)


def _chained(ours: Hook, theirs: Hook, *, ours_first: bool) -> Hook:
    """Both hooks, mailsim's before the project's (after it, for ``after_`` hooks)."""

    def both(context: Any, *args: Any) -> None:
        first, second = (ours, theirs) if ours_first else (theirs, ours)
        try:
            first(context, *args)
        finally:
            second(context, *args)

    return both


def run_features(
    paths: Sequence[Path],
    *,
    live: LiveRun | None = None,
    project: Path | None = None,
    tags: str | None = None,
    junit: Path | None = None,
    out: TextIO | None = None,
    transcripts: bool = False,
) -> RunResult:
    """Run the features under *paths*; print a line per scenario to *out*.

    *project* is the app to run when a scenario does not name one (default: the
    ``mailsim.toml`` at or above each feature file). With *live*, the scenarios
    run against that server. *junit* is a folder for JUnit XML files. A failing
    scenario's conversation is always printed; *transcripts* prints every one's.
    """
    stream = out if out is not None else sys.stdout
    args = ["--format", "null", "--no-summary", "--no-snippets", "--no-color"]
    if tags:
        args += ["--tags", tags]
    if junit is not None:
        args += ["--junit", "--junit-directory", str(junit)]
    args += [str(path) for path in paths]
    session = Session(
        live=live,
        project=project,
        on_record=lambda r: print(
            describe(r, every_transcript=transcripts), file=stream, flush=True
        ),
    )
    started = time.perf_counter()
    # behave prints hook errors and captured output itself; each scenario's record
    # says all that, so its chatter is kept aside and shown only if it says more.
    chatter = io.StringIO()
    try:
        config = Configuration(command_args=args, load_config=False)
        config.userdata[SESSION_KEY] = session
        runner = _MailsimRunner(config)
        with contextlib.redirect_stdout(chatter):
            failed = bool(runner.run())
    except ConfigError as error:
        raise RunError(_config_problem(error, paths)) from error
    except ParserError as error:
        raise RunError(f"cannot read a feature file: {error}") from error
    except SystemExit as error:  # behave's argument parser exits on bad input
        raise RunError(f"behave refused the arguments {args}: exit {error.code}") from error
    undefined = [f"{s.keyword} {s.name}  ({s.location})" for s in runner.undefined_steps]
    result = RunResult(
        records=list(session.records),
        behave_failed=failed,
        elapsed=time.perf_counter() - started,
        mode=session.mode,
        undefined=undefined,
    )
    if failed and all(r.passed for r in result.records) and chatter.getvalue().strip():
        print("behave reported:\n" + chatter.getvalue().rstrip(), file=stream)
    _print_summary(result, stream)
    return result


def _config_problem(error: ConfigError, paths: Sequence[Path]) -> str:
    text = str(error)
    if "steps directory" in text:
        return (
            f"{text}: behave needs a steps folder beside the features; add "
            "features/steps/mailsim_steps.py holding `from mailsim.steps import *`"
        )
    if "No feature files" in text:
        return f"no .feature files in {', '.join(map(str, paths))}"
    return text


# What is printed ------------------------------------------------------------------------


def describe(
    record: ScenarioRecord, *, transcript: bool = True, every_transcript: bool = False
) -> str:
    """A scenario as ``mailsim run`` prints it: one line, for a failure the story, and
    its conversation (a failure's, or every scenario's with *every_transcript*)."""
    word = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}.get(record.status, "????")
    took = f"{record.duration * 1000:.1f} ms"
    line = f"{word}  {record.feature} — {record.name}  ({record.location}, {took})"
    if record.status == "skipped":
        return f"{line}\n      skipped: {record.reason}"
    if record.passed:
        if every_transcript and record.transcript is not None:
            return "\n".join([line, *_conversation(record)])
        return line
    lines = [line]
    failing = next(
        (s for s in record.steps if s.status not in ("passed", "skipped", "untested")), None
    )
    if failing is not None:
        lines.append(f"      {failing.keyword} {failing.text}   [{failing.status}]")
    lines += [f"        {text}" for text in record.reason.splitlines()]
    if (transcript or every_transcript) and record.transcript is not None:
        lines += _conversation(record)
    return "\n".join(lines)


def _conversation(record: ScenarioRecord) -> list[str]:
    assert record.transcript is not None
    return ["      conversation:", *(f"        {t}" for t in record.transcript.log().splitlines())]


def _print_summary(result: RunResult, stream: TextIO) -> None:
    if result.undefined:
        print("\nundefined steps (`mailsim steps` prints the vocabulary):", file=stream)
        for step in result.undefined:
            print(f"  {step}", file=stream)
    if not result.records:
        print("no scenario ran (check the paths and --tags)", file=stream)
    print(result.summary(), file=stream, flush=True)
