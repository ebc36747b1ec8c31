"""``mailsim run`` in the simulated world: exit status, output, JUnit, tags, hooks, speed."""

from __future__ import annotations

import re
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailsim.cli import main
from mailsim.steps.runner import RunError, run_features

ROOT = Path(__file__).resolve().parents[2]
MAILINGLIST = ROOT / "examples" / "mailinglist"
STEPS = "from mailsim.steps import *  # noqa: F403\n"


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["run", *args])
    return result.exit_code, result.output


def project(tmp_path: Path, feature: str, *, steps: bool = True, environment: str = "") -> Path:
    """A features folder in *tmp_path* running the mailing list, holding *feature*."""
    features = tmp_path / "features"
    features.mkdir()
    if steps:
        (features / "steps").mkdir()
        (features / "steps" / "mailsim_steps.py").write_text(STEPS)
    if environment:
        (features / "environment.py").write_text(textwrap.dedent(environment))
    header = f'Feature: Trying\n  Background:\n    Given the application in "{MAILINGLIST}"\n'
    (features / "trying.feature").write_text(header + textwrap.dedent(feature))
    return features


def test_the_examples_features_pass_and_exit_zero() -> None:
    code, output = invoke(str(MAILINGLIST / "features"))
    assert code == 0, output
    assert "PASS  The python mailing list — Subscribing needs a confirmation" in output
    assert "12 scenarios: 12 passed, 0 failed, 0 skipped" in output
    assert "in the simulated world" in output


def test_the_project_found_from_the_current_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(MAILINGLIST / "app")
    code, output = invoke("--tags", "@world")
    assert code == 0, output
    assert "1 scenarios: 1 passed" in output


def test_tags_choose_the_scenarios() -> None:
    code, output = invoke(str(MAILINGLIST / "features"), "--tags", "not @world")
    assert code == 0, output
    assert "11 scenarios: 11 passed" in output
    assert "expires" not in output


def test_no_scenario_chosen_is_not_a_pass() -> None:
    code, output = invoke(str(MAILINGLIST / "features"), "--tags", "@nothing-has-this")
    assert code == 1
    assert "no scenario ran (check the paths and --tags)" in output


def test_junit_xml_for_ci(tmp_path: Path) -> None:
    code, output = invoke(str(MAILINGLIST / "features"), "--junit", str(tmp_path / "junit"))
    assert code == 0, output
    (report,) = (tmp_path / "junit").glob("*.xml")
    suite = ET.parse(report).getroot()
    assert suite.tag == "testsuite"
    assert suite.get("tests") == "12"
    assert suite.get("failures") == "0"
    assert suite.get("errors") == "0"


def test_a_failing_scenario_says_why_and_shows_its_conversation(tmp_path: Path) -> None:
    features = project(
        tmp_path,
        """
        Scenario: The wrong sender
          When "alice@example.org" sends a mail to "python-subscribe@lists.example.com"
          Then "alice@example.org" receives a mail from "python@lists.example.com"

        Scenario: Fine
          When "alice@example.org" sends a mail to "python-subscribe@lists.example.com"
          Then "alice@example.org" receives a mail from "python-confirm-.*@lists.example.com"
        """,
    )
    code, output = invoke(str(features), "--junit", str(tmp_path / "junit"))
    assert code == 1
    assert "FAIL  Trying — The wrong sender" in output
    assert (
        'Then "alice@example.org" receives a mail from "python@lists.example.com"   [failed]'
        in output
    )
    assert "expected a mail with sender matching /python@lists.example.com/" in output
    assert "amongst 1 unclaimed mails (nearest first):" in output
    assert "conversation:" in output
    assert "START → CONFIRMING_SUBSCRIBE" in output
    assert "PASS  Trying — Fine" in output
    assert "2 scenarios: 1 passed, 1 failed, 0 skipped" in output
    (report,) = (tmp_path / "junit").glob("*.xml")
    assert ET.parse(report).getroot().get("failures") == "1"


