"""The SpamBayes spam filter: :class:`SpamFilter` and the :func:`spam_filter` decorator.

Scoring is sbclassifier's chi-squared combining. The token counts live in the SQL
tables ``spam_words`` and ``spam_totals`` (see :mod:`mailsim_runtime.db`), so any
number of processes can share one trained filter. Scoring reads only the rows for
the message's own tokens; training adds to the counts with SQL increments, so two
trainers running at once never overwrite each other's counts.

Tokens come from :mod:`mailsim_runtime.spam_tokens`.
"""

from __future__ import annotations

import functools
import logging
import mailbox
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sbclassifier import Classifier
from sbclassifier.classifier import WordInfo

from mailsim_runtime import db
from mailsim_runtime.app import current_app
from mailsim_runtime.mail import MailRequest
from mailsim_runtime.spam_tokens import Mail, message_tokens

__all__ = ["NoSpamFilterError", "SpamFilter", "UnknownQueueError", "message_tokens", "spam_filter"]

log = logging.getLogger("mailsim.spam")

F = TypeVar("F", bound=Callable[..., Any])

# Old SQLite builds cap a statement at 999 parameters; 500 stays well clear of that
# and keeps PostgreSQL's IN lists small enough to plan quickly.
_CHUNK = 500
# A batch that conflicts with a concurrent trainer's new rows is simply run again.
_ATTEMPTS = 3

# The SQL side -----------------------------------------------------------------


class _TokenCounts:
    """The rows one message needs, as ``Classifier.spamprob`` reads its db: ``db[word]``
    (``KeyError`` when unknown), ``db.nspam``, ``db.nham``. Training bypasses it."""

    def __init__(self, rows: Mapping[str, tuple[int, int]], nspam: int, nham: int) -> None:
        self._rows, self.nspam, self.nham = rows, nspam, nham

    def __getitem__(self, word: str) -> WordInfo:
        spam, ham = self._rows[word]
        record = WordInfo()
        # A concurrent trainer can commit between our two reads; sbclassifier
        # asserts a word is never in more messages than were trained, so clamp.
        record.spamcount = min(spam, self.nspam)
        record.hamcount = min(ham, self.nham)
        return record


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


# Built once: a statement built per call spends more time in SQLAlchemy's argument
# checks (one per word of an IN list) than the database spends answering it. The word
# list is an expanding parameter, so the compiled form is cached as well.
_COUNTS_OF = sa.select(
    db.spam_words.c.word, db.spam_words.c.spam_count, db.spam_words.c.ham_count
).where(db.spam_words.c.word.in_(sa.bindparam("words", expanding=True)))
_TOTALS = sa.select(db.spam_totals.c.nspam, db.spam_totals.c.nham).where(db.spam_totals.c.id == 1)


def _fetch_counts(conn: sa.Connection, words: Iterable[str]) -> dict[str, tuple[int, int]]:
    rows: dict[str, tuple[int, int]] = {}
    for chunk in _chunks(sorted(set(words))):
        rows.update((w, (s, h)) for w, s, h in conn.execute(_COUNTS_OF, {"words": chunk}))
    return rows


def _fetch_totals(conn: sa.Connection) -> tuple[int, int]:
    """``(nspam, nham)``; an untrained database has no totals row yet."""
    row = conn.execute(_TOTALS).first()
    return (0, 0) if row is None else (row[0], row[1])


class _Batch:
    """Count changes from one or more messages, waiting to be written in one go."""

    def __init__(self) -> None:
        self.words: dict[str, list[int]] = {}  # word -> [spam delta, ham delta]
        self.nspam = 0
        self.nham = 0
        self.messages = 0

    def add(self, tokens: Iterable[str], *, is_spam: bool, sign: int) -> None:
        # As Classifier.learn/unlearn: a token counts once per message however
        # often it occurs (SpamBayes measured that repeated counting hurts).
        column = 0 if is_spam else 1
        for token in set(tokens):
            self.words.setdefault(token, [0, 0])[column] += sign
        if is_spam:
            self.nspam += sign
        else:
            self.nham += sign
        self.messages += 1


