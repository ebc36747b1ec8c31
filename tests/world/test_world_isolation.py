"""Worlds built from one :class:`AppTemplate` are the world built from the folder, and
share nothing: no rows, states, mail, clock, ids, settings or queued messages."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from mailsim_runtime.project import AppTemplate, AppTemplates

from mailsim.world import World
from mailsim.world.clock import WORLD_EPOCH

ROOT = Path(__file__).resolve().parents[2]
MAILINGLIST = ROOT / "examples" / "mailinglist"
SPAM = b"From: winner@lottery.example\r\nSubject: WIN CASH NOW\r\n\r\nclaim your prize money\r\n"


def subscribe(world: World, person: str) -> None:
    box = world.mailbox(person)
    box.send("python-subscribe@lists.example.com", subject="subscribe")
    box.reply(box.expect(subject="Please confirm: subscribe to python"))
    box.expect(subject="Welcome to python")


def conversation(world: World) -> None:
    """Rows, states, confirmations, a scored post, mail out and the clock moved."""
    subscribe(world, "alice@example.org")
    subscribe(world, "bob@example.org")
    world.mailbox("alice@example.org").send(
        "python@lists.example.com", subject="Hello", body="Hi everyone"
    )
    world.mailbox("bob@example.org").expect(subject="[python] Hello")
    world.clock.advance(days=3)


def rows(world: World, query: str) -> list[tuple[Any, ...]]:
    with world.app.database.connect() as connection:
        return [tuple(row) for row in connection.execute(sa.text(query))]


def observed(world: World) -> dict[str, Any]:
    """Everything a scenario could see of what an earlier one did."""
    return {
        "lists": rows(world, "SELECT name FROM mailing_lists"),
        "members": rows(world, "SELECT list_name, address FROM mailing_list_members"),
        "archive": rows(world, "SELECT message_id FROM mailing_list_archive"),
        "states": world.app.states.records(),
        "spam": world.app.spam.counts,
        "spam words": rows(world, "SELECT count(*) FROM mailsim_spam_words"),
        "announce": world.app.settings["lists"]["announce"]["non_members"],
        "queued": {name: len(queue) for name, queue in world.app.queues.items()},
        "clock": world.clock.now(),
        "people": world.mailboxes,
        "transcript": len(world.transcript),
    }


def test_a_world_from_a_template_is_the_world_built_from_the_folder() -> None:
    template = AppTemplate(MAILINGLIST)
    built = World(MAILINGLIST)
    conversation(built)
    # The second copy runs after the first has written everything it writes.
    for copied in (World(template), World(template)):
        conversation(copied)
        assert copied.transcript.log() == built.transcript.log()  # ids, secrets, states
        for table in ("mailing_lists", "mailing_list_members", "mailing_list_archive"):
            assert rows(copied, f"SELECT * FROM {table}") == rows(built, f"SELECT * FROM {table}")
        assert copied.app.spam is not None and built.app.spam is not None
        assert copied.app.spam.counts == built.app.spam.counts == (22, 20)


def test_nothing_one_world_does_is_seen_by_the_next_from_the_same_template() -> None:
    template = AppTemplate(MAILINGLIST)
    # The first world's app is set up in full and becomes the template: the later
    # worlds are copies of it, the one that writes as well as the one that reads.
    pristine = observed(World(template))
    assert pristine["spam"] == (22, 20)  # trained by the project's setup, once
    first = World(template)
    assert observed(first) == pristine
    conversation(first)
    assert first.app.spam is not None
    first.app.spam.train(SPAM, is_spam=True)
    first.app.settings["lists"]["announce"]["non_members"] = "moderate"
    first.app.queues["spam"].push(SPAM, "kept for the test")
    dirty = observed(first)
    assert all(dirty[key] != pristine[key] for key in pristine)  # it did write everything

    second = World(template)
    assert observed(second) == pristine
    conversation(second)
    assert second.transcript.log() == first.transcript.log()  # same seed, same ids


def test_worlds_alive_together_keep_to_themselves() -> None:
    template = AppTemplate(MAILINGLIST)
    World(template)  # the template's own: the two below are copies
    one, two = World(template), World(template)
    subscribe(one, "alice@example.org")
    assert rows(two, "SELECT address FROM mailing_list_members") == []
    subscribe(two, "bob@example.org")
    assert rows(one, "SELECT address FROM mailing_list_members") == [("alice@example.org",)]
    assert rows(two, "SELECT address FROM mailing_list_members") == [("bob@example.org",)]
    assert one.app.database.dialect is two.app.database.dialect  # set up once, shared


SETUP = """
import os

