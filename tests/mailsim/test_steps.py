"""The step library: its vocabulary, its own features, and the pieces under the steps."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from mailsim_runtime.mail import MailRequest

import mailsim.steps
from mailsim.cli import main
from mailsim.live import unique_address
from mailsim.steps import vocabulary
from mailsim.steps._phrases import Phrase, phrase, template_regex
from mailsim.steps.runner import run_features
from mailsim.steps.state import conversation_key
from mailsim.world import World

ROOT = Path(__file__).resolve().parents[2]
FEATURES = ROOT / "features"
MAILINGLIST = ROOT / "examples" / "mailinglist"

# The phrasings the issue asks for, word for word.
REQUIRED = [
    'the application in "examples/mailinglist"',
    '"alice@example.org" sends a mail to "python-subscribe@lists.example.com"',
    '"alice@example.org" sends a mail to "python@lists.example.com" with subject "Hello"',
    '"alice@example.org" replies to the last mail',
    '"alice@example.org" receives a mail from "python-confirm-.*@lists.example.com"',
    '"alice@example.org" receives a mail from "python@lists.example.com" with subject "Hello"',
    '"alice@example.org" receives a mail from "python@lists.example.com" containing "Hi"',
    '"alice@example.org" receives no mail',
    '"alice@example.org" is in state "POSTING" of "app.handlers.mailinglist"',
    "3 days pass",
    'the host "example.net" is down',
    'the host "example.net" defers mail',
    'the host "example.net" bounces mail to "bob@example.net"',
    "every template is spelled correctly",
    "the server is not an open relay",
    'its sender is kept as "confirmation address"',
]


def all_phrases() -> list[Phrase]:
    return [p for _, functions in vocabulary() for _, phrases in functions for p in phrases]


@pytest.mark.parametrize("text", REQUIRED)
def test_every_required_phrasing_is_understood_exactly_one_way(text: str) -> None:
    matching = [p for p in all_phrases() if re.fullmatch(template_regex(p.template), text)]
    assert len(matching) == 1, f"{text!r} matches {[p.template for p in matching]}"


def test_every_example_is_understood_by_its_own_phrase_and_no_other() -> None:
    for phrase_ in all_phrases():
        step = phrase_.example.split(" ", 1)[1]
        matching = [p for p in all_phrases() if re.fullmatch(template_regex(p.template), step)]
        assert matching == [phrase_], f"{phrase_.example!r} matches {matching}"


def test_behave_finds_the_step_for_a_sentence() -> None:
    from behave.model import Step
    from behave.step_registry import registry

    step = Step("x.feature", 1, "Then", "then", '"alice@example.org" receives no mail')
    match = registry.find_match(step)
    assert match is not None
    assert match.func.__name__ == "receives_no_mail"


def test_the_steps_command_prints_each_phrase_with_an_example() -> None:
    result = CliRunner().invoke(main, ["steps"])
    assert result.exit_code == 0, result.output
    for phrase_ in all_phrases():
        assert phrase_.shown in result.output
        assert f"e.g. {phrase_.example}" in result.output
    assert "Keeping values from a mail" in result.output
    assert "docs/steps.md" in result.output


def test_templates_become_anchorless_regular_expressions() -> None:
    regex = template_regex('"{person}" sends {count:int} mails in {unit:unit}')
    found = re.fullmatch(regex, '"a@b.c" sends 12 mails in days')
    assert found is not None
    assert found.groupdict() == {"person": "a@b.c", "count": "12", "unit": "days"}
    assert re.fullmatch(regex, '"a" b" sends 1 mails in days') is None  # no quote inside
    with pytest.raises(ValueError, match="unknown placeholder kind 'colour'"):
        template_regex("{x:colour}")


def test_defining_steps_leaves_the_projects_matcher_alone() -> None:
    from behave.matchers import get_step_matcher_factory

    factory = get_step_matcher_factory()
    factory.use_step_matcher("cfparse")
    try:

        @phrase("Then", "a step only this test defines {n:int}", example="Then a step ...")
        def only_here(context: object, n: str) -> None:
            del context, n

        assert factory.current_matcher.NAME == "cfparse"
    finally:
        factory.use_default_step_matcher()
    with pytest.raises(ValueError, match="keyword must be Given, When or Then"):
        phrase("And", "x", example="And x")


def test_the_conversation_key_is_the_routers() -> None:
    world = World(MAILINGLIST)
    app = world.app
    module = "app.handlers.mailinglist"
    sent = ["nobody@elsewhere.example", "python-subscribe@lists.example.com"]
    assert conversation_key(app, module, "Alice@Example.org", sent) == "python:alice@example.org"
    # Written to nothing of the module's: the sender's address, lower-cased.
    assert conversation_key(app, module, "Alice@Example.org", []) == "alice@example.org"
    assert conversation_key(app, module, "a@b.c", ["u%x@lists.example.com"]) == "a@b.c"
    request = MailRequest(None, "alice@example.org", "python@lists.example.com", b"\r\n")
    assert app.router.state_key(module, request) == "python:alice@example.org"


def test_people_get_a_unique_address_per_scenario() -> None:
    assert unique_address("alice@example.org", "ms1a2b3cs4") == "alice+ms1a2b3cs4@example.org"
    with pytest.raises(ValueError, match="not a mail address"):
        unique_address("alice", "t")


def test_the_step_librarys_own_features_pass(capsys: pytest.CaptureFixture[str]) -> None:
    # features/runtime's @live scenarios (SMTP smuggling) are skipped in the world.
    result = run_features([FEATURES], tags="not @live")
    output = capsys.readouterr().out
    assert result.passed, output
    assert len(result.records) >= 45
    assert result.counts == {"passed": len(result.records), "failed": 0, "skipped": 0}
    # The failure features really ran the failing steps: their scenarios name them.
    names = {r.name for r in result.records}
    assert "A misspelled template" in names
    assert "An open relay" in names


def test_plain_behave_runs_the_same_features() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "behave", "--format", "progress", "--no-color", str(FEATURES)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "0 failed" in completed.stdout


def test_importing_the_library_twice_registers_nothing_twice() -> None:
    from behave.step_registry import registry

    before = len(registry.steps["step"])
    import importlib

    importlib.reload(mailsim.steps)  # the subject modules stay imported: nothing new
    assert len(registry.steps["step"]) == before


def test_the_documentation_lists_every_phrase() -> None:
    text = (ROOT / "docs" / "steps.md").read_text(encoding="utf-8")
    missing = [p.shown for p in all_phrases() if f"`{p.shown}`" not in text]
    assert not missing, f"docs/steps.md does not list: {missing}"


def test_neither_the_steps_nor_the_live_driver_import_aiosmtpd() -> None:
    code = (
        "import sys, mailsim.live, mailsim.steps, mailsim.steps.runner; "
        "print('aiosmtpd' in sys.modules)"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert completed.stdout.strip() == "False"
