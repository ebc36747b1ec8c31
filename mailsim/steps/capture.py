"""Steps that keep a part of a received mail under a name, to use it later.

"It" is the mail the latest ``receives`` step found. A kept value is used in any
later quoted parameter, docstring or table cell as ``${name}``::

    Then "alice@example.org" receives a mail from "python-confirm-.*@lists.example.com"
    And its sender is kept as "confirmation address"
    When "alice@example.org" sends a mail to "${confirmation address}"

Inside a regular expression (a receive step's sender) a kept value stands for
itself: it is escaped. Names may hold spaces; an unknown name fails the step,
listing the names kept so far. Values last for the scenario.
"""

from __future__ import annotations

import re
from typing import Any

from mailsim.steps._phrases import phrase
from mailsim.steps._scene import Scene, StepFailed, scene_of
from mailsim.world.mailbox import ReceivedMail

__all__ = [
    "a_header_is_kept",
    "its_message_id_is_kept",
    "its_sender_is_kept",
    "its_subject_is_kept",
    "the_kept_value_matches",
    "the_text_matching_is_kept",
]


def _it(scene: Scene) -> ReceivedMail:
    if scene.last_mail is None:
        raise StepFailed(
            "there is no mail to keep anything from: a step such as "
            'Then "alice@example.org" receives a mail from "…" comes first'
        )
    return scene.last_mail


def _keep(scene: Scene, name: str, value: str) -> None:
    name = name.strip()
    if not name or "}" in name:
        raise StepFailed(f"{name!r} cannot name a kept value (it must be non-empty, without '}}')")
    scene.captures[name] = value


@phrase(
    "Then",
    'its sender is kept as "{name}"',
    example='And its sender is kept as "confirmation address"',
)
def its_sender_is_kept(context: Any, name: str) -> None:
    """Keep its From address (the envelope sender when it has no From)."""
    scene = scene_of(context)
    _keep(scene, name, _it(scene).from_)


@phrase(
    "Then",
    'its subject is kept as "{name}"',
    example='And its subject is kept as "question"',
)
def its_subject_is_kept(context: Any, name: str) -> None:
    scene = scene_of(context)
    _keep(scene, name, _it(scene).subject)


@phrase(
    "Then",
    'its Message-ID is kept as "{name}"',
    example='And its Message-ID is kept as "original"',
)
def its_message_id_is_kept(context: Any, name: str) -> None:
    scene = scene_of(context)
    _keep(scene, name, _it(scene).message_id)


@phrase(
    "Then",
    'its header "{header}" is kept as "{name}"',
    example='And its header "List-Id" is kept as "list"',
)
def a_header_is_kept(context: Any, header: str, name: str) -> None:
    scene = scene_of(context)
    mail = _it(scene)
    value = mail[header]
    if value is None:
        raise StepFailed(f"{mail.summary()} has no {header} header")
    _keep(scene, name, value)


@phrase(
    "Then",
    'the text matching "{pattern}" in it is kept as "{name}"',
    example='And the text matching "confirm-(\\w+)@" in it is kept as "secret"',
)
def the_text_matching_is_kept(context: Any, pattern: str, name: str) -> None:
    """Keep what a regular expression finds in its body (its first group, if it has one)."""
    scene = scene_of(context)
    mail = _it(scene)
    try:
        found = re.search(scene.expand_regex(pattern), mail.body)
    except re.error as error:
        raise StepFailed(f"{pattern!r} is not a regular expression: {error}") from None
    if found is None:
        raise StepFailed(f"nothing in the body of {mail.summary()} matches /{pattern}/")
    _keep(scene, name, found.group(1) if found.re.groups else found.group(0))


@phrase(
    "Then",
    'the value kept as "{name}" matches "{pattern}"',
    example='Then the value kept as "confirmation address" matches "python-confirm-\\w+@.*"',
)
def the_kept_value_matches(context: Any, name: str, pattern: str) -> None:
    """A kept value matches a regular expression, whole."""
    scene = scene_of(context)
    value = scene.expand("${" + name + "}", localize=False)
    if re.fullmatch(scene.expand_regex(pattern), value) is None:
        raise StepFailed(
            f"the value kept as {name!r} is {value!r}, which does not match /{pattern}/"
        )