def _write_batch(conn: sa.Connection, batch: _Batch) -> None:
    # The totals row goes first: its row lock, held until commit, makes concurrent
    # trainers take turns, so each one sees the words the one before it added.
    # Only two very first trainings can both insert (SpamFilter._write reruns one).
    totals, words = db.spam_totals, db.spam_words
    changed = conn.execute(
        totals.update()
        .where(totals.c.id == 1)
        .values(nspam=totals.c.nspam + batch.nspam, nham=totals.c.nham + batch.nham)
    )
    if changed.rowcount == 0:
        conn.execute(totals.insert().values(id=1, nspam=batch.nspam, nham=batch.nham))
    nspam, nham = _fetch_totals(conn)
    if nspam < 0 or nham < 0:
        kind = "spam" if nspam < 0 else "ham"
        raise ValueError(f"cannot untrain {kind}: the filter holds fewer {kind} messages than that")

    existing = _fetch_counts(conn, batch.words)
    if existing:
        # Unlearning never takes a count below zero (as Classifier.unlearn).
        spam = words.c.spam_count + sa.bindparam("ds")
        ham = words.c.ham_count + sa.bindparam("dh")
        conn.execute(
            words.update()
            .where(words.c.word == sa.bindparam("w"))
            .values(
                spam_count=sa.case((spam < 0, 0), else_=spam),
                ham_count=sa.case((ham < 0, 0), else_=ham),
            ),
            [{"w": w, "ds": batch.words[w][0], "dh": batch.words[w][1]} for w in existing],
        )
    # Only training makes rows; unlearning a word the table never saw is a no-op.
    new = [(w, ds, dh) for w, (ds, dh) in batch.words.items() if w not in existing]
    inserts = [{"word": w, "spam_count": ds, "ham_count": dh} for w, ds, dh in new if ds + dh > 0]
    if inserts:
        conn.execute(words.insert(), inserts)
    if batch.nspam < 0 or batch.nham < 0:
        for chunk in _chunks(sorted(existing)):
            conn.execute(
                words.delete().where(
                    words.c.word.in_(chunk), words.c.spam_count <= 0, words.c.ham_count <= 0
                )
            )


# Folders ----------------------------------------------------------------------


def _folder_messages(path: Path) -> Iterator[bytes]:
    """Each message in a Maildir, an mbox file or a folder of ``.eml`` files."""
    if path.is_dir():
        if (path / "cur").is_dir() and (path / "new").is_dir():
            maildir = mailbox.Maildir(path, factory=None, create=False)
            for key in sorted(maildir.keys()):
                yield maildir.get_bytes(key)
            return
        for file in sorted(path.iterdir()):
            if file.is_file() and file.suffix.lower() == ".eml":
                yield file.read_bytes()
        return
    if not path.is_file():
        raise FileNotFoundError(f"no Maildir, mbox file or folder of .eml files at {path}")
    with path.open("rb") as head:
        start = head.read(5)
    if start and start != b"From ":
        raise ValueError(
            f"{path} is not an mbox file (an mbox starts with a 'From ' line); "
            "train_folder takes a Maildir, an mbox file or a folder of .eml files"
        )
    box = mailbox.mbox(path, create=False)
    try:
        for key in box.iterkeys():
            yield box.get_bytes(key)
    finally:
        box.close()


# The filter -------------------------------------------------------------------


