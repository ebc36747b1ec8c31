"""Scenarios share each project's app template, never what a scenario did: a scenario
that writes rows, states, settings, spam counts, mail and time is followed by one that
sees none of it — through ``mailsim run`` and through the pytest plugin's fixtures."""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path

import pytest

from mailsim.steps.runner import run_features

ROOT = Path(__file__).resolve().parents[2]
MAILINGLIST = ROOT / "examples" / "mailinglist"

# The note step writes what a scenario sees into a file the test reads afterwards.
STEPS = """
import json

import sqlalchemy as sa
from behave import then, when

from mailsim.steps import *  # noqa: F403
from mailsim.steps._scene import scene_of

NOTES = {notes!r}
SPAM = b"From: winner@lottery.example\\r\\nSubject: WIN CASH NOW\\r\\n\\r\\nclaim your prize\\r\\n"


@when("the app is changed behind the conversation's back")
def change_the_app(context):
    app = scene_of(context).driver.app
    app.spam.train(SPAM, is_spam=True)
    app.settings["lists"]["announce"]["non_members"] = "moderate"
    app.queues["spam"].push(SPAM, "kept for the test")


@then('I note what the world holds as "{{label}}"')
def note(context, label):
    scene = scene_of(context)
    world = scene.driver.world
    with world.app.database.connect() as connection:
        def rows(query):
            return [list(row) for row in connection.execute(sa.text(query))]

        seen = {{
            "lists": rows("SELECT name, created FROM mailing_lists"),
            "members": rows("SELECT list_name, address FROM mailing_list_members"),
            "spam words": rows("SELECT count(*) FROM mailsim_spam_words"),
        }}
    seen.update(
        states=[[r.module, r.key, r.state] for r in world.app.states.records()],
        spam=list(world.app.spam.counts),
        announce=world.app.settings["lists"]["announce"]["non_members"],
        queued={{name: len(queue) for name, queue in world.app.queues.items()}},
        clock=world.clock.now().isoformat(),
        mail={{box.address: [m.message_id for m in box.messages] for box in world.mailboxes}},
        last=[scene.last_mail.message_id, scene.last_mail.from_] if scene.last_mail else None,
    )
    with open(NOTES, "a") as notes:
        notes.write(json.dumps({{"label": label, **seen}}) + "\\n")
"""

# The first scenario's app is set up in full and becomes the template: the scenarios
# after it are copies, and so the writer is one too.
FEATURE = """
Feature: Isolation
  Background:
    Given the application in "{project}"

  Scenario: The first scenario only looks
    Then I note what the world holds as "looker at the start"

  Scenario: The writer changes everything it can
    Then I note what the world holds as "writer at the start"
    When "alice@example.org" sends a mail to "python-subscribe@lists.example.com"
    Then "alice@example.org" receives a mail with subject "Please confirm: subscribe to python"
    And I note what the world holds as "writer asked to confirm"
    When "alice@example.org" replies to the last mail
    Then "alice@example.org" receives a mail with subject "Welcome to python"
    When 3 days pass
    And the app is changed behind the conversation's back
    Then I note what the world holds as "writer at the end"

  Scenario: The reader sees none of it
    Then I note what the world holds as "reader at the start"
    When "alice@example.org" sends a mail to "python-subscribe@lists.example.com"
    Then "alice@example.org" receives a mail with subject "Please confirm: subscribe to python"
    And I note what the world holds as "reader asked to confirm"
"""


def test_a_scenario_sees_nothing_the_one_before_it_did(tmp_path: Path) -> None:
    notes = tmp_path / "notes.jsonl"
    features = tmp_path / "features"
    (features / "steps").mkdir(parents=True)
    (features / "steps" / "isolation_steps.py").write_text(STEPS.format(notes=str(notes)))
    (features / "isolation.feature").write_text(
        textwrap.dedent(FEATURE.format(project=MAILINGLIST))
    )

    out = io.StringIO()
    result = run_features([features], out=out)

    assert result.passed, out.getvalue()
    assert len(result.records) == 3
    seen = {note.pop("label"): note for note in map(json.loads, notes.read_text().splitlines())}
    start, changed = seen["writer at the start"], seen["writer at the end"]
    assert start == seen["looker at the start"]
    # The writer did write everything that is noted …
    assert all(changed[key] != start[key] for key in start)
    assert changed["members"] == [["python", "alice@example.org"]]
    # … and the reader starts exactly where the writer did, and runs exactly as it ran:
    # the same Message-IDs, confirmation address, rows and states under the same seed.
    assert seen["reader at the start"] == start
    assert seen["reader asked to confirm"] == seen["writer asked to confirm"]
    assert seen["writer asked to confirm"]["states"] != []


CONFTEST = f"""
import pytest

@pytest.fixture
def mailsim_app():
    return __import__("pathlib").Path({str(MAILINGLIST)!r})
"""

TESTS = """
import sqlalchemy as sa
from mailsim.world import World
from mailsim.world.clock import WORLD_EPOCH

SPAM = b"From: winner@lottery.example\\r\\nSubject: WIN CASH NOW\\r\\n\\r\\nclaim your prize\\r\\n"
SEEN = {}


def members(world):
    with world.app.database.connect() as connection:
        query = "SELECT address FROM mailing_list_members"
        return [row[0] for row in connection.execute(sa.text(query))]


def confirm(world):
    alice = world.mailbox("alice@example.org")
    alice.send("python-subscribe@lists.example.com", subject="subscribe")
    return alice.expect(subject="Please confirm: subscribe to python")


def test_first_only_looks(mail_world):
    # Its app is set up in full and becomes the template: the next tests' are copies.
    SEEN["pristine"] = members(mail_world), mail_world.app.spam.counts


def test_second_changes_everything(mail_world):
    SEEN["first"] = confirm(mail_world)
    mail_world.mailbox("alice@example.org").reply(SEEN["first"])
    mail_world.mailbox("alice@example.org").expect(subject="Welcome to python")
    mail_world.clock.advance(days=3)
    mail_world.app.spam.train(SPAM, is_spam=True)
    mail_world.app.settings["lists"]["announce"]["non_members"] = "moderate"
    assert members(mail_world) == ["alice@example.org"]
    assert mail_world.app.states.records() != []


def test_third_sees_none_of_it(mail_world, mailsim_app, mailsim_templates):
    # This world is a copy from the session's template, as the first test's was.
    sibling = World(mailsim_templates.template(mailsim_app))
    assert mail_world.app.database.dialect is sibling.app.database.dialect
    assert SEEN["pristine"] == (members(mail_world), mail_world.app.spam.counts)
    assert members(mail_world) == []
    assert mail_world.app.states.records() == []
    assert mail_world.app.spam.counts == World(mailsim_app).app.spam.counts == (22, 20)
    assert mail_world.app.settings["lists"]["announce"]["non_members"] == "refuse"
    assert mail_world.clock.now() == WORLD_EPOCH
    assert mail_world.mailboxes == []
    second = confirm(mail_world)
    assert (second.message_id, second.from_) == (SEEN["first"].message_id, SEEN["first"].from_)
"""


def test_a_test_sees_nothing_the_test_before_it_did(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_isolated=TESTS)
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=3)
