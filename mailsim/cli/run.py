"""``mailsim run``: run feature files, in the simulated world or against a live server;
``mailsim steps``: print the step library's vocabulary."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import click
from mailsim_runtime.config import ConfigError, load_config
from mailsim_runtime.project import find_project

from mailsim.cli import main
from mailsim.cli._common import fail, project_option
from mailsim.live import Endpoint, LiveError, LiveRun, MailSink, open_sink
from mailsim.report import write_report
from mailsim.spec.coverage import StateCoverage
from mailsim.steps import vocabulary
from mailsim.steps.runner import RunError, run_features


def _endpoint(text: str | None, option: str) -> Endpoint | None:
    if text is None:
        return None
    try:
        return Endpoint.parse(text)
    except ValueError as error:
        fail(f"{option}: {error}")


def _project(given: Path | None) -> Path | None:
    if given is not None:
        folder = given.parent if given.is_file() else given
        if not (folder / "mailsim.toml").is_file():
            fail(f"--project {given}: no mailsim.toml there")
        return folder.resolve()
    return find_project(Path.cwd())


def _default_sink(project: Path | None) -> Endpoint:
    """Where the server under test relays to: its project's ``[relay]`` smart host."""
    if project is None:
        fail("--live needs --sink HOST:PORT (where the server's relay sends its mail)")
    try:
        relay = load_config(project).relay
    except ConfigError as error:
        fail(str(error))
    if relay.mode != "smarthost":
        fail(
            f"the project's [relay] mode is {relay.mode!r}, so its mail does not go to one "
            "smart host: give --sink HOST:PORT and point the server's relay there"
        )
    return Endpoint(relay.host, relay.port)


@main.command()
@click.argument(
    "paths", nargs=-1, type=click.Path(exists=True, path_type=Path), metavar="[PATHS]..."
)
@project_option
@click.option(
    "--live",
    metavar="HOST:PORT",
    help="Run against the server at HOST:PORT instead of the simulated world.",
)
@click.option(
    "--sink",
    metavar="HOST:PORT",
    help="Live: where to catch the server's outgoing mail (default: the project's "
    "[relay] host and port, which the server relays to).",
)
@click.option(
    "--state-url",
    metavar="URL",
    help="Live: the server's state database, for the state steps (read only).",
)
@click.option(
    "--junit",
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write JUnit XML reports into DIR.",
)
@click.option(
    "--report",
    metavar="FILE.html",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write an HTML report: steps, sequence diagrams, every message.",
)
@click.option(
    "--tags", metavar="EXPR", help='Run only scenarios whose tags fit, e.g. "not @world".'
)
@click.option(
    "--coverage",
    is_flag=True,
    help="Report which states of the app's handler modules the scenarios reached.",
)
@click.option(
    "--transcript",
    is_flag=True,
    help="Show every scenario's conversation, not only a failing one's.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Live: seconds to wait for an expected mail or state.",
)
@click.option(
    "--quiet-period",
    type=click.FloatRange(min=0.0),
    default=1.0,
    show_default=True,
    help="Live: seconds to watch for mail before 'receives no mail' passes.",
)
def run(
    paths: tuple[Path, ...],
    project: Path | None,
    live: str | None,
    sink: str | None,
    state_url: str | None,
    junit: Path | None,
    report: Path | None,
    tags: str | None,
    coverage: bool,
    transcript: bool,
    timeout: float,
    quiet_period: float,
) -> None:
    """Run feature files: each scenario in a fresh simulated world, or with --live
    against a real server (whose relay must send to the sink this starts).

    PATHS are feature files or folders (default: the project's features/). Exit
    status 0 only when every scenario ran and passed.
    """
    folder = _project(project)  # for the defaults: features/, the sink
    targets = list(paths)
    if not targets:
        default = (folder or Path.cwd()) / "features"
        if not default.is_dir():
            fail(f"no features folder at {default}; name the feature files or folders to run")
        targets = [default]
    server = _endpoint(live, "--live")
    live_run: LiveRun | None = None
    caught: MailSink | None = None
    if server is not None:
        at = _endpoint(sink, "--sink") or _default_sink(folder)
        try:
            caught = open_sink(at)
        except LiveError as error:
            fail(str(error))
        live_run = LiveRun(
            server, caught, state_url=state_url, timeout=timeout, quiet_period=quiet_period
        )
        click.echo(
            f"live: talking to {server}; catching its replies at {at.host}:{caught.port} "
            f"(its relay must send there); run {live_run.run_id}"
        )
    elif sink is not None or state_url is not None:
        fail("--sink and --state-url go with --live")
    try:
        # Only a --project given overrides the project each feature file sits in.
        chosen = folder if project is not None else None
        result = run_features(
            targets, live=live_run, project=chosen, tags=tags, junit=junit, transcripts=transcript
        )
    except RunError as error:
        fail(str(error))
    finally:
        if live_run is not None:
            live_run.close()
        if caught is not None:
            caught.stop()
    if coverage:
        if live_run is not None:
            click.echo("state coverage: not observable live (the transitions are the world's)")
        else:
            states = StateCoverage()
            for record in result.records:
                states.add(record.states, record.transcript)
            click.echo(states.report())
    if report is not None:
        write_report(report, result.records, elapsed=result.elapsed)
        click.echo(f"report: {report}")
    if junit is not None:
        click.echo(f"JUnit XML: {junit}")
    sys.exit(result.exit_status)


@main.command()
def steps() -> None:
    """Print the step library's vocabulary, with an example of each phrase."""
    click.echo(
        "mailsim's vocabulary for .feature files (docs/steps.md explains it).\n"
        'Quoted words are parameters; "${name}" in one uses a value kept earlier.\n'
        "Any keyword (Given, When, Then, And, But) may start any step."
    )
    for title, functions in vocabulary():
        click.echo(f"\n{title}")
        for function, phrases in functions:
            doc = inspect.getdoc(function) or ""
            summary = " ".join(doc.split("\n\n")[0].split()).replace("*", "").replace("``", "")
            for phrase in phrases:
                click.echo(f"  {phrase.shown}")
                click.echo(f"      e.g. {phrase.example}")
            if summary:
                click.echo(f"      — {summary}")