class SpamFilter:
    """A trainable spam filter whose counts live in SQL, shared by every process.

    *engine_or_url* is a SQLAlchemy engine (best made by
    :func:`mailsim_runtime.db.create_engine`) or a database URL; the tables must
    exist (``mailsim db upgrade``). A score is the chance the message is spam,
    0..1: at or above *spam_cutoff* it is spam, at or below *ham_cutoff* ham, in
    between unsure. An engine made here from a URL is disposed of by :meth:`close`.
    """

    def __init__(
        self,
        engine_or_url: sa.Engine | sa.URL | str,
        *,
        spam_cutoff: float = 0.9,
        ham_cutoff: float = 0.2,
    ) -> None:
        if not 0.0 <= ham_cutoff <= spam_cutoff <= 1.0:
            raise ValueError(
                "cutoffs must satisfy 0 <= ham_cutoff <= spam_cutoff <= 1, "
                f"not ham_cutoff={ham_cutoff}, spam_cutoff={spam_cutoff}"
            )
        self._owns_engine = not isinstance(engine_or_url, sa.Engine)
        engine = engine_or_url if isinstance(engine_or_url, sa.Engine) else None
        self.engine = engine or db.create_engine(cast(str | sa.URL, engine_or_url))
        try:
            db.require_tables(self.engine, db.spam_words, db.spam_totals)
        except BaseException:
            self.close()
            raise
        self.spam_cutoff = spam_cutoff
        self.ham_cutoff = ham_cutoff

    def __repr__(self) -> str:
        return f"<SpamFilter {db.display_url(self.engine)} {self.ham_cutoff}/{self.spam_cutoff}>"

    def close(self) -> None:
        """Release the database connections, if this filter made the engine."""
        if self._owns_engine:
            self.engine.dispose()

    # Reading ------------------------------------------------------------------

    def tokens(self, message: Mail) -> list[str]:
        """The distinct tokens the filter sees in *message*."""
        return message_tokens(message)

    @property
    def counts(self) -> tuple[int, int]:
        """``(nham, nspam)``: how many messages of each kind the filter was trained on."""
        with db.read_connection(self.engine) as conn:
            nspam, nham = _fetch_totals(conn)
        return nham, nspam

    def score(self, message: Mail) -> float:
        """The chance that *message* is spam, 0..1 (0.5 when nothing is known)."""
        tokens = self.tokens(message)
        return float(self._classifier(tokens).spamprob(tokens))

    def evidence(self, message: Mail) -> list[tuple[str, float]]:
        """The clues behind the score, ``(token, spam probability)``, weakest first."""
        tokens = self.tokens(message)
        _, clues = self._classifier(tokens).spamprob(tokens, evidence=True)
        return [(str(word), float(prob)) for word, prob in clues if word not in ("*H*", "*S*")]

    def classify(self, message: Mail) -> str:
        """``"spam"``, ``"ham"`` or ``"unsure"``, by the cutoffs."""
        value = self.score(message)
        if value >= self.spam_cutoff:
            return "spam"
        return "ham" if value <= self.ham_cutoff else "unsure"

    def is_spam(self, message: Mail) -> bool:
        return self.score(message) >= self.spam_cutoff

    def _classifier(self, tokens: list[str]) -> Any:
        # One connection: on SQLite one read transaction, so totals and rows agree;
        # under PostgreSQL's READ COMMITTED they may not (hence _TokenCounts' clamp).
        with db.read_connection(self.engine) as conn:
            nspam, nham = _fetch_totals(conn)
            rows = _fetch_counts(conn, tokens) if nspam or nham else {}
        return Classifier(_TokenCounts(rows, nspam, nham))

    # Training -----------------------------------------------------------------

    def train(self, message: Mail, *, is_spam: bool) -> None:
        """Teach the filter that *message* is spam (or ham), in one transaction.

        Called from a handler whose conversation lives in the same database, the
        training joins the conversation's transaction (see :func:`db.write_transaction`).
        """
        self._write(self._batch([message], is_spam=is_spam, sign=1))

    def untrain(self, message: Mail, *, is_spam: bool) -> None:
        """Undo an earlier :meth:`train` of *message* with the same *is_spam*."""
        self._write(self._batch([message], is_spam=is_spam, sign=-1))

    def train_folder(self, path: str | Path, *, is_spam: bool) -> int:
        """Train on every message in a Maildir, an mbox file or a folder of ``.eml``
        files, in one transaction; returns how many messages there were.

        The counts are summed in memory and written once: far faster than a
        transaction per message, at the price of one delta per distinct token.
        """
        messages = _folder_messages(Path(path))
        batch = self._batch(messages, is_spam=is_spam, sign=1)
        if batch.messages:
            self._write(batch)
        kind = "spam" if is_spam else "ham"
        log.info("trained on %d %s messages from %s", batch.messages, kind, path)
        return batch.messages

    def train_tokens(self, messages: Iterable[Iterable[str]], *, is_spam: bool) -> int:
        """Train on messages already tokenized (each given as its :meth:`tokens`), in
        one transaction; returns how many there were.

        The same counts as :meth:`train_folder` on the messages themselves, without
        reading and tokenizing them again: for a corpus tokenized once and kept.
        """
        batch = _Batch()
        for tokens in messages:
            batch.add(tokens, is_spam=is_spam, sign=1)
        if batch.messages:
            self._write(batch)
        return batch.messages

    def _batch(self, messages: Iterable[Mail], *, is_spam: bool, sign: int) -> _Batch:
        batch = _Batch()
        for message in messages:
            batch.add(self.tokens(message), is_spam=is_spam, sign=sign)
        return batch

    def _write(self, batch: _Batch) -> None:
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                with db.write_transaction(self.engine) as conn:
                    _write_batch(conn, batch)
                return
            except sa.exc.IntegrityError:
                # Another trainer inserted the totals row (or one of our new words)
                # first; our transaction rolled back whole, so just run it again.
                if attempt == _ATTEMPTS:
                    raise
                log.info("spam training raced another trainer; retrying (%d)", attempt)


