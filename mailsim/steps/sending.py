"""Steps in which people write: new mail, and replies.

A docstring after the step is the mail's body; a table with the columns
``header | value`` adds headers::

    When "alice@example.org" sends a mail to "python@lists.example.com" with subject "Hello"
      \"\"\"
      Hi everyone.
      \"\"\"
"""

from __future__ import annotations

from email.utils import getaddresses
from typing import Any

from mailsim.steps._phrases import phrase
from mailsim.steps._scene import Scene, StepFailed, scene_of

__all__ = ["replies_to_the_last_mail", "sends_a_mail"]


def headers_from_table(context: Any, scene: Scene) -> dict[str, str]:
    """A ``header | value`` table under the step, references filled in."""
    table = context.table
    if table is None:
        return {}
    if len(table.headings) != 2:
        raise StepFailed(
            "a table under a mail step has two columns, header and value; "
            f"this one has {len(table.headings)}: {' | '.join(table.headings)}"
        )
    return {scene.expand(row[0]): scene.expand(row[1]) for row in table.rows}


def body_text(context: Any, scene: Scene, given: str | None) -> str:
    """The body: the step's own text, else its docstring, else nothing."""
    if given is not None:
        return scene.expand(given)
    return scene.expand(context.text) if context.text else ""


@phrase(
    "When",
    '"{person}" sends a mail to "{recipient}"',
    example='When "alice@example.org" sends a mail to "python-subscribe@lists.example.com"',
)
@phrase(
    "When",
    '"{person}" sends a mail to "{recipient}" with subject "{subject}"',
    example='When "alice@example.org" sends a mail to "python@lists.example.com" '
    'with subject "Hello"',
)
@phrase(
    "When",
    '"{person}" sends a mail to "{recipient}" with subject "{subject}" and body "{body}"',
    example='When "alice@example.org" sends a mail to "python@lists.example.com" '
    'with subject "Hello" and body "Hi everyone"',
)
def sends_a_mail(
    context: Any, person: str, recipient: str, subject: str = "", body: str | None = None
) -> None:
    """*person* writes to *recipient*; the step ends when the world is quiet again.

    Live, the mail is handed to the server over SMTP; a recipient the server refuses
    comes back to the person as a bounce, as in the world.
    """
    scene = scene_of(context)
    person = scene.expand(person, localize=False)
    recipient = scene.expand(recipient, localize=False)
    scene.driver.send(
        person,
        recipient,
        subject=scene.expand(subject),
        body=body_text(context, scene, body),
        headers=headers_from_table(context, scene),
    )
    scene.sent.append((person, recipient))


@phrase(
    "When",
    '"{person}" replies to the last mail',
    example='When "alice@example.org" replies to the last mail',
)
@phrase(
    "When",
    '"{person}" replies to the last mail saying "{body}"',
    example='When "alice@example.org" replies to the last mail saying "Yes, please"',
)
def replies_to_the_last_mail(context: Any, person: str, body: str | None = None) -> None:
    """*person* answers the mail a receive step last found for them (else their newest).

    The reply goes to its Reply-To, else its From, with ``Re:`` and the threading
    headers (In-Reply-To, References) set.
    """
    scene = scene_of(context)
    person = scene.expand(person, localize=False)
    mail = scene.last_mail_of(person)
    scene.driver.reply(
        person,
        mail,
        body=body_text(context, scene, body),
        headers=headers_from_table(context, scene),
    )
    target = mail["Reply-To"] or mail.from_
    scene.sent += [(person, address) for _, address in getaddresses([target]) if address]
