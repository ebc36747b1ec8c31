"""A Lamson-style handler module gives the same conversation on every state store."""

from collections.abc import Iterator

import pytest
import sample_handlers.lamson_sample as sample
from mailsim_runtime import App
from mailsim_runtime.mail import MailRequest
from mailsim_runtime.state import MemoryStateStore, SqlStateStore, StateStore
from mailsim_runtime.transport import FunctionTransport


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store(request: pytest.FixtureRequest) -> Iterator[StateStore]:
    if request.param == "memory":
        yield MemoryStateStore()
        return
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    sql = SqlStateStore.from_url(url)
    yield sql
    sql.close()


def converse(store: StateStore) -> tuple[list[tuple[str, str, str]], FunctionTransport, App]:
    transport = FunctionTransport()
    app = App([sample], states=store, transport=transport, hostname="example.com")
    script = [
        ("alice@example.org", "hello@example.com"),
        ("bob@example.org", "hello@example.com"),
        ("alice@example.org", "again@example.com"),
        ("alice@example.org", "bye@example.com"),
        ("alice@example.org", "back@example.com"),  # END runs START now: a new welcome
    ]
    transitions = []
    for number, (sender, recipient) in enumerate(script):
        raw = (
            f"From: {sender}\r\nTo: {recipient}\r\nSubject: n{number}\r\n"
            f"Message-ID: <{number}@example.org>\r\n\r\nhi\r\n"
        ).encode()
        delivery = app.deliver(MailRequest("127.0.0.1", sender, recipient, raw))
        assert delivery.errors == []
        transitions += [(c.key, c.from_state, c.to_state) for c in delivery.transitions]
    return transitions, transport, app


def test_the_conversation_is_the_same_on_every_store(store: StateStore) -> None:
    transitions, transport, app = converse(store)
    assert transitions == [
        ("alice@example.org", "START", "NEW_USER"),
        ("bob@example.org", "START", "NEW_USER"),
        ("alice@example.org", "NEW_USER", "NEW_USER"),
        ("alice@example.org", "NEW_USER", "END"),
        ("alice@example.org", "END", "NEW_USER"),
    ]
    assert store.get(sample.__name__, "alice@example.org") == "NEW_USER"
    assert {(r.key, r.state) for r in store.records()} == {
        ("alice@example.org", "NEW_USER"),
        ("bob@example.org", "NEW_USER"),
    }
    welcomes = [s.envelope.recipients for s in transport.sent]
    assert welcomes == [("alice@example.org",), ("bob@example.org",), ("alice@example.org",)]
    # the stateless logger saw every message
    assert [address for _, address in app.settings["seen"]] == [
        "hello",
        "hello",
        "again",
        "bye",
        "back",
    ]