def test_mail_nobody_looked_at_fails_a_strict_scenario(tmp_path: Path) -> None:
    features = project(
        tmp_path,
        """
        Scenario: Strict
          When "alice@example.org" sends a mail to "python-subscribe@lists.example.com"

        @loose
        Scenario: Loose
          When "alice@example.org" sends a mail to "python-subscribe@lists.example.com"
        """,
    )
    code, output = invoke(str(features))
    assert code == 1
    assert "FAIL  Trying — Strict" in output
    assert "mail arrived that no step looked at (strict: tag the scenario @loose" in output
    assert "alice@example.org: #1 from python-confirm-" in output
    assert "PASS  Trying — Loose" in output
    assert "HOOK-ERROR" not in output  # behave's own chatter is kept aside


def test_an_undefined_step_is_a_failure_naming_it(tmp_path: Path) -> None:
    features = project(tmp_path, "Scenario: Dancing\n  When alice dances\n")
    code, output = invoke(str(features))
    assert code == 1
    assert "undefined step: When alice dances" in output
    assert "undefined steps (`mailsim steps` prints the vocabulary):" in output


def test_the_projects_own_hooks_run_around_mailsims(tmp_path: Path) -> None:
    features = project(
        tmp_path,
        """
        Scenario: Hooked
          When "alice@example.org" sends a mail to "python-subscribe@lists.example.com"
          Then "alice@example.org" receives a mail
        """,
        environment=f"""
        from pathlib import Path

        def before_scenario(context, scenario):
            # mailsim's hook ran first: the scene is there.
            Path({str(tmp_path / "before")!r}).write_text(type(context.mailsim).__name__)

        def after_scenario(context, scenario):
            Path({str(tmp_path / "after")!r}).write_text(str(context.mailsim.finished))
        """,
    )
    code, output = invoke(str(features))
    assert code == 0, output
    assert (tmp_path / "before").read_text() == "Scene"
    assert (tmp_path / "after").read_text() == "False"  # theirs before mailsim's checks


def test_an_environment_file_is_enough_without_a_steps_folder(tmp_path: Path) -> None:
    features = project(
        tmp_path,
        'Scenario: Quiet\n  Then "carol@example.org" receives no mail\n',
        steps=False,
        environment="x = 1\n",
    )
    code, output = invoke(str(features))
    assert code == 0, output


def test_features_without_steps_or_environment_say_what_to_add(tmp_path: Path) -> None:
    features = project(tmp_path, "Scenario: Quiet\n", steps=False)
    with pytest.raises(RunError, match=re.escape("add features/steps/mailsim_steps.py")):
        run_features([features])


def test_a_feature_behave_cannot_read(tmp_path: Path) -> None:
    features = project(tmp_path, "Scenario: Broken\n  Examples:\n  | a |\n")
    code, output = invoke(str(features))
    assert code == 1
    assert "cannot read a feature file" in output


def test_the_options_are_checked(tmp_path: Path) -> None:
    code, output = invoke(str(MAILINGLIST / "features"), "--live", "nowhere")
    assert code == 1
    assert "--live: expected HOST:PORT, such as 127.0.0.1:8823, got 'nowhere'" in output
    code, output = invoke(str(MAILINGLIST / "features"), "--sink", "127.0.0.1:1")
    assert code == 1
    assert "--sink and --state-url go with --live" in output
    code, output = invoke("--project", str(tmp_path))
    assert code == 1
    assert "no mailsim.toml there" in output


def test_no_features_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, output = invoke()
    assert code == 1
    assert f"no features folder at {tmp_path / 'features'}" in output


def test_the_html_report_is_written(tmp_path: Path) -> None:
    report = tmp_path / "out" / "report.html"
    code, output = invoke(str(MAILINGLIST / "features"), "--report", str(report))
    assert code == 0, output
    text = report.read_text(encoding="utf-8")
    assert "12 scenarios: 12 passed, 0 failed, 0 skipped" in text
    assert "<svg" in text
    assert f"report: {report}" in output


def test_transcript_shows_every_scenarios_conversation() -> None:
    code, output = invoke(str(MAILINGLIST / "features"), "--tags", "@world", "--transcript")
    assert code == 0, output
    lines = output.splitlines()
    passed = next(i for i, line in enumerate(lines) if line.startswith("PASS"))
    assert lines[passed + 1] == "      conversation:"
    assert "→" in lines[passed + 2]
    code, quiet = invoke(str(MAILINGLIST / "features"), "--tags", "@world")
    assert "conversation:" not in quiet  # without the flag a passing scenario is one line
