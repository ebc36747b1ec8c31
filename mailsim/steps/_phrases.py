"""How the step library declares its phrasings, and reads them back for ``mailsim steps``.

Each step function is decorated with one :func:`phrase` per wording it accepts::

    @phrase("When", '"{person}" sends a mail to "{recipient}"',
            example='When "alice@example.org" sends a mail to "python@lists.example.com"')
    def send(context, person, recipient): ...

A template is plain words with ``{name}`` placeholders. A placeholder stands for
text inside double quotes (``"{name}"`` matches ``"anything but a quote"``), or,
with a kind, for a number (``{count:int}``) or a unit of time (``{unit:unit}``).
The template is turned into a regular expression and registered with behave's
``re`` step matcher, whatever matcher the project's own step files use: behave's
current matcher is put back afterwards. Steps are registered for any keyword, so
``Given``, ``When``, ``Then``, ``And`` and ``But`` all work; the keyword given here
is the one the vocabulary shows.

A step that raises :class:`~mailsim.live.NotPossibleLive` (moving the clock against
a live server, say) skips the rest of its scenario with that reason.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar, cast

from behave import step as any_step
from behave.matchers import get_step_matcher_factory

from mailsim.live import NotPossibleLive

__all__ = ["Phrase", "StepFunction", "phrase", "phrases_of", "template_regex"]

StepFunction = Callable[..., None]
F = TypeVar("F", bound=StepFunction)

PHRASES_ATTRIBUTE = "mailsim_phrases"
_WRAPPED_ATTRIBUTE = "mailsim_skips_when_not_possible"

# What a placeholder of each kind matches.
_KINDS = {
    "text": r'[^"]*',
    "int": r"\d+",
    "unit": r"(?:second|minute|hour|day|week)s?",
}
_PLACEHOLDER = re.compile(r"\{(\w+)(?::(\w+))?\}")


@dataclass(frozen=True)
class Phrase:
    """One wording of a step: how it reads, and an example of it in use."""

    keyword: str  # Given, When or Then: how the vocabulary shows it
    template: str  # '"{person}" sends a mail to "{recipient}"'
    example: str  # a whole step line, keyword included

    @property
    def shown(self) -> str:
        """The template as a person reads it: ``When "{person}" sends …``, kinds left out."""
        return f"{self.keyword} " + _PLACEHOLDER.sub(
            lambda m: "{" + m.group(1) + "}", self.template
        )


def template_regex(template: str) -> str:
    """The regular expression (without anchors; behave's ``re`` matcher adds them)."""
    parts: list[str] = []
    position = 0
    for found in _PLACEHOLDER.finditer(template):
        parts.append(re.escape(template[position : found.start()]))
        name, kind = found.group(1), found.group(2) or "text"
        if kind not in _KINDS:
            raise ValueError(f"unknown placeholder kind {kind!r} in {template!r}")
        parts.append(f"(?P<{name}>{_KINDS[kind]})")
        position = found.end()
    parts.append(re.escape(template[position:]))
    return "".join(parts)


@contextmanager
def _regex_matcher() -> Iterator[None]:
    """behave's ``re`` matcher for the block, the matcher in use before put back.

    behave keeps one current matcher for everything being defined; a project that
    imports this library from a step file using ``parse`` must keep ``parse``.
    """
    factory = get_step_matcher_factory()
    previous = factory.current_matcher
    factory.use_step_matcher("re")
    try:
        yield
    finally:
        names = [n for n, c in factory.step_matcher_class_mapping.items() if c is previous]
        if names:
            factory.use_step_matcher(names[0])
        else:
            factory.use_default_step_matcher()


def phrase(keyword: str, template: str, *, example: str) -> Callable[[F], F]:
    """Register the decorated function with behave for *template*, and note the phrase."""
    if keyword not in ("Given", "When", "Then"):
        raise ValueError(f"keyword must be Given, When or Then, not {keyword!r}")

    def register(function: F) -> F:
        function = _skipping_when_not_possible(function)
        with _regex_matcher():
            any_step(template_regex(template))(function)
        # Decorators apply bottom-up: prepend, so phrases read in source order.
        known: tuple[Phrase, ...] = getattr(function, PHRASES_ATTRIBUTE, ())
        setattr(function, PHRASES_ATTRIBUTE, (Phrase(keyword, template, example), *known))
        return function

    return register


def _skipping_when_not_possible(function: F) -> F:
    """*function*, made to skip its scenario (with the reason) when it is not possible."""
    if getattr(function, _WRAPPED_ATTRIBUTE, False):
        return function

    @functools.wraps(function)
    def run(context: Any, *args: Any, **kwargs: Any) -> None:
        try:
            function(context, *args, **kwargs)
        except NotPossibleLive as reason:
            context.scenario.skip(str(reason))

    setattr(run, _WRAPPED_ATTRIBUTE, True)
    return cast(F, run)


def phrases_of(module: ModuleType) -> list[tuple[StepFunction, tuple[Phrase, ...]]]:
    """The step functions a module defines, in source order, with their phrases."""
    found: list[tuple[int, StepFunction, tuple[Phrase, ...]]] = []
    for value in vars(module).values():
        phrases: Any = getattr(value, PHRASES_ATTRIBUTE, None)
        if phrases and inspect.isfunction(value) and value.__module__ == module.__name__:
            line = inspect.unwrap(value).__code__.co_firstlineno
            found.append((line, value, phrases))
    return [(function, phrases) for _, function, phrases in sorted(found, key=lambda f: f[0])]
