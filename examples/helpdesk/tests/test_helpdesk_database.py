"""The desk as ``mailsim serve`` builds it: states, tickets and outgoing mail on disk.

The other tests keep everything in memory. Here the app is built from the same
mailsim.toml with a SQLite database and a durable outbox in a temporary folder,
so the ticket row and its conversation are written in one transaction, as in
production, and the escalation check reads the same database.
"""

from __future__ import annotations

import dataclasses
import importlib
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpdesk_people import MODULE, PROJECT, Escalate, OpenTicket, People, ticket
from mailsim_runtime import App
from mailsim_runtime.config import DatabaseSection, load_config
from mailsim_runtime.outbox import DurableOutbox
from mailsim_runtime.project import build_app
from mailsim_runtime.state import SqlStateStore
from mailsim_runtime.transport import FunctionTransport

from mailsim.world import World


@pytest.fixture
def mailsim_app(tmp_path: Path) -> Callable[[], App]:
    config = load_config(PROJECT)
    config = dataclasses.replace(
        config,
        database=DatabaseSection(url=f"sqlite:///{tmp_path / 'helpdesk.sqlite3'}"),
        relay=dataclasses.replace(config.relay, queue=tmp_path / "outbox"),
        app=dataclasses.replace(config.app, undeliverable=tmp_path / "undeliverable"),
    )
    # The world swaps in its own transport, clock and Message-IDs.
    return lambda: build_app(config, transport=FunctionTransport())


def test_a_ticket_lives_in_the_database(
    mail_world: World, people: People, open_ticket: OpenTicket, escalate: Escalate
) -> None:
    assert isinstance(mail_world.app.states, SqlStateStore)
    open_ticket(1)
    open_ticket(2, customer=people.bob, subject="Lost my password")
    people.agent1.send(ticket(1), subject="Re: [Ticket #1] Printer on fire", body="Unplug it.")
    people.agent1.expect(subject="It is yours")
    people.alice.expect(body="Unplug it.")
    mail_world.expect_state(MODULE, "ticket-1", "WAITING_CUSTOMER")
    mail_world.expect_state(MODULE, "ticket-2", "NEW")
    with mail_world.app.database.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT number, customer, agent FROM helpdesk_tickets ORDER BY number")
        ).all()
    assert [tuple(row) for row in rows] == [
        (1, "alice@example.org", "agent1@staff.example.org"),
        (2, "bob@example.org", None),
    ]
    mail_world.clock.advance(hours=4)
    escalate()
    people.manager.expect(subject="[Ticket #2] Nobody has taken it")
    mail_world.clock.advance(hours=4)
    assert escalate() == []
    people.manager.expect_no_mail()


def test_cron_runs_the_check_from_the_project_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``python -m app.escalation PROJECT``, as the README tells cron to run it."""
    shutil.copytree(PROJECT / "app", tmp_path / "app")
    # The copy's relay points at a port where nothing listens: what it sends waits
    # in the outbox for the server's relay to retry, as it would in production.
    toml = (PROJECT / "mailsim.toml").read_text(encoding="utf-8")
    (tmp_path / "mailsim.toml").write_text(
        toml + '\n[relay]\nhost = "127.0.0.1"\nport = 9\ntimeout = "5s"\n', encoding="utf-8"
    )
    (tmp_path / "run").mkdir()  # made by `mailsim db upgrade` / `mailsim serve` in production
    config = load_config(tmp_path)
    server = build_app(config, transport=FunctionTransport())
    model = importlib.import_module("app.model")  # the copy's, put first by build_app
    with server.bound():
        five_hours_ago = datetime.now(UTC) - timedelta(hours=5)
        model.open_ticket("alice@example.org", "Printer on fire", "<1@example.org>", five_hours_ago)
        model.open_ticket("bob@example.org", "Password", "<2@example.org>", datetime.now(UTC))
    escalation = importlib.import_module("app.escalation")
    assert escalation.main([str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"escalated ticket 1: unclaimed since {five_hours_ago}"
    ]
    waiting = DurableOutbox(tmp_path / "run" / "outbox").items()
    assert [item.envelope.recipients for item in waiting] == [("manager@staff.example.org",)]
    assert escalation.main([str(tmp_path)]) == 0  # the next run: nothing new
    assert capsys.readouterr().out == ""
