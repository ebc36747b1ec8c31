"""Tests for mailsim_runtime.confirm: the engine on a fake clock, and every storage."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import mailsim_runtime.db
import pytest
import sqlalchemy as sa
from mailsim_runtime.confirm import (
    ConfirmationEngine,
    ConfirmationStorage,
    MemoryConfirmationStorage,
    PendingConfirmation,
    SqlConfirmationStorage,
)
from mailsim_runtime.mail import MailRequest
from mailsim_runtime.relay import Relay
from mailsim_runtime.transport import FunctionTransport
from mailsim_runtime.view import Views

TEMPLATES = Path(__file__).resolve().parent.parent / "data" / "templates"
START = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
LIFETIME = timedelta(days=3)

# CRLF line ends, a folded header and 8-bit bytes that are not UTF-8: "verbatim" means
# exactly these bytes come back.
ORIGINAL = (
    b"From: Ada Lovelace <Ada@Example.org>\r\n"
    b"To: python-subscribe@lists.example.com\r\n"
    b"Subject: subscribe\r\n"
    b"Message-ID: <subscribe-1@example.org>\r\n"
    b"X-Folded: one\r\n two\r\n"
    b"Content-Type: text/plain; charset=latin-1\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Please let me in. Caf\xe9.\r\n"
)


class FakeClock:
    """A clock that stands still until the test moves it."""

    def __init__(self, start: datetime = START) -> None:
        self.moment = start

    def now(self) -> datetime:
        return self.moment

    def advance(self, by: timedelta) -> None:
        self.moment += by


class Secrets:
    """Reproducible secrets: s1, s2, ..."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> str:
        self.count += 1
        return f"s{self.count}"


def incoming(sender: str = "Ada@Example.org", original: bytes = ORIGINAL) -> MailRequest:
    return MailRequest("192.0.2.1", sender, "python-subscribe@lists.example.com", original)


def make_sql_storage(url: str) -> SqlConfirmationStorage:
    """A storage over *url*, with the tables created as the migrations would."""
    schema_engine = sa.create_engine(url)
    mailsim_runtime.db.metadata.create_all(schema_engine)
    schema_engine.dispose()
    return SqlConfirmationStorage(url)


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def storage(request: pytest.FixtureRequest) -> Iterator[ConfirmationStorage]:
    """Each storage in turn. The SQL ones use the same URL fixtures ``db_url`` does
    (``db_url`` is parametrized itself, so it cannot be requested per parameter)."""
    if request.param == "memory":
        yield MemoryConfirmationStorage()
        return
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    sql = make_sql_storage(url)
    yield sql
    sql.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def engine(storage: ConfirmationStorage, clock: FakeClock) -> ConfirmationEngine:
    return ConfirmationEngine(storage, clock=clock, lifetime=LIFETIME)


# Register and verify -----------------------------------------------------------


def test_verify_returns_the_original_message_bytes(engine: ConfirmationEngine) -> None:
    pending = engine.register("python", incoming())
    confirmed = engine.verify("python", "Ada@Example.org", pending.secret)
    assert confirmed is not None
    assert confirmed.original == ORIGINAL
    assert confirmed.sender == "ada@example.org"
    assert confirmed["Subject"] == "subscribe"


def test_register_keys_on_the_lower_cased_sender(engine: ConfirmationEngine) -> None:
    pending = engine.register("python", incoming("Ada@Example.ORG"))
    assert pending.sender == "ada@example.org"
    assert pending.target == "python"
    assert pending.created == START
    assert pending.expires == START + LIFETIME
    assert engine.verify("python", "ADA@example.org", pending.secret) is not None


def test_a_confirmation_is_used_once(engine: ConfirmationEngine) -> None:
    pending = engine.register("python", incoming())
    assert engine.verify("python", "ada@example.org", pending.secret) is not None
    assert engine.verify("python", "ada@example.org", pending.secret) is None
    assert engine.storage.all() == []


@pytest.mark.parametrize(
    ("target", "sender", "secret"),
    [
        ("python", "ada@example.org", "wrong"),
        ("python", "ada@example.org", ""),
        ("python", "grace@example.org", None),
        ("ruby", "ada@example.org", None),
    ],
    ids=["wrong-secret", "empty-secret", "wrong-sender", "wrong-target"],
)
def test_a_wrong_secret_sender_or_target_confirms_nothing(
    engine: ConfirmationEngine, target: str, sender: str, secret: str | None
) -> None:
    pending = engine.register("python", incoming())
    assert engine.verify(target, sender, pending.secret if secret is None else secret) is None
    # A failed guess must not cancel the real confirmation.
    assert engine.verify("python", "ada@example.org", pending.secret) is not None


