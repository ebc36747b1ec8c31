"""State coverage from transcripts: StateCoverage, `mailsim run --coverage`, the pytest option."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from mailsim_runtime import App
from sample_handlers import fsm

from mailsim.cli import main
from mailsim.spec.coverage import StateCoverage
from mailsim.world import World

ROOT = Path(__file__).resolve().parents[2]


def test_router_lists_each_modules_states_with_error_when_defined() -> None:
    app = App([fsm], hostname="fsm.example.com")
    assert app.router.state_names() == {fsm.__name__: ["START", "WAITING", "DONE", "ERROR"]}


def test_reached_states_come_from_functions_run_and_states_entered() -> None:
    world = World(App([fsm], hostname="fsm.example.com"), strict=False)
    world.mailbox("alice@example.org").send("go@fsm.example.com")
    coverage = StateCoverage()
    coverage.add(world.app.router.state_names(), world.transcript)
    assert coverage.missing(fsm.__name__) == ["DONE", "ERROR"]  # START ran, WAITING entered
    assert not coverage.complete
    world.mailbox("alice@example.org").send("go@fsm.example.com")  # WAITING -> DONE
    coverage.add(world.app.router.state_names(), world.transcript)
    assert coverage.missing(fsm.__name__) == ["ERROR"]
    assert coverage.report().splitlines() == [
        "state coverage:",
        f"  {fsm.__name__}: 3/4 states; never reached: ERROR",
    ]


def test_mailsim_run_coverage_reports_the_examples_states() -> None:
    result = CliRunner().invoke(
        main, ["run", str(ROOT / "examples" / "mailinglist" / "features"), "--coverage"]
    )
    assert result.exit_code == 0, result.output
    assert "  app.handlers.mailinglist: 4/4 states" in result.output.splitlines()


def test_pytest_option_reports_coverage(pytester: pytest.Pytester) -> None:
    pytester.makefile(
        ".toml", mailsim='[app]\nhostname = "fsm.example.com"\nhandlers = ["fsm_app"]\n'
    )
    pytester.makepyfile(fsm_app=(ROOT / "tests" / "sample_handlers" / "fsm.py").read_text())
    pytester.makepyfile(
        test_it="""
        def test_go(mailbox):
            mailbox("a@example.org").send("go@fsm.example.com")
        """
    )
    result = pytester.runpytest("--mailsim-coverage")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*mailsim state coverage*", "  fsm_app: 2/4 states; never reached: DONE, ERROR"]
    )
