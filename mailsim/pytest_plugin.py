"""mailsim's pytest plugin (registered through the ``pytest11`` entry point).

Fixtures:

``mail_world``
    A fresh :class:`~mailsim.world.World` for each test, hosting the application of
    the ``mailsim.toml`` found at or above the rootdir — or whatever the
    ``mailsim_app`` fixture returns (an :class:`~mailsim_runtime.App`, a project
    folder, or a function making an App). Strict by default: mail no assertion
    looked at fails the test when it ends.
``mailbox``
    ``mailbox("alice@example.org")`` — a person in that world.
``mailsim_templates``
    The session's :class:`~mailsim_runtime.project.AppTemplates`: a project folder's
    app is set up once per session and each test's world gets a fresh copy of it.

Option ``--mailsim-transcript`` prints every test's conversation, passing or not;
``--mailsim-coverage`` reports which states of the apps' handler modules the tests reached.

Marker ``@pytest.mark.mailsim(strict=True, seed=0, loop_limit=500, raise_errors=True)``
configures a test's world. A failing test's report shows the world's transcript.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from mailsim_runtime.app import App
from mailsim_runtime.project import AppTemplates

from mailsim.spec.coverage import StateCoverage
from mailsim.world import Mailbox, UnexpectedMail, World

MARKER_OPTIONS = {"strict": True, "seed": 0, "loop_limit": 500, "raise_errors": True}
MARKER_SIGNATURE = "mailsim(*, strict=True, seed=0, loop_limit=500, raise_errors=True)"

_WORLD_KEY = pytest.StashKey[World]()
_CALL_FAILED_KEY = pytest.StashKey[bool]()
_COVERAGE_KEY = pytest.StashKey[StateCoverage]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mailsim", "mailsim: test-first email applications")
    group.addoption(
        "--mailsim-live",
        metavar="HOST:PORT",
        default=None,
        help="run mail_world tests against a live server at HOST:PORT instead of the "
        "simulated world",
    )
    group.addoption(
        "--mailsim-coverage",
        action="store_true",
        default=False,
        help="report which states of the apps' handler modules the tests reached",
    )
    group.addoption(
        "--mailsim-transcript",
        action="store_true",
        default=False,
        help="show every test's conversation (its transcript), passing or not",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER_SIGNATURE}: configure the simulated mail world of this test "
        "(strict=False lets mail go unexamined; seed makes ids and secrets differ)",
    )


def _marker_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    options = dict(MARKER_OPTIONS)
    for marker in reversed(list(request.node.iter_markers("mailsim"))):
        if marker.args:
            pytest.fail(
                f"@pytest.mark.{MARKER_SIGNATURE} takes keyword arguments only", pytrace=False
            )
        unknown = set(marker.kwargs) - set(MARKER_OPTIONS)
        if unknown:
            pytest.fail(
                f"@pytest.mark.mailsim got unknown option(s) {sorted(unknown)}; "
                f"its signature is {MARKER_SIGNATURE}",
                pytrace=False,
            )
        options.update(marker.kwargs)
    return options


@pytest.fixture
def mailsim_app(request: pytest.FixtureRequest) -> App | Path | Callable[[], App]:
    """The application under test: the ``mailsim.toml`` project at or above the test
    file's folder (or the rootdir).

    Override this fixture to test another app; return a new App per test (or a
    folder, or a function that makes one), never one shared between tests.
    """
    from mailsim_runtime.project import find_project

    folder = find_project(request.path.parent) or find_project(request.config.rootpath)
    if folder is None:
        pytest.fail(
            f"mailsim: no mailsim.toml at or above {request.path.parent}; "
            "add one, or override the mailsim_app fixture to return your App",
            pytrace=False,
        )
    return folder


@pytest.fixture(scope="session")
def mailsim_templates() -> Iterator[AppTemplates]:
    """Each project's app, set up once per test session and copied for each test's world
    (see :class:`~mailsim_runtime.project.AppTemplate`): nothing one test's world does
    is seen by another's."""
    templates = AppTemplates()
    yield templates
    templates.close()


@pytest.fixture
def mail_world(
    request: pytest.FixtureRequest,
    mailsim_app: App | Path | Callable[[], App],
    mailsim_templates: AppTemplates,
) -> Iterator[World]:
    """A fresh simulated world hosting the application under test."""
    live = request.config.getoption("mailsim_live")
    if live:
        pytest.fail(
            f"--mailsim-live {live}: running pytest tests against a live server needs the "
            "live driver, which this version of mailsim does not have yet; this test was "
            "not run (it did not pass)",
            pytrace=False,
        )
    options = _marker_options(request)
    app = mailsim_app if isinstance(mailsim_app, App | Path) else mailsim_app()
    world = World(mailsim_templates.template(app) if isinstance(app, Path) else app, **options)
    request.node.stash[_WORLD_KEY] = world
    yield world
    if request.config.getoption("mailsim_coverage"):
        coverage = request.config.stash.setdefault(_COVERAGE_KEY, StateCoverage())
        coverage.add(world.app.router.state_names(), world.transcript)
    if request.config.getoption("mailsim_transcript"):
        _show_transcript(request, world)
    if request.node.stash.get(_CALL_FAILED_KEY, False):
        return  # the test's own failure says enough; its transcript is in the report
    try:
        world.verify()
    except UnexpectedMail as unexpected:
        pytest.fail(str(unexpected), pytrace=False)


def _show_transcript(request: pytest.FixtureRequest, world: World) -> None:
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():  # teardown output is captured otherwise
        reporter.ensure_newline()
        reporter.write_sep("-", f"conversation: {request.node.nodeid}")
        reporter.write_line(world.transcript.log())


@pytest.fixture
def mailbox(mail_world: World) -> Callable[[str], Mailbox]:
    """A factory of people in this test's world: ``alice = mailbox("alice@example.org")``."""
    return mail_world.mailbox


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.when == "call":
        item.stash[_CALL_FAILED_KEY] = report.failed
    world = item.stash.get(_WORLD_KEY, None)
    if world is not None and report.failed and report.when in ("call", "teardown"):
        report.sections.append(("mailsim transcript", world.transcript.log()))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    coverage = config.stash.get(_COVERAGE_KEY, None)
    if coverage is not None:
        terminalreporter.write_sep("-", "mailsim state coverage")
        terminalreporter.write_line(coverage.report())
