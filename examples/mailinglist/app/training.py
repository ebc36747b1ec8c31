"""A spam filter that knows something from the start.

``[spam] enabled = true`` gives the app a SpamBayes filter whose counts live in the
database; an untrained one calls everything "unsure". :func:`train_when_empty`
(in ``[app] setup``) teaches an empty filter the small corpus in ``data/``: good
list posts in ``data/ham`` and spam in ``data/spam``, one ``.eml`` file each. So the
simulated world, which starts from an empty in-memory database every time, and a
new server both filter from their first message.

The corpus is read from ``data/tokens.json``: the same messages, tokenized once
(``python -m app.training`` writes it). Every new world trains its filter, and
tokenizing 42 messages each time cost most of what building a world costs; the
counts from the file are the very ones the messages give (a test checks it). The
file names the corpus it was made from by a digest of its messages; when they
change and the file was not written again, the messages themselves are read.

A real list soon does better on its own mail: train it with what it receives,
``mailsim spam train --ham FOLDER --spam FOLDER``. A filter that knows anything
is never retrained from ``data/`` again.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from mailsim_runtime import App
from mailsim_runtime.spam import SpamFilter

from app.notices import log

CORPUS = Path(__file__).resolve().parent.parent / "data"
TOKENS = CORPUS / "tokens.json"
KINDS = {"ham": False, "spam": True}  # folder -> is_spam


def train_when_empty(app: App) -> None:
    """Called once when the app is built (``[app] setup`` in mailsim.toml)."""
    if app.spam is None or app.spam.counts != (0, 0):
        return
    tokenized = _stored_tokens()
    if tokenized is None:
        ham = app.spam.train_folder(CORPUS / "ham", is_spam=False)
        spam = app.spam.train_folder(CORPUS / "spam", is_spam=True)
    else:
        ham = app.spam.train_tokens(tokenized["ham"], is_spam=False)
        spam = app.spam.train_tokens(tokenized["spam"], is_spam=True)
    log.info("trained the empty spam filter on %d good posts and %d spams", ham, spam)


def corpus_digest() -> str:
    """A digest of every message of the corpus, with its folder and name."""
    digest = hashlib.sha256()
    for kind in KINDS:
        for path in sorted((CORPUS / kind).glob("*.eml")):
            digest.update(f"{kind}/{path.name}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def tokenize_corpus(spam_filter: SpamFilter) -> dict[str, Any]:
    """The corpus as ``data/tokens.json`` holds it: each message's tokens, by kind."""
    return {
        "corpus": corpus_digest(),
        **{
            kind: [
                sorted(spam_filter.tokens(path.read_bytes()))
                for path in sorted((CORPUS / kind).glob("*.eml"))
            ]
            for kind in KINDS
        },
    }


def _stored_tokens() -> dict[str, Any] | None:
    try:
        stored: dict[str, Any] = json.loads(TOKENS.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if stored.get("corpus") != corpus_digest():
        log.warning("%s is older than the corpus: reading the messages instead", TOKENS)
        return None
    return stored


def main() -> None:
    """Write ``data/tokens.json`` from the corpus (run after changing ``data/``)."""
    import sqlalchemy
    from mailsim_runtime import db

    engine = sqlalchemy.create_engine("sqlite://")
    db.metadata.create_all(engine, tables=[db.spam_words, db.spam_totals])
    tokenized = tokenize_corpus(SpamFilter(engine))
    # One message a line: a change to the corpus is a readable diff.
    parts = [f'{{"corpus": {json.dumps(tokenized["corpus"])}']
    for kind in KINDS:
        messages = ",\n".join(json.dumps(tokens) for tokens in tokenized[kind])
        parts.append(f'"{kind}": [\n{messages}\n]')
    TOKENS.write_text(",\n".join(parts) + "}\n", encoding="utf-8")
    print(f"wrote {TOKENS}: {sum(len(tokenized[k]) for k in KINDS)} messages")


if __name__ == "__main__":
    main()
