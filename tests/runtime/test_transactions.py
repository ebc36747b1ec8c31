"""A handler's own writes join its conversation's transaction instead of waiting for it."""

import time

import sqlalchemy as sa
from mailsim_runtime import App, MailRequest, db
from mailsim_runtime.confirm import ConfirmationEngine, SqlConfirmationStorage
from mailsim_runtime.state import SqlStateStore
from sample_handlers import ledger


def test_handler_writes_commit_with_the_state_change(db_url: str) -> None:
    engine = db.create_engine(db_url, busy_timeout=2)
    db.upgrade(engine)
    ledger.metadata.create_all(engine)
    app = App(
        [ledger],
        hostname="ledger.example.com",
        states=SqlStateStore(engine),
        database=engine,
        confirmations=ConfirmationEngine(SqlConfirmationStorage(engine)),
    )
    started = time.monotonic()
    raw = b"From: a@example.org\r\nMessage-ID: <1@example.org>\r\n\r\nhi\r\n"
    delivery = app.deliver(MailRequest(None, "a@example.org", "apple@ledger.example.com", raw))
    assert delivery.errors == []
    assert time.monotonic() - started < 1.5  # never waited for the busy timeout
    assert app.states.get(ledger.__name__, "a@example.org") == "DONE"
    assert app.settings["count"] == 1
    with engine.connect() as connection:
        assert connection.execute(sa.select(ledger.entries.c.word)).scalars().all() == ["apple"]
        assert connection.execute(sa.select(db.confirmations.c.sender)).scalars().all() == [
            "a@example.org"
        ]
    engine.dispose()
