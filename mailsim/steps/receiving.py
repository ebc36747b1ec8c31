"""Steps that look in a person's mailbox.

Each ``receives`` step claims the first mail no earlier step claimed that fits
everything it says, or fails listing what did arrive, nearest first. The sender
is a regular expression matched against the whole From address (or the envelope
sender), ignoring case: ``"python-confirm-.*@lists.example.com"``. Subject and
text are looked for as substrings. A docstring under the step is text the body
must contain (spacing aside); a ``header | value`` table, headers it must have.
Live, a receive step waits for the mail until the run's deadline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mailsim.spec.matchers import Expected, body, combine, header, subject
from mailsim.steps._phrases import phrase
from mailsim.steps._scene import Scene, StepFailed, scene_of
from mailsim.steps.sending import headers_from_table

if TYPE_CHECKING:
    from mailsim.world.mailbox import ReceivedMail

__all__ = ["BodyHolds", "FromAddress", "receives_a_mail", "receives_no_mail"]


@dataclass(frozen=True)
class FromAddress(Expected):
    """The From address or the envelope sender matches a regular expression, whole."""

    pattern: re.Pattern[str]

    def _addresses(self, mail: ReceivedMail) -> list[str]:
        return [a for a in dict.fromkeys([mail.from_, mail.sender]) if a]

    def matches(self, mail: ReceivedMail) -> bool:
        return any(self.pattern.fullmatch(address) for address in self._addresses(mail))

    def describe(self) -> str:
        return f"sender matching /{self.pattern.pattern}/"

    def mismatch(self, mail: ReceivedMail) -> str:
        if self.matches(mail):
            return ""
        return f"sender was {' / '.join(repr(a) for a in self._addresses(mail)) or '<>'}"


@dataclass(frozen=True)
class BodyHolds(Expected):
    """The body contains a text, however its lines are broken or spaced."""

    text: str

    def matches(self, mail: ReceivedMail) -> bool:
        return " ".join(self.text.split()) in " ".join(mail.body.split())

    def describe(self) -> str:
        shown = " ".join(self.text.split())
        return f"body containing {shown[:60] + '…' if len(shown) > 60 else shown!r}"

    def mismatch(self, mail: ReceivedMail) -> str:
        if self.matches(mail):
            return ""
        text = " ".join(mail.body.split())
        return f"body was {text[:70] + '…' if len(text) > 70 else text!r}"


def sender_pattern(scene: Scene, text: str) -> re.Pattern[str]:
    try:
        return re.compile(scene.expand_regex(text), re.IGNORECASE)
    except re.error as error:
        raise StepFailed(f"the sender {text!r} is not a regular expression: {error}") from None


def expected_mail(
    context: Any,
    scene: Scene,
    sender: str | None,
    subject_text: str | None,
    text: str | None,
) -> Expected | None:
    """Everything a receive step says about the mail, as one matcher."""
    matchers: list[Expected] = []
    if sender is not None:
        matchers.append(FromAddress(sender_pattern(scene, sender)))
    if subject_text is not None:
        matchers.append(subject(scene.expand(subject_text)))
    if text is not None:
        matchers.append(body(scene.expand(text)))
    if context.text:
        matchers.append(BodyHolds(scene.expand(context.text)))
    matchers += [header(name, value) for name, value in headers_from_table(context, scene).items()]
    return combine(matchers)


@phrase(
    "Then",
    '"{person}" receives a mail',
    example='Then "alice@example.org" receives a mail',
)
@phrase(
    "Then",
    '"{person}" receives a mail from "{sender}"',
    example='Then "alice@example.org" receives a mail from "python-confirm-.*@lists.example.com"',
)
@phrase(
    "Then",
    '"{person}" receives a mail from "{sender}" with subject "{subject_text}"',
    example='Then "alice@example.org" receives a mail from "python@lists.example.com" '
    'with subject "Welcome to python"',
)
@phrase(
    "Then",
    '"{person}" receives a mail from "{sender}" containing "{text}"',
    example='Then "bob@example.org" receives a mail from "python@lists.example.com" '
    'containing "Hi everyone"',
)
@phrase(
    "Then",
    '"{person}" receives a mail from "{sender}" with subject "{subject_text}" containing "{text}"',
    example='Then "bob@example.org" receives a mail from "alice@example.org" '
    'with subject "[python] Hello" containing "Hi everyone"',
)
@phrase(
    "Then",
    '"{person}" receives a mail with subject "{subject_text}"',
    example='Then "alice@example.org" receives a mail with subject "Welcome to python"',
)
@phrase(
    "Then",
    '"{person}" receives a mail containing "{text}"',
    example='Then "alice@example.org" receives a mail containing "reply to this message"',
)
@phrase(
    "Then",
    '"{person}" receives a mail with subject "{subject_text}" containing "{text}"',
    example='Then "alice@example.org" receives a mail with subject "Please confirm" '
    'containing "reply to this message"',
)
def receives_a_mail(
    context: Any,
    person: str,
    sender: str | None = None,
    subject_text: str | None = None,
    text: str | None = None,
) -> None:
    """*person* has a mail (not claimed by an earlier step) that fits; it is claimed.

    The mail becomes "the last mail" of *person* (for replies) and "it" (for
    keeping parts of it, see the capture steps).
    """
    scene = scene_of(context)
    person = scene.expand(person, localize=False)
    expected = expected_mail(context, scene, sender, subject_text, text)
    scene.claimed(person, scene.driver.expect(person, expected))


@phrase(
    "Then",
    '"{person}" receives no mail',
    example='Then "carol@example.org" receives no mail',
)
def receives_no_mail(context: Any, person: str) -> None:
    """No mail has arrived for *person* that an earlier step did not claim.

    Live, the step watches the sink for the run's quiet period first.
    """
    scene = scene_of(context)
    scene.driver.expect_no_mail(scene.expand(person, localize=False))
