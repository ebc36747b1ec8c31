"""A spam filter that knows something from the start.

``[spam] enabled = true`` gives the app a SpamBayes filter whose counts live in the
database; an untrained one calls everything "unsure". :func:`train_when_empty`
(in ``[app] setup``) teaches an empty filter the small corpus in ``data/``: good
list posts in ``data/ham`` and spam in ``data/spam``, one ``.eml`` file each. So the
simulated world, which starts from an empty in-memory database every time, and a
new server both filter from their first message.

A real list soon does better on its own mail: train it with what it receives,
``mailsim spam train --ham FOLDER --spam FOLDER``. A filter that knows anything
is never retrained from ``data/`` again.
"""

from __future__ import annotations

from pathlib import Path

from mailsim_runtime import App

from app.notices import log

CORPUS = Path(__file__).resolve().parent.parent / "data"


def train_when_empty(app: App) -> None:
    """Called once when the app is built (``[app] setup`` in mailsim.toml)."""
    if app.spam is None or app.spam.counts != (0, 0):
        return
    ham = app.spam.train_folder(CORPUS / "ham", is_spam=False)
    spam = app.spam.train_folder(CORPUS / "spam", is_spam=True)
    log.info("trained the empty spam filter on %d good posts and %d spams", ham, spam)
