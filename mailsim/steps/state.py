"""Steps about a conversation's state in the application's state machine.

``"alice@example.org" is in state "POSTING" of "app.handlers.mailinglist"`` names a
person, not a conversation key. The key is found as the application itself would
find it: from the person's most recent mail to an address that a route of that
module takes, the module's ``state_key_generator`` (if it has one) is asked for
the key — so for the mailing list it is ``"python:alice@example.org"``. When the
person has written to none of the module's addresses, the key is their address,
the default for modules without a generator.

The module may be left out: it is then the app's only handler module, or else the
one whose state functions the person's most recent mail reached (the first such
mail, counting back, that reached exactly one).
"""

from __future__ import annotations

from typing import Any

from mailsim_runtime.addresses import AddressRefused
from mailsim_runtime.app import App
from mailsim_runtime.mail import MailRequest
from mailsim_runtime.routing import handler_spec

from mailsim.steps._phrases import phrase
from mailsim.steps._scene import StepFailed, scene_of

__all__ = ["conversation_is_in_state", "conversation_key", "is_in_state", "stateful_modules"]


def conversation_key(app: App, module: str, sender: str, written_to: list[str]) -> str:
    """The key of *sender*'s conversation with *module*, as the router would compute it."""
    for recipient in reversed(written_to):
        try:
            matches = app.router.match(recipient)
        except AddressRefused:
            continue
        if any(m.function.__module__ == module for m in matches):
            head = f"From: <{sender}>\r\nTo: <{recipient}>\r\n\r\n".encode("ascii", "replace")
            return app.router.state_key(module, MailRequest(None, sender, recipient, head))
    return sender.lower()


def stateful_modules(app: App, address: str) -> list[str]:
    """The modules whose state functions a mail to *address* would reach."""
    try:
        matches = app.router.match(address)
    except AddressRefused:
        return []
    found = []
    for match in matches:
        spec = handler_spec(match.function)
        module = match.function.__module__
        if (spec is None or not spec.stateless) and module not in found:
            found.append(module)
    return found


def _module(app: App, named: str | None, written_to: list[str]) -> str:
    modules = app.router.modules
    if named is not None:
        if named not in modules:
            raise StepFailed(
                f"the application has no handler module {named!r}; it has: {', '.join(modules)}"
            )
        return named
    if len(modules) == 1:
        return modules[0]
    for recipient in reversed(written_to):
        reached = stateful_modules(app, recipient)
        if len(reached) == 1:
            return reached[0]
    raise StepFailed(
        "the application has several handler modules and the person's mail does not say "
        f'which one is meant: say ... is in state "X" of "module" (one of: {", ".join(modules)})'
    )


@phrase(
    "Then",
    '"{person}" is in state "{state}" of "{module}"',
    example='Then "alice@example.org" is in state "POSTING" of "app.handlers.mailinglist"',
)
@phrase(
    "Then",
    '"{person}" is in state "{state}"',
    example='Then "alice@example.org" is in state "POSTING"',
)
def is_in_state(context: Any, person: str, state: str, module: str | None = None) -> None:
    """*person*'s conversation with the module is in *state*.

    Without a module: the app's only one, or the one the person's latest mail reached.

    Live, the server's state database is read (``--state-url``), waiting until the
    deadline for the state to be reached; without it the scenario is skipped as not
    observable.
    """
    scene = scene_of(context)
    person = scene.expand(person, localize=False)
    driver = scene.driver
    app = driver.app
    written_to = [to for who, to in scene.sent if who.lower() == person.lower()]
    named = scene.expand(module, localize=False) if module is not None else None
    name = _module(app, named, written_to)
    key = conversation_key(app, name, driver.address_of(person), written_to)
    driver.expect_state(name, key, scene.expand(state, localize=False))


@phrase(
    "Then",
    'the conversation "{key}" of "{module}" is in state "{state}"',
    example='Then the conversation "ticket-1" of "app.handlers.helpdesk" is in state "NEW"',
)
def conversation_is_in_state(context: Any, key: str, module: str, state: str) -> None:
    """The conversation with this key is in *state*: for modules whose
    ``state_key_generator`` keys conversations by something other than a person
    (a ticket, an order). Live, addresses in the key are the run's unique ones."""
    scene = scene_of(context)
    app = scene.driver.app
    name = _module(app, scene.expand(module, localize=False), [])
    scene.driver.expect_state(name, scene.expand(key), scene.expand(state, localize=False))
