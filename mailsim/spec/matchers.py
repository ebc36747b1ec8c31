"""Matchers for received mail: plain values that compose with ``&``, ``|`` and ``~``.

A criterion's value is a substring to look for, a compiled regular expression to
search for, or a predicate::

    from mailsim.spec.matchers import subject, sender, body, header
    alice.expect(subject("Welcome") & sender(re.compile(r"python-confirm-\\w+@")))
    alice.expect(body(lambda text: "unsubscribe" in text.lower()))
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailsim.world.mailbox import ReceivedMail

__all__ = [
    "Expected",
    "TextSpec",
    "attachment",
    "body",
    "criteria_matchers",
    "header",
    "sender",
    "subject",
    "to",
]

TextSpec = str | re.Pattern[str] | Callable[[str], bool]


def _describe_spec(spec: TextSpec) -> str:
    if isinstance(spec, str):
        return f"containing {spec!r}"
    if isinstance(spec, re.Pattern):
        return f"matching /{spec.pattern}/"
    return f"satisfying {getattr(spec, '__name__', repr(spec))}"


def _satisfies(spec: TextSpec, value: str) -> bool:
    if isinstance(spec, str):
        return spec in value
    if isinstance(spec, re.Pattern):
        return spec.search(value) is not None
    return bool(spec(value))


class Expected:
    """Something a received mail may satisfy."""

    def matches(self, mail: ReceivedMail) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def leaves(self) -> list[Expected]:
        """The simple criteria inside (to rank near misses by how many they meet)."""
        return [self]

    def mismatch(self, mail: ReceivedMail) -> str:
        """What about *mail* does not fit (empty when it matches)."""
        return "" if self.matches(mail) else f"not {self.describe()}"

    def __and__(self, other: Expected) -> Expected:
        return AllOf((self, other))

    def __or__(self, other: Expected) -> Expected:
        return AnyOf((self, other))

    def __invert__(self) -> Expected:
        return Not(self)

    def __str__(self) -> str:
        return self.describe()


@dataclass(frozen=True)
class Field(Expected):
    """One part of a mail (subject, sender, …) checked against a :data:`TextSpec`."""

    name: str
    read: Callable[[ReceivedMail], list[str]]
    spec: TextSpec

    def matches(self, mail: ReceivedMail) -> bool:
        return any(_satisfies(self.spec, value) for value in self.read(mail))

    def describe(self) -> str:
        return f"{self.name} {_describe_spec(self.spec)}"

    def mismatch(self, mail: ReceivedMail) -> str:
        if self.matches(mail):
            return ""
        values = self.read(mail)
        shown = " / ".join(repr(_shorten(v)) for v in values) if values else "missing"
        return f"{self.name} was {shown}"


@dataclass(frozen=True)
class AllOf(Expected):
    parts: tuple[Expected, ...]

    def matches(self, mail: ReceivedMail) -> bool:
        return all(p.matches(mail) for p in self.parts)

    def describe(self) -> str:
        return " and ".join(p.describe() for p in self.parts)

    def leaves(self) -> list[Expected]:
        return [leaf for p in self.parts for leaf in p.leaves()]

    def mismatch(self, mail: ReceivedMail) -> str:
        return "; ".join(m for p in self.parts if (m := p.mismatch(mail)))

    def __and__(self, other: Expected) -> Expected:
        return AllOf((*self.parts, other))


@dataclass(frozen=True)
class AnyOf(Expected):
    parts: tuple[Expected, ...]

    def matches(self, mail: ReceivedMail) -> bool:
        return any(p.matches(mail) for p in self.parts)

    def describe(self) -> str:
        return "(" + " or ".join(p.describe() for p in self.parts) + ")"


@dataclass(frozen=True)
class Not(Expected):
    part: Expected

    def matches(self, mail: ReceivedMail) -> bool:
        return not self.part.matches(mail)

    def describe(self) -> str:
        return f"not ({self.part.describe()})"


def _shorten(text: str, limit: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def subject(spec: TextSpec) -> Expected:
    return Field("subject", lambda m: [m.subject], spec)


def sender(spec: TextSpec) -> Expected:
    """The From address, or the envelope sender (either may match)."""
    return Field("sender", lambda m: list(dict.fromkeys([m.from_, m.sender])), spec)


def to(spec: TextSpec) -> Expected:
    return Field("to", lambda m: m.to or [m.request.recipient], spec)


def body(spec: TextSpec) -> Expected:
    return Field("body", lambda m: [m.body], spec)


def header(name: str, spec: TextSpec) -> Expected:
    return Field(f"header {name}", lambda m: m.request.get_all(name), spec)


def attachment(spec: TextSpec) -> Expected:
    """An attachment whose file name fits *spec*."""
    return Field("attachment", lambda m: [a.filename or "" for a in m.attachments()], spec)


_CRITERIA: dict[str, Callable[[TextSpec], Expected]] = {
    "subject": subject,
    "sender": sender,
    "from_": sender,
    "to": to,
    "body": body,
    "attachment": attachment,
}


def criteria_matchers(criteria: dict[str, object]) -> list[Expected]:
    """Keyword criteria (``subject=…``, ``headers={…}``) as matchers."""
    found: list[Expected] = []
    for key, value in criteria.items():
        if key == "headers":
            if not isinstance(value, dict):
                raise TypeError("headers= takes a dict of header name to expected value")
            found += [header(name, spec) for name, spec in value.items()]
        elif key in _CRITERIA:
            found.append(_CRITERIA[key](value))  # type: ignore[arg-type]
        else:
            known = ", ".join([*_CRITERIA, "headers"])
            raise TypeError(f"unknown mail criterion {key!r}; expected one of: {known}")
    return found


def combine(matchers: Iterable[Expected]) -> Expected | None:
    parts = tuple(matchers)
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else AllOf(parts)
