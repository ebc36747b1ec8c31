"""The SpamBayes filter: tokenizer, SQL-backed training and scoring, ``@spam_filter``.

The corpus in ``tests/data/spam`` was written for these tests: 30 ham and 30 spam
to train on, and a held-out set of 12 + 12 the filter never sees in training.
"""

from __future__ import annotations

import mailbox
import threading
import time
import types
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mailsim_runtime import App, MailRequest, db
from mailsim_runtime.routing import handler_spec
from mailsim_runtime.spam import (
    NoSpamFilterError,
    SpamFilter,
    UnknownQueueError,
    message_tokens,
    spam_filter,
)

CORPUS = Path(__file__).resolve().parent.parent / "data" / "spam"
HELD_OUT = CORPUS / "heldout"


def _message(
    body: str = "the budget spreadsheet is attached",
    *,
    subject: str = "Quarterly planning meeting",
    sender: str = "Bob Smith <bob.smith@example.org>",
    cte: str | None = None,
    html: str | None = None,
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "Team <team@lists.example.com>"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@example.org>"
    if cte:
        msg.set_content(body, cte=cte)
    else:
        msg.set_content(body)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    return msg


def _eml(folder: Path) -> list[bytes]:
    return [path.read_bytes() for path in sorted(folder.glob("*.eml"))]


def _tables(url: str) -> None:
    engine = sa.create_engine(url)
    try:
        db.metadata.create_all(engine)
    finally:
        engine.dispose()


def _snapshot(spam: SpamFilter) -> tuple[dict[str, tuple[int, int]], tuple[int, int]]:
    with spam.engine.connect() as conn:
        words = db.spam_words
        rows = conn.execute(sa.select(words.c.word, words.c.spam_count, words.c.ham_count))
        return {word: (s, h) for word, s, h in rows}, spam.counts


@pytest.fixture
def empty_filter(db_url: str) -> Iterator[SpamFilter]:
    """An untrained filter on SQLite and on PostgreSQL."""
    _tables(db_url)
    spam = SpamFilter(db_url)
    yield spam
    spam.close()


@pytest.fixture
def trained(empty_filter: SpamFilter) -> SpamFilter:
    """A filter trained on the corpus's 30 ham and 30 spam."""
    assert empty_filter.train_folder(CORPUS / "ham", is_spam=False) == 30
    assert empty_filter.train_folder(CORPUS / "spam", is_spam=True) == 30
    return empty_filter


@pytest.fixture
def sqlite_filter(sqlite_url: str) -> Iterator[SpamFilter]:
    """A filter on SQLite trained on the corpus, for tests about the decorator."""
    _tables(sqlite_url)
    spam = SpamFilter(sqlite_url)
    spam.train_folder(CORPUS / "ham", is_spam=False)
    spam.train_folder(CORPUS / "spam", is_spam=True)
    yield spam
    spam.close()


# Tokenizer ------------------------------------------------------------------


def test_tokens_cover_subject_body_and_addresses() -> None:
    tokens = message_tokens(_message())
    for expected in (
        "subject:quarterly",
        "subject:planning",
        "budget",
        "spreadsheet",
        "from:email name:bob.smith",
        "from:email addr:example.org",
        "from:name:bob",
        "to:email addr:lists.example.com",
        "content-type:text/plain",
        "header:message-id",
    ):
        assert expected in tokens
    assert len(tokens) == len(set(tokens))


def test_tokens_are_the_same_for_every_kind_of_input() -> None:
    msg = _message()
    raw = msg.as_bytes()
    request = MailRequest("127.0.0.1", "bob.smith@example.org", "team@lists.example.com", raw)
    assert message_tokens(msg) == message_tokens(raw) == message_tokens(request)


def test_base64_and_non_ascii_bodies_are_decoded() -> None:
    body = "Grüße aus München und schönes Wochenende wünscht Jürgen"
    msg = _message(body, subject="Réunion du comité", cte="base64")
    assert "München".encode() not in msg.as_bytes()  # the body really is encoded
    tokens = message_tokens(msg.as_bytes())
    for expected in ("grüße", "münchen", "schönes", "wünscht", "jürgen"):
        assert expected in tokens
    assert "subject:réunion" in tokens
    assert "subject:comité" in tokens
    assert "content-transfer-encoding:base64" in tokens


def test_quoted_printable_body_is_decoded() -> None:
    msg = _message("Le café était fermé à cause de la grève", cte="quoted-printable")
    tokens = message_tokens(msg.as_bytes())
    assert {"café", "était", "fermé", "grève"} <= set(tokens)


def test_html_is_stripped_and_urls_become_host_tokens() -> None:
    html = (
        "<html><head><style>p { color: red }</style></head><body><p>Claim your <b>prize</b> "
        '<a href="http://win.prizes.example/claim?id=1">here</a> or at '
        "http://203.0.113.9/x &amp; today</p></body></html>"
    )
    tokens = message_tokens(_message("plain words", html=html))
    assert {"claim", "your", "prize", "here", "today"} <= set(tokens)
    assert {"url:win.prizes.example", "url:prizes.example", "url:ip"} <= set(tokens)
    assert "content-type:text/html" in tokens
    assert not [t for t in tokens if "<" in t or ">" in t or "href" in t]


@pytest.mark.parametrize(
    "body", ["<style>" * 28_000, "<a " * 60_000, "http://" * 28_000, ("<" + "x" * 1999) * 100]
)
def test_hostile_html_tokenizes_quickly(body: str) -> None:
    msg = _message("text", html=body)
    started = time.perf_counter()
    message_tokens(msg.as_bytes())
    assert time.perf_counter() - started < 2.0


GARBAGE = [
    b"",
    b"\x00\xff\xfe\x00 not a message at all \x00",
    b"no header here, just words\n",
    b"From: <<<@@@>>>, =?utf-8?b?!!!?=\nTo: ,,,;;;\nSubject: caf\xe9 \xff\xfe\n\nbody\n",
    b"Content-Type: text/plain; charset=x-no-such-charset\n\nsome words here\n",
    b"Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\n!!!not base64@@@\n",
    b"Content-Type: multipart/mixed\n\n--nowhere\nno boundary parameter\n",
    b'Content-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: text/html\n\n<a href=',
    b"Subject: " + b"x" * 5000 + b"\n\n" + b"y" * 100_000 + b"\n",
    b"Subject: nul\x00inside\n\nword\x00word \xed\xa0\x80 surrogate\n",
]


@pytest.mark.parametrize("raw", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_does_not_raise_and_gives_storable_tokens(raw: bytes) -> None:
    tokens = message_tokens(raw)
    assert isinstance(tokens, list)
    for token in tokens:
        assert token
        assert len(token) <= 200
        assert "\x00" not in token
        token.encode("utf-8")  # no lone surrogates: the database must accept it


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_any_bytes_tokenize(raw: bytes) -> None:
    for token in message_tokens(b"Subject: x\nContent-Type: text/html\n\n" + raw):
        token.encode("utf-8")
    message_tokens(raw)


# Training and scoring on the corpus -----------------------------------------


def test_held_out_messages_are_classified(trained: SpamFilter) -> None:
    assert trained.counts == (30, 30)
    verdicts: dict[str, list[tuple[str, float, str]]] = {"ham": [], "spam": []}
    started = time.perf_counter()
    for kind in ("ham", "spam"):
        for path in sorted((HELD_OUT / kind).glob("*.eml")):
            raw = path.read_bytes()
            verdicts[kind].append((path.name, trained.score(raw), trained.classify(raw)))
    scored = sum(len(v) for v in verdicts.values())
    per_message = (time.perf_counter() - started) / scored / 2  # score + classify
    right = sum(v[2] == kind for kind, vs in verdicts.items() for v in vs)
    unsure = sum(v[2] == "unsure" for vs in verdicts.values() for v in vs)
    false_positives = [v for v in verdicts["ham"] if v[2] == "spam"]
    false_negatives = [v for v in verdicts["spam"] if v[2] == "ham"]
    print(
        f"\n{trained.engine.dialect.name}: held-out {scored} messages: "
        f"{right} right ({right / scored:.0%}), {unsure} unsure, "
        f"{len(false_positives)} false positives, {len(false_negatives)} false negatives; "
        f"{per_message * 1000:.1f} ms per score"
    )
    for kind, vs in verdicts.items():
        for name, value, verdict in vs:
            print(f"  {kind:4} {name}: {value:.3f} {verdict}")
    assert scored == 24
    assert not false_positives, "ham marked as spam"
    assert right / scored >= 0.9
    # Even where a verdict is unsure, every spam must outscore every ham.
    assert min(v[1] for v in verdicts["spam"]) > max(v[1] for v in verdicts["ham"])


def test_untrained_filter_is_unsure(empty_filter: SpamFilter) -> None:
    raw = _eml(HELD_OUT / "spam")[0]
    assert empty_filter.counts == (0, 0)
    assert empty_filter.score(raw) == 0.5
    assert empty_filter.classify(raw) == "unsure"
    assert not empty_filter.is_spam(raw)


def test_a_new_filter_on_the_same_database_scores_the_same(
    trained: SpamFilter, db_url: str
) -> None:
    again = SpamFilter(db_url)
    try:
        assert again.counts == trained.counts
        for raw in _eml(HELD_OUT / "ham") + _eml(HELD_OUT / "spam"):
            assert again.score(raw) == trained.score(raw)
    finally:
        again.close()


def test_training_moves_the_score(trained: SpamFilter) -> None:
    raw = _eml(HELD_OUT / "spam")[0]
    before = trained.score(raw)
    trained.train(raw, is_spam=True)
    assert trained.score(raw) > before
    assert trained.counts == (30, 31)


def test_untrain_restores_the_counts(trained: SpamFilter) -> None:
    before = _snapshot(trained)
    novel = _message("zyxwvut qwertyuiop never-seen-before words", subject="unique zzzz")
    for is_spam in (True, False):
        trained.train(novel, is_spam=is_spam)
        trained.train(_eml(HELD_OUT / "ham")[0], is_spam=is_spam)
        assert _snapshot(trained) != before
        trained.untrain(novel, is_spam=is_spam)
        trained.untrain(_eml(HELD_OUT / "ham")[0], is_spam=is_spam)
        assert _snapshot(trained) == before  # counts back, and the new words gone


def test_untraining_the_wrong_kind_never_makes_counts_negative(
    empty_filter: SpamFilter,
) -> None:
    ham, spam = _eml(CORPUS / "ham")[0], _eml(CORPUS / "spam")[0]
    empty_filter.train(ham, is_spam=False)
    empty_filter.train(spam, is_spam=True)
    empty_filter.untrain(ham, is_spam=True)  # pilot error: it was trained as ham
    empty_filter.untrain(spam, is_spam=False)  # and this one as spam
    rows, counts = _snapshot(empty_filter)
    assert counts == (0, 0)
    assert all(s >= 0 and h >= 0 for s, h in rows.values())
    only_ham = set(message_tokens(ham)) - set(message_tokens(spam))
    only_spam = set(message_tokens(spam)) - set(message_tokens(ham))
    assert {rows[token] for token in only_ham} == {(0, 1)}
    assert {rows[token] for token in only_spam} == {(1, 0)}
    assert not set(rows) - only_ham - only_spam  # the shared ones went to 0/0 and away


def test_untrain_without_training_is_refused(empty_filter: SpamFilter) -> None:
    with pytest.raises(ValueError, match="cannot untrain spam"):
        empty_filter.untrain(_message(), is_spam=True)
    assert _snapshot(empty_filter) == ({}, (0, 0))  # the failed transaction left nothing


def test_hostile_tokens_are_stored(empty_filter: SpamFilter) -> None:
    for raw in GARBAGE:
        empty_filter.train(raw, is_spam=True)
        assert empty_filter.score(raw) >= 0.5
    assert empty_filter.counts == (0, len(GARBAGE))


def test_scoring_reads_only_the_messages_rows_in_chunks(trained: SpamFilter) -> None:
    words = " ".join(f"word{n:05d}" for n in range(1200))  # > 2 chunks of tokens
    msg = _message(words)
    trained.train(msg, is_spam=False)
    statements: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        statements.append((statement, params))

    sa.event.listen(trained.engine, "before_cursor_execute", record)
    try:
        trained.score(msg)
    finally:
        sa.event.remove(trained.engine, "before_cursor_execute", record)
    word_queries = [s for s, _ in statements if "mailsim_spam_words" in s]
    assert len(word_queries) == 3  # 1200+ tokens in chunks of 500
    assert all(" IN " in s.upper() for s in word_queries)


def test_concurrent_trainers_lose_no_counts(empty_filter: SpamFilter, db_url: str) -> None:
    messages = _eml(CORPUS / "ham")[:6]
    filters = [SpamFilter(db_url) for _ in range(4)]
    errors: list[BaseException] = []

    def work(spam: SpamFilter) -> None:
        try:
            for raw in messages:
                spam.train(raw, is_spam=False)
        except BaseException as error:  # reported below, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(f,)) for f in filters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for spam in filters:
        spam.close()
    assert not errors
    assert empty_filter.counts == (24, 0)
    rows, _ = _snapshot(empty_filter)
    token = message_tokens(messages[0])[0]
    expected = 4 * sum(token in message_tokens(raw) for raw in messages)
    assert rows[token] == (0, expected)


# Folders --------------------------------------------------------------------


def test_train_folder_reads_maildir_mbox_and_eml(empty_filter: SpamFilter, tmp_path: Path) -> None:
    ham, spam = _eml(CORPUS / "ham"), _eml(CORPUS / "spam")

    maildir = mailbox.Maildir(tmp_path / "Maildir", create=True)
    for raw in ham[:3]:
        maildir.add(raw)
    moved = mailbox.MaildirMessage(ham[3])
    moved.set_subdir("cur")
    maildir.add(moved)
    (tmp_path / "Maildir" / ".Archive").mkdir()  # a subfolder is not trained on
    box = mailbox.mbox(tmp_path / "spam.mbox", create=True)
    for raw in spam[:5]:
        box.add(raw)
    box.close()
    folder = tmp_path / "eml"
    folder.mkdir()
    for n, raw in enumerate(spam[5:7]):
        (folder / f"m{n}.eml").write_bytes(raw)
    (folder / "notes.txt").write_text("not a message")

    assert empty_filter.train_folder(tmp_path / "Maildir", is_spam=False) == 4
    assert empty_filter.train_folder(tmp_path / "spam.mbox", is_spam=True) == 5
    assert empty_filter.train_folder(str(folder), is_spam=True) == 2
    assert empty_filter.counts == (4, 7)
    assert empty_filter.score(spam[0]) > empty_filter.score(ham[0])


def test_train_folder_refuses_what_it_cannot_read(empty_filter: SpamFilter, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no Maildir"):
        empty_filter.train_folder(tmp_path / "missing", is_spam=True)
    one = tmp_path / "one.eml"
    one.write_bytes(_eml(CORPUS / "ham")[0])
    with pytest.raises(ValueError, match="not an mbox"):
        empty_filter.train_folder(one, is_spam=False)
    (tmp_path / "empty").mkdir()
    assert empty_filter.train_folder(tmp_path / "empty", is_spam=False) == 0
    assert empty_filter.counts == (0, 0)


def test_filter_needs_its_tables(sqlite_url: str) -> None:
    with pytest.raises(db.SchemaMissingError, match="mailsim db upgrade"):
        SpamFilter(sqlite_url)


def test_cutoffs_are_checked(sqlite_url: str) -> None:
    with pytest.raises(ValueError, match="ham_cutoff"):
        SpamFilter(sqlite_url, spam_cutoff=0.3, ham_cutoff=0.5)


def test_cutoffs_decide_the_verdict(sqlite_filter: SpamFilter) -> None:
    raw = _eml(HELD_OUT / "spam")[0]
    value = sqlite_filter.score(raw)
    sqlite_filter.spam_cutoff = value
    assert sqlite_filter.classify(raw) == "spam"
    assert sqlite_filter.is_spam(raw)
    sqlite_filter.spam_cutoff = min(1.0, value + 1e-9)
    sqlite_filter.ham_cutoff = 0.0
    assert sqlite_filter.classify(raw) == "unsure"
    assert sqlite_filter.evidence(raw)


# The decorator --------------------------------------------------------------

HANDLERS = """
from mailsim_runtime import current_app, route
from mailsim_runtime.spam import spam_filter


@route("(list)@lists.example.org")
def SPAMMER(message, list):
    current_app().settings["spammer"].append(message)


@route("(list)@lists.example.org")
def POSTING(message, list):
    current_app().settings["posted"].append(message)


@route("(list)@lists.example.org")
@spam_filter(next_state=SPAMMER if MOVE else None, **OPTIONS)
def START(message, list):
    current_app().settings["started"].append(message)
    return POSTING
"""


class ListQueue:
    """A queue that keeps what it is given, in a list."""

    def __init__(self) -> None:
        self.items: list[tuple[MailRequest, str]] = []

    def push(self, message: MailRequest, reason: str) -> None:
        self.items.append((message, reason))


def _handlers(*, move: bool = False, **options: Any) -> types.ModuleType:
    """A fresh handler module: START wears ``@spam_filter(**options)``, with
    ``next_state=SPAMMER`` when *move*."""
    module = types.ModuleType(f"spam_handlers_{uuid.uuid4().hex[:8]}")
    module.__dict__.update(OPTIONS=options, MOVE=move)
    exec(compile(HANDLERS, module.__name__, "exec"), module.__dict__)
    return module


def _app(
    module: types.ModuleType, spam: SpamFilter | None, queues: dict[str, Any] | None = None
) -> App:
    return App(
        handlers=[module],
        spam=spam,
        queues=queues,
        settings={"started": [], "posted": [], "spammer": []},
    )


def _request(sender: str, raw: bytes) -> MailRequest:
    return MailRequest("192.0.2.1", sender, "news@lists.example.org", raw)


def test_spam_is_queued_and_moves_on_while_ham_reaches_the_handler(
    sqlite_filter: SpamFilter,
) -> None:
    module = _handlers(move=True, queue="spam")
    queue = ListQueue()
    app = _app(module, sqlite_filter, {"spam": queue})
    spam = _request("Spammer@Bad.Example", _eml(HELD_OUT / "spam")[3])
    ham = _request("Alice@Example.org", _eml(HELD_OUT / "ham")[1])

    delivered = app.deliver(spam)
    assert not delivered.errors
    assert app.states.get(module.__name__, "spammer@bad.example") == "SPAMMER"
    assert [m for m, _ in queue.items] == [spam]
    assert queue.items[0][1].startswith("spam: scored ")
    assert app.settings["started"] == []

    app.deliver(ham)
    assert app.states.get(module.__name__, "alice@example.org") == "POSTING"
    assert app.settings["started"] == [ham]
    assert len(queue.items) == 1

    # The spammer's conversation is now in SPAMMER, which takes what comes next.
    app.deliver(_request("spammer@bad.example", _eml(HELD_OUT / "ham")[0]))
    assert len(app.settings["spammer"]) == 1


def test_decorated_handler_keeps_its_name_and_routes() -> None:
    module = _handlers()
    assert module.START.__name__ == "START"
    spec = handler_spec(module.START)
    assert spec is not None
    assert spec.patterns == [("(list)@lists.example.org", {})]


def test_without_next_state_or_queue_spam_stays_put(sqlite_filter: SpamFilter) -> None:
    module = _handlers()
    app = _app(module, sqlite_filter)
    delivered = app.deliver(_request("s@bad.example", _eml(HELD_OUT / "spam")[0]))
    assert not delivered.errors
    assert app.states.get(module.__name__, "s@bad.example") == "START"
    assert app.settings["started"] == []


def test_threshold_overrides_the_cutoff(sqlite_filter: SpamFilter) -> None:
    module = _handlers(threshold=1.0)  # nothing scores above 1: all mail passes
    app = _app(module, sqlite_filter)
    app.deliver(_request("s@bad.example", _eml(HELD_OUT / "spam")[0]))
    assert len(app.settings["started"]) == 1
    with pytest.raises(ValueError, match="threshold"):
        spam_filter(threshold=1.5)


def test_an_app_without_a_filter_says_so(sqlite_filter: SpamFilter) -> None:
    module = _handlers()
    app = _app(module, None)
    delivered = app.deliver(_request("a@example.org", _eml(HELD_OUT / "ham")[0]))
    (error,) = delivered.errors
    assert isinstance(error, NoSpamFilterError)
    assert "App(spam=" in str(error)
    assert app.states.get(module.__name__, "a@example.org") == "ERROR"


def test_a_missing_queue_is_named(sqlite_filter: SpamFilter) -> None:
    module = _handlers(queue="quarantine")
    app = _app(module, sqlite_filter, {"spam": ListQueue()})
    delivered = app.deliver(_request("a@example.org", _eml(HELD_OUT / "ham")[0]))
    (error,) = delivered.errors
    assert isinstance(error, UnknownQueueError)
    assert isinstance(error, KeyError)
    assert "'quarantine'" in str(error)
    assert "['spam']" in str(error)