import sqlalchemy as sa
from mailsim_runtime import App

metadata = sa.MetaData()
stamps = sa.Table("stamps", metadata, sa.Column("at", sa.DateTime(timezone=True)))


def setup(app: App) -> None:
    metadata.create_all(app.database)
    with app.transaction() as connection:
        if connection.execute(sa.select(stamps)).first() is None:
            connection.execute(stamps.insert().values(at=app.clock.now()))
    app.settings["flag"] = os.environ.get("ISOLATION_FLAG", "unset")
"""

HANDLERS = """
from mailsim_runtime import MailResponse, current_app, route


@route("echo@(host)")
def START(message, host):
    greeting = current_app().settings["greeting"]
    reply = MailResponse(from_=f"echo@{host}", subject="Re", body=greeting)
    current_app().relay.reply(message, reply)
    return START
"""


def small_project(folder: Path, greeting: str) -> Path:
    (folder / "isolation_demo").mkdir(parents=True)
    (folder / "isolation_demo" / "__init__.py").write_text("")
    (folder / "isolation_demo" / "setup.py").write_text(textwrap.dedent(SETUP))
    (folder / "isolation_demo" / "handlers.py").write_text(textwrap.dedent(HANDLERS))
    write_config(folder, greeting)
    return folder


def write_config(folder: Path, greeting: str) -> None:
    (folder / "mailsim.toml").write_text(
        '[app]\nhostname = "demo.example.com"\nhandlers = ["isolation_demo.handlers"]\n'
        'setup = ["isolation_demo.setup:setup"]\n'
        f'[settings]\ngreeting = "{greeting}"\n'
    )


def stamp(world: World) -> datetime:
    (at,) = rows(world, "SELECT at FROM stamps")[0]  # SQLite keeps text, in UTC
    return datetime.fromisoformat(at).replace(tzinfo=UTC)


def test_setup_runs_for_every_world_on_the_database_set_up_at_its_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    template = AppTemplate(small_project(tmp_path, "hello"))
    monkeypatch.setenv("ISOLATION_FLAG", "one")
    first = World(template)
    monkeypatch.setenv("ISOLATION_FLAG", "two")
    second = World(template)
    assert (first.app.settings["flag"], second.app.settings["flag"]) == ("one", "two")
    later = WORLD_EPOCH + timedelta(days=30)
    third = World(template, start=later)
    # Each start time gets a database set up at that time, as a world from the folder does.
    assert stamp(first) == stamp(second) == WORLD_EPOCH
    assert stamp(third) == later
    assert len(rows(third, "SELECT at FROM stamps")) == 1


def test_a_changed_mailsim_toml_is_read_again(tmp_path: Path) -> None:
    template = AppTemplates().template(small_project(tmp_path, "hello") / "isolation_demo")
    before = World(template)
    write_config(tmp_path, "hello again, changed")  # another size: seen without a sleep
    after = World(template)
    for world, greeting in ((before, "hello"), (after, "hello again, changed")):
        box = world.mailbox("alice@example.org")
        box.send("echo@demo.example.com", subject="hi")
        assert box.expect(subject="Re").body.strip() == greeting


def test_a_changed_template_file_is_compiled_again(tmp_path: Path) -> None:
    project = small_project(tmp_path, "hello")
    (project / "templates").mkdir()
    (project / "templates" / "note.txt").write_text("first {{ name }}\n")
    config = (project / "mailsim.toml").read_text()
    (project / "mailsim.toml").write_text(
        config.replace("[settings]", 'templates = "templates"\n[settings]')
    )
    template = AppTemplate(project)
    assert World(template).app.views.render("note.txt", name="x") == "first x\n"
    assert World(template).app.views.render("note.txt", name="y") == "first y\n"
    (project / "templates" / "note.txt").write_text("second {{ name }}\n")
    assert World(template).app.views.render("note.txt", name="z") == "second z\n"


def test_no_project_is_named_as_a_world_names_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no mailsim\.toml at or above"):
        AppTemplates().template(tmp_path)