# The decorator ----------------------------------------------------------------


class NoSpamFilterError(RuntimeError):
    """``@spam_filter`` ran in an app that has no spam filter."""


class UnknownQueueError(KeyError):
    """``@spam_filter(queue=...)`` names a queue the app does not have."""

    def __str__(self) -> str:
        # KeyError's own str() shows the repr of its argument; show the sentence.
        return str(self.args[0]) if self.args else ""


def spam_filter(
    *,
    next_state: Callable[..., Any] | None = None,
    queue: str | None = None,
    threshold: float | None = None,
) -> Callable[[F], F]:
    """Divert spam before it reaches the decorated handler.

    The filter is the current app's ``App(spam=...)``. A message scoring at or
    above *threshold* (default: the filter's ``spam_cutoff``) is pushed to
    ``App(queues=...)[queue]`` when *queue* is given, and the conversation moves
    to *next_state* (or stays, when that is None); the handler is not called.
    Anything else goes to the handler as usual.
    """
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ValueError(f"spam_filter threshold must be within 0..1, not {threshold}")

    def decorate(function: F) -> F:
        name = f"{function.__module__}.{function.__name__}"

        @functools.wraps(function)
        def filtered(message: MailRequest, *args: Any, **kwargs: Any) -> Any:
            app = current_app()
            spam: SpamFilter | None = app.spam
            if spam is None:
                raise NoSpamFilterError(
                    f"{name} is decorated with @spam_filter but this app has no spam "
                    "filter: pass App(spam=SpamFilter(...))"
                )
            # Checked on every message, not only spam, so a misconfigured app
            # fails on its first delivery rather than on its first spam.
            if queue is not None and queue not in app.queues:
                raise UnknownQueueError(
                    f"@spam_filter on {name} sends spam to queue {queue!r}, but this "
                    f"app's queues are {sorted(app.queues)}: pass "
                    f"App(queues={{{queue!r}: ...}})"
                )
            cutoff = spam.spam_cutoff if threshold is None else threshold
            value = spam.score(message)
            if value < cutoff:
                return function(message, *args, **kwargs)
            reason = f"spam: scored {value:.3f} (threshold {cutoff:.2f}) before {name}"
            if queue is not None:
                app.queues[queue].push(message, reason)
            log.info("message %s from %r: %s", message.message_id, message.sender, reason)
            return next_state

        return cast(F, filtered)

    return decorate
