"""Steps that look in the application's queues: mail kept for a person, not lost.

Mail that no handler can take — no route takes its recipient, or no state function
of the conversation's state does — goes to the app's *undeliverable* queue; an app
may keep mail in queues of its own (``[queues]`` in ``mailsim.toml``). These steps
count what a queue holds, or look for a mail in it by sender. They only read: the
queue is left as it is.

The sender is a regular expression matched against the whole From address or the
envelope sender (``Return-Path``), ignoring case, as in the receive steps.

Live, a queue is a folder on the server, and the run cannot see it: a scenario with
one of these steps is skipped as not observable.
"""

from __future__ import annotations

import email.policy
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.utils import parseaddr
from typing import Any

from mailsim.live import NotObservableLive
from mailsim.steps._phrases import phrase
from mailsim.steps._scene import Scene, StepFailed, scene_of
from mailsim.steps.receiving import sender_pattern

__all__ = ["QueuedMail", "queue_holds_a_mail_from", "queue_holds_mail", "queued_mail"]

UNDELIVERABLE = "undeliverable"

_HEADERS = BytesHeaderParser(policy=email.policy.default)


@dataclass(frozen=True)
class QueuedMail:
    """One mail in a queue, as far as the steps look at it."""

    number: int  # 1 for the oldest
    sender: str  # the envelope sender ('' for <>), when the queue recorded it
    recipient: str  # the envelope recipient, when the queue recorded it
    from_: str  # the From address
    subject: str
    reason: str  # why it was kept (X-Mailsim-Reason), when the queue recorded it

    def summary(self) -> str:
        parts = [f"#{self.number} from {self.from_ or self.sender or '<>'}"]
        if self.recipient:
            parts.append(f"to {self.recipient}")
        parts.append(f"subject {self.subject!r}")
        text = " ".join(parts)
        return f"{text} — kept because: {self.reason}" if self.reason else text


def _read(number: int, data: bytes) -> QueuedMail:
    head = _HEADERS.parsebytes(data)

    def value(name: str) -> str:
        return " ".join(str(head.get(name, "")).split())

    return QueuedMail(
        number=number,
        sender=value("Return-Path").strip("<>"),
        recipient=value("Delivered-To"),
        from_=parseaddr(value("From"))[1],
        subject=value("Subject"),
        reason=value("X-Mailsim-Reason"),
    )


def queued_mail(scene: Scene, name: str) -> list[QueuedMail]:
    """What the app's queue *name* holds, oldest first (not observable live)."""
    driver = scene.driver
    if driver.mode == "live":
        raise NotObservableLive(
            f"the {name} queue is a folder on the server: what it holds is not "
            "observable from a live run"
        )
    queues = driver.app.queues
    if name not in queues:
        known = ", ".join(sorted(queues)) or "none"
        raise StepFailed(f"the application has no queue {name!r}; it has: {known}")
    queue = queues[name]
    found: list[QueuedMail] = []
    for key in queue:
        data = queue.get(key)
        if data is not None:  # taken by someone else meanwhile
            found.append(_read(len(found) + 1, data))
    return found


def _listed(name: str, mails: list[QueuedMail]) -> str:
    if not mails:
        return f"the {name} queue is empty"
    return f"the {name} queue holds {len(mails)}:\n" + "\n".join(f"  {m.summary()}" for m in mails)


@phrase(
    "Then",
    "the undeliverable queue holds no mail",
    example="Then the undeliverable queue holds no mail",
)
@phrase(
    "Then",
    "the undeliverable queue holds {count:int} mail",
    example="Then the undeliverable queue holds 1 mail",
)
@phrase(
    "Then",
    "the undeliverable queue holds {count:int} mails",
    example="Then the undeliverable queue holds 2 mails",
)
@phrase(
    "Then",
    'the "{queue}" queue holds no mail',
    example='Then the "spam" queue holds no mail',
)
@phrase(
    "Then",
    'the "{queue}" queue holds {count:int} mail',
    example='Then the "spam" queue holds 1 mail',
)
@phrase(
    "Then",
    'the "{queue}" queue holds {count:int} mails',
    example='Then the "spam" queue holds 2 mails',
)
def queue_holds_mail(context: Any, count: str = "0", queue: str = UNDELIVERABLE) -> None:
    """The queue holds exactly *count* mails (the undeliverable one unless named).

    A failure lists what the queue holds: sender, recipient, subject and why each
    was kept.
    """
    scene = scene_of(context)
    name = scene.expand(queue, localize=False)
    mails = queued_mail(scene, name)
    if len(mails) != int(count):
        raise StepFailed(f"expected {count} mails in the {name} queue; {_listed(name, mails)}")


@phrase(
    "Then",
    'the undeliverable queue holds a mail from "{sender}"',
    example='Then the undeliverable queue holds a mail from "bob@example.org"',
)
@phrase(
    "Then",
    'the "{queue}" queue holds a mail from "{sender}"',
    example='Then the "spam" queue holds a mail from "spammer@.*"',
)
def queue_holds_a_mail_from(context: Any, sender: str, queue: str = UNDELIVERABLE) -> None:
    """The queue holds a mail whose From address or envelope sender matches *sender*."""
    scene = scene_of(context)
    name = scene.expand(queue, localize=False)
    pattern = sender_pattern(scene, sender)
    mails = queued_mail(scene, name)
    if not any(pattern.fullmatch(a) for m in mails for a in (m.from_, m.sender) if a):
        raise StepFailed(
            f"expected a mail from /{pattern.pattern}/ in the {name} queue; " + _listed(name, mails)
        )
