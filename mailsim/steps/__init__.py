"""mailsim's step library for behave: conversations in plain words.

A project uses it with one file in ``features/steps/``, say ``mailsim_steps.py``::

    from mailsim.steps import *  # noqa: F403  (mailsim's vocabulary)

``mailsim run`` runs the features — in the simulated world by default, against a
live server with ``--live HOST:PORT`` — and ``mailsim steps`` prints the whole
vocabulary with an example of each phrase. ``docs/steps.md`` explains it.

One module per subject; importing this package registers every step with behave.
"""

from __future__ import annotations

from types import ModuleType

from mailsim.steps import (
    application,
    capture,
    hosts,
    queues,
    receiving,
    safety,
    sending,
    smuggling,
    state,
    time,
)
from mailsim.steps._phrases import Phrase, StepFunction, phrases_of

__all__: list[str] = []  # `import *` is only for the registration

#: The subjects of the vocabulary, in the order ``mailsim steps`` shows them.
SUBJECTS: tuple[tuple[str, ModuleType], ...] = (
    ("The application", application),
    ("Sending", sending),
    ("Receiving", receiving),
    ("Keeping values from a mail", capture),
    ("Conversation state", state),
    ("Time", time),
    ("Remote hosts", hosts),
    ("Safety", safety),
    ("Queues", queues),
    ("SMTP smuggling (live only)", smuggling),
)


def vocabulary() -> list[tuple[str, list[tuple[StepFunction, tuple[Phrase, ...]]]]]:
    """Every subject with its step functions and their phrases, in reading order."""
    return [(title, phrases_of(module)) for title, module in SUBJECTS]