def test_a_secret_registered_for_someone_else_does_not_work(engine: ConfirmationEngine) -> None:
    mine = engine.register("python", incoming("ada@example.org"))
    engine.register("python", incoming("grace@example.org"))
    assert engine.verify("python", "grace@example.org", mine.secret) is None


def test_secrets_are_compared_in_constant_time(
    engine: ConfirmationEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[object, object]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    pending = engine.register("python", incoming())
    assert engine.verify("python", "ada@example.org", "guess") is None
    assert calls == [(pending.secret.encode(), b"guess")]


# Expiry ------------------------------------------------------------------------


def test_valid_until_just_before_the_lifetime_ends(
    engine: ConfirmationEngine, clock: FakeClock
) -> None:
    pending = engine.register("python", incoming())
    clock.advance(LIFETIME - timedelta(microseconds=1))
    assert engine.verify("python", "ada@example.org", pending.secret) is not None


def test_expired_at_exactly_the_lifetime(engine: ConfirmationEngine, clock: FakeClock) -> None:
    pending = engine.register("python", incoming())
    clock.advance(LIFETIME)
    assert engine.verify("python", "ada@example.org", pending.secret) is None
    assert engine.storage.all() == []  # an expired confirmation is dropped when tried


def test_lifetime_is_configurable(storage: ConfirmationStorage, clock: FakeClock) -> None:
    engine = ConfirmationEngine(storage, clock=clock, lifetime=timedelta(hours=1))
    pending = engine.register("python", incoming())
    assert pending.expires == START + timedelta(hours=1)
    clock.advance(timedelta(hours=1))
    assert engine.verify("python", "ada@example.org", pending.secret) is None


def test_expire_drops_expired_confirmations_and_counts_them(
    engine: ConfirmationEngine, clock: FakeClock
) -> None:
    engine.register("python", incoming("a@example.org"))
    engine.register("python", incoming("b@example.org"))
    clock.advance(timedelta(days=1))
    late = engine.register("python", incoming("c@example.org"))
    clock.advance(LIFETIME - timedelta(days=1))  # a and b at exactly their lifetime
    assert engine.expire() == 2
    assert [p.secret for p in engine.storage.all()] == [late.secret]
    assert engine.expire() == 0
    assert engine.verify("python", "c@example.org", late.secret) is not None


def test_a_non_positive_lifetime_is_refused(storage: ConfirmationStorage) -> None:
    with pytest.raises(ValueError, match="positive"):
        ConfirmationEngine(storage, lifetime=timedelta(0))


# Replace and cancel ------------------------------------------------------------


def test_registering_again_replaces_the_earlier_confirmation(
    engine: ConfirmationEngine, clock: FakeClock
) -> None:
    first = engine.register("python", incoming(original=ORIGINAL))
    clock.advance(timedelta(hours=1))
    second_message = ORIGINAL.replace(b"subscribe-1", b"subscribe-2")
    second = engine.register("python", incoming("ADA@example.org", second_message))
    assert first.secret != second.secret
    assert engine.storage.all() == [second]
    assert engine.verify("python", "ada@example.org", first.secret) is None
    confirmed = engine.verify("python", "ada@example.org", second.secret)
    assert confirmed is not None and confirmed.original == second_message


def test_other_targets_and_senders_are_kept_apart(engine: ConfirmationEngine) -> None:
    engine.register("python", incoming("ada@example.org"))
    engine.register("ruby", incoming("ada@example.org"))
    engine.register("python", incoming("grace@example.org"))
    assert len(engine.storage.all()) == 3


def test_cancel_forgets_the_pending_confirmation(engine: ConfirmationEngine) -> None:
    pending = engine.register("python", incoming())
    other = engine.register("ruby", incoming())
    engine.cancel("python", "ADA@example.org")
    assert engine.verify("python", "ada@example.org", pending.secret) is None
    assert engine.storage.all() == [other]
    engine.cancel("python", "ada@example.org")  # nothing left: not an error


def test_the_null_sender_cannot_be_asked_to_confirm(engine: ConfirmationEngine) -> None:
    with pytest.raises(ValueError, match="null sender"):
        engine.register("python", incoming(sender=""))


# Secrets and addresses ----------------------------------------------------------


def test_default_secrets_are_long_random_hex(storage: ConfirmationStorage) -> None:
    engine = ConfirmationEngine(storage)
    made = {engine.register("python", incoming(f"u{i}@example.org")).secret for i in range(20)}
    assert len(made) == 20
    assert all(len(secret) == 32 and int(secret, 16) >= 0 for secret in made)


def test_secrets_can_be_made_reproducible(storage: ConfirmationStorage, clock: FakeClock) -> None:
    engine = ConfirmationEngine(storage, clock=clock, new_secret=Secrets())
    assert engine.register("python", incoming("a@example.org")).secret == "s1"
    assert engine.register("python", incoming("b@example.org")).secret == "s2"


def test_a_secret_that_would_break_the_address_is_refused(storage: ConfirmationStorage) -> None:
    engine = ConfirmationEngine(storage, new_secret=lambda: "x@evil.example")
    with pytest.raises(ValueError, match="letters and digits"):
        engine.register("python", incoming())
    assert storage.all() == []


def test_address_from_a_pending_confirmation_or_its_secret(
    storage: ConfirmationStorage, clock: FakeClock
) -> None:
    engine = ConfirmationEngine(storage, clock=clock, new_secret=Secrets())
    pending = engine.register("python", incoming())
    expected = "python-confirm-s1@lists.example.com"
    assert engine.address(pending, "lists.example.com") == expected
    assert engine.address("s1", "lists.example.com") == expected
    with pytest.raises(LookupError):
        engine.address("nope", "lists.example.com")


# Sending -----------------------------------------------------------------------


def sent_message(transport: FunctionTransport) -> EmailMessage:
    assert len(transport.sent) == 1
    parsed = message_from_bytes(transport.sent[0].message, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


@pytest.fixture
def transport() -> FunctionTransport:
    return FunctionTransport()


@pytest.fixture
def relay(transport: FunctionTransport, clock: FakeClock) -> Relay:
    return Relay(transport, hostname="lists.example.com", clock=clock)


def test_send_mails_the_sender_the_confirm_address(
    storage: ConfirmationStorage, clock: FakeClock, relay: Relay, transport: FunctionTransport
) -> None:
    engine = ConfirmationEngine(storage, clock=clock, new_secret=Secrets())
    pending = engine.send(
        relay,
        Views([TEMPLATES]),
        target="python",
        message=incoming("Ada@Example.org"),
        template="confirm.txt",
        host="lists.example.com",
        from_="{{ target }}-owner@lists.example.com",
        subject="Confirm your subscription to {{ target }}",
        variables={"signature": "-- the python list"},
    )
    assert pending.secret == "s1"
    assert transport.sent[0].envelope.recipients == ("Ada@Example.org",)
    message = sent_message(transport)
    assert message["To"] == "Ada@Example.org"
    assert message["From"] == "python-owner@lists.example.com"
    assert message["Subject"] == "Confirm your subscription to python"
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["In-Reply-To"] == "<subscribe-1@example.org>"
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    assert "python-confirm-s1@lists.example.com" in text
    assert "asked to join python as Ada@Example.org" in text
    assert "-- the python list" in text
    # ... and the address it names confirms the message.
    confirmed = engine.verify("python", "ada@example.org", "s1")
    assert confirmed is not None and confirmed.original == ORIGINAL


def test_send_with_an_html_template_makes_an_html_mail(
    storage: ConfirmationStorage, clock: FakeClock, relay: Relay, transport: FunctionTransport
) -> None:
    engine = ConfirmationEngine(storage, clock=clock, new_secret=Secrets())
    engine.send(
        relay,
        Views([TEMPLATES]),
        target="python",
        message=incoming(),
        template="confirm.html",
        host="lists.example.com",
        from_="owner@lists.example.com",
        subject="Confirm",
        variables={"signature": "<the list>"},
    )
    message = sent_message(transport)
    assert message.get_content_type() == "text/html"
    html = message.get_content()
    assert 'href="mailto:python-confirm-s1@lists.example.com"' in html
    assert "&lt;the list&gt;" in html


def test_send_does_not_treat_the_sender_as_template_text(
    storage: ConfirmationStorage, clock: FakeClock, relay: Relay, transport: FunctionTransport
) -> None:
    # Braces are legal in a local part; they must arrive as written, not be evaluated.
    engine = ConfirmationEngine(storage, clock=clock)
    engine.send(
        relay,
        Views([TEMPLATES]),
        target="python",
        message=incoming("{{7*7}}@example.org"),
        template="confirm.txt",
        host="lists.example.com",
        from_="owner@lists.example.com",
        subject="Confirm",
        variables={"signature": ""},
    )
    assert transport.sent[0].envelope.recipients == ("{{7*7}}@example.org",)
    assert sent_message(transport)["To"] == "{{7*7}}@example.org"


# Storage contract (memory, SQLite, PostgreSQL) -----------------------------------


def pending(
    secret: str,
    target: str = "python",
    sender: str = "ada@example.org",
    created: datetime = START,
    message: bytes = ORIGINAL,
) -> PendingConfirmation:
    return PendingConfirmation(secret, target, sender, message, created, created + LIFETIME)


def test_storage_round_trips_every_field(storage: ConfirmationStorage) -> None:
    stored = pending("abc")
    storage.add(stored)
    assert storage.by_secret("abc") == stored
    assert storage.find("python", "ada@example.org") == stored
    found = storage.find("python", "ada@example.org")
    assert found is not None
    assert found.message == ORIGINAL and isinstance(found.message, bytes)
    assert found.created.tzinfo is not None and found.created.utcoffset() == timedelta(0)


def test_storage_keeps_times_in_other_zones_as_the_same_instant(
    storage: ConfirmationStorage,
) -> None:
    from datetime import timezone

    elsewhere = START.astimezone(timezone(timedelta(hours=-5)))
    storage.add(pending("abc", created=elsewhere))
    found = storage.by_secret("abc")
    assert found is not None and found.created == START and found.created.tzinfo == UTC


def test_storage_add_replaces_the_same_target_and_sender(storage: ConfirmationStorage) -> None:
    storage.add(pending("one"))
    storage.add(pending("two", created=START + timedelta(minutes=1)))
    assert [p.secret for p in storage.all()] == ["two"]
    assert storage.by_secret("one") is None


def test_storage_find_misses(storage: ConfirmationStorage) -> None:
    storage.add(pending("abc"))
    assert storage.find("ruby", "ada@example.org") is None
    assert storage.find("python", "grace@example.org") is None
    assert storage.by_secret("nope") is None


def test_storage_remove_says_whether_it_removed(storage: ConfirmationStorage) -> None:
    storage.add(pending("abc"))
    assert storage.remove("abc") is True
    assert storage.remove("abc") is False
    assert storage.all() == []


def test_storage_remove_expired_counts_and_keeps_the_rest(storage: ConfirmationStorage) -> None:
    storage.add(pending("old", sender="a@example.org"))
    storage.add(pending("new", sender="b@example.org", created=START + timedelta(days=1)))
    assert storage.remove_expired(START + LIFETIME - timedelta(microseconds=1)) == 0
    assert storage.remove_expired(START + LIFETIME) == 1
    assert [p.secret for p in storage.all()] == ["new"]


def test_storage_all_is_oldest_first(storage: ConfirmationStorage) -> None:
    storage.add(pending("b", sender="b@example.org", created=START + timedelta(hours=1)))
    storage.add(pending("a", sender="a@example.org"))
    assert [p.secret for p in storage.all()] == ["a", "b"]


# SQL only ----------------------------------------------------------------------


def test_sql_confirmations_survive_a_new_storage(db_url: str) -> None:
    clock = FakeClock()
    first = make_sql_storage(db_url)
    registered = ConfirmationEngine(first, clock=clock).register("python", incoming())
    first.close()
    second = SqlConfirmationStorage(sa.create_engine(db_url))
    try:
        confirmed = ConfirmationEngine(second, clock=clock).verify(
            "python", "ada@example.org", registered.secret
        )
        assert confirmed is not None and confirmed.original == ORIGINAL
    finally:
        second.engine.dispose()


def test_sql_refuses_values_longer_than_their_columns(db_url: str) -> None:
    storage = make_sql_storage(db_url)
    try:
        with pytest.raises(ValueError, match="target is 300 characters"):
            storage.add(pending("abc", target="t" * 300))
        assert storage.all() == []
    finally:
        storage.close()
