"""Steps that check the application is safe to let loose: spelling and open relaying."""

from __future__ import annotations

from typing import Any

from mailsim.spelling import SpellChecker, SpellingSetupError, assert_spelled_correctly
from mailsim.steps._phrases import phrase
from mailsim.steps._scene import StepFailed, scene_of

__all__ = ["WORD_FILE", "every_template_is_spelled_correctly", "the_server_is_not_an_open_relay"]

WORD_FILE = "words.txt"  # the project's own words, one a line, beside its mailsim.toml


@phrase(
    "Then",
    "every template is spelled correctly",
    example="Then every template is spelled correctly",
)
@phrase(
    "Then",
    "every template is spelled correctly, knowing these words:",
    example="Then every template is spelled correctly, knowing these words:",
)
def every_template_is_spelled_correctly(context: Any) -> None:
    """Spell-check every template of the app (Jinja, markup, addresses and code ignored).

    The project's words come from ``words.txt`` beside its ``mailsim.toml`` (or in
    its ``app`` folder); a docstring under the step adds more (the second wording
    says so) (separated by spaces or lines). A failure
    lists each word with its file, line and suggestions.
    """
    scene = scene_of(context)
    app = scene.driver.app
    project = scene.project or scene.default_project()
    word_files = [project / WORD_FILE, project / "app" / WORD_FILE] if project else []
    word_file = next((f for f in word_files if f.is_file()), None)
    extra = scene.expand(context.text, localize=False).split() if context.text else []
    try:
        checker = SpellChecker(words=extra, word_file=word_file)
        views = app.views
    except (SpellingSetupError, RuntimeError) as error:
        raise StepFailed(str(error)) from None
    assert_spelled_correctly(checker.check_templates(views))


@phrase(
    "Then",
    "the server is not an open relay",
    example="Then the server is not an open relay",
)
def the_server_is_not_an_open_relay(context: Any) -> None:
    """All 16 of nmap's open-relay probes are refused.

    In the world the app's RCPT decision is asked; live, each probe is a real
    ``MAIL FROM``/``RCPT TO`` over SMTP.
    """
    report = scene_of(context).driver.relay_report()
    if report.open:
        raise StepFailed(
            f"the server is an open relay: it accepted {len(report.open)} of "
            f"{len(report.results)} probes\n{report}"
        )
