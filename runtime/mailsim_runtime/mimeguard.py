"""Parsing mail from strangers within bounds: no crash, and no parse that runs away.

The standard library's parser has slow paths a hostile message can take
(REFERENCE.md: bpo-37461, gh-87075, gh-136063):

- the header registry's structured parsers (addresses, Message-IDs, MIME
  parameters) take time quadratic in a value's length: a 20 KB ``From`` of quote
  characters costs seconds; some values make them raise instead (a run of ``(``
  exceeds the recursion limit, a run of ``<`` is an IndexError);
- the feed parser checks every line against the boundary of every enclosing
  multipart, so deep nesting costs time quadratic in the depth, and walking a
  tree thousands of levels deep exceeds the recursion limit.

:func:`parse_message` parses with :data:`GUARDED` (``policy.default`` otherwise)
and these bounds, each recorded as a defect rather than raised:

- a header value longer than :data:`MAX_PARSED_HEADER` characters is not given to
  the registry whole, and every message has a :class:`ParseBudget` of registry
  work (counted as the square of each value's length; each distinct value is
  parsed once); past either, a value's first 80 characters are parsed instead
  (enough for a media type). :func:`header_text` (the string form a
  :class:`MailRequest <mailsim_runtime.mail.MailRequest>` hands out) returns such a
  value unfolded, as received, instead;
- a value the registry cannot parse at all is read as if it were empty
  (:func:`header_text`: as received);
- a message nested deeper than :data:`MAX_DEPTH` (Postfix's limit) or with more
  than :data:`MAX_PARTS` parts is parsed as headers and an opaque body: kept
  whole, but not split into parts.
"""

from __future__ import annotations

import re
from email.errors import HeaderDefect, MessageDefect
from email.feedparser import BytesFeedParser
from email.message import EmailMessage
from email.policy import EmailPolicy
from typing import Any

__all__ = [
    "GUARDED",
    "MAX_DEPTH",
    "MAX_PARSED_HEADER",
    "MAX_PARTS",
    "PARSE_BUDGET",
    "HeaderTooComplexDefect",
    "MimeTooComplexDefect",
    "ParseBudget",
    "header_text",
    "parse_message",
]

MAX_PARSED_HEADER = 4096  # characters of one value the header registry is given
# Registry work per message, in characters squared: about a quarter of a second of the
# worst values (runs of quotes in MIME parameters, measured), and room for two thousand
# ordinary ones (a 100-character value costs 10^4).
PARSE_BUDGET = 20_000_000
MAX_DEPTH = 100  # nested multiparts and message/rfc822 parts (Postfix: 100)
MAX_PARTS = 1000  # parts of one message, the message itself included

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_CUT = 80  # characters of a value parsed instead, when the whole is not


class HeaderTooComplexDefect(HeaderDefect):
    """A header value too long (or too strange) for the structured parser: it was
    read as received, or cut short, instead of parsed."""


class MimeTooComplexDefect(MessageDefect):
    """The MIME structure was nested too deeply or had too many parts: the body was
    kept whole, unsplit."""


class ParseBudget:
    """What one message may still spend in the header registry, what went wrong, and
    the header objects made so far (each distinct value is parsed once)."""

    __slots__ = ("defects", "left", "parsed")

    def __init__(self, budget: int = PARSE_BUDGET) -> None:
        self.left = budget
        self.defects: list[MessageDefect] = []
        self.parsed: dict[tuple[str, str], Any] = {}

    def __repr__(self) -> str:
        return f"<ParseBudget {self.left} left, {len(self.defects)} defects>"

    def allows(self, value: str) -> bool:
        """Whether *value* may be parsed whole; charges for it when it may."""
        cost = len(value) ** 2
        if len(value) > MAX_PARSED_HEADER or cost > self.left:
            return False
        self.left -= cost
        return True

    def note(self, name: str, problem: str) -> None:
        self.defects.append(HeaderTooComplexDefect(f"{name}: {problem}"))


class _GuardedPolicy(EmailPolicy):
    """``policy.default``, with the header registry given only what it parses quickly."""

    budget: ParseBudget | None = None  # per message: see parse_message

    def header_fetch_parse(self, name: str, value: Any) -> Any:
        if hasattr(value, "name"):
            return value  # already a header object
        value = "".join(_LINE_BREAK.split(value))
        budget = self.budget if self.budget is not None else ParseBudget()
        key = (name.lower(), value)
        header = budget.parsed.get(key)
        if header is None:
            header = budget.parsed[key] = self._parse(name, value, budget)
        return header

    def _parse(self, name: str, value: str, budget: ParseBudget) -> Any:
        if not budget.allows(value):
            # Short enough to cost next to nothing, long enough for a media type.
            budget.note(name, f"a value of {len(value)} characters was cut short to parse it")
            value = value[:_CUT]
        try:
            return self.header_factory(name, value)
        except Exception as error:  # the registry's own failures (RecursionError, ...)
            budget.note(name, f"unparseable value ({type(error).__name__}); read as empty")
            return self.header_factory(name, "")


GUARDED = _GuardedPolicy()


class _TooComplex(Exception):
    pass


class _BoundedFeedParser(BytesFeedParser):
    """The feed parser, stopping at :data:`MAX_DEPTH` levels or :data:`MAX_PARTS` parts."""

    def __init__(self, policy: _GuardedPolicy) -> None:
        super().__init__(policy=policy)
        self._parts = 0

    def _new_message(self) -> None:  # the feed parser's hook for every (sub)message
        super()._new_message()  # type: ignore[misc]
        self._parts += 1
        depth = len(self._msgstack)  # type: ignore[attr-defined]
        if depth > MAX_DEPTH:
            raise _TooComplex(f"MIME parts nested more than {MAX_DEPTH} deep")
        if self._parts > MAX_PARTS:
            raise _TooComplex(f"more than {MAX_PARTS} MIME parts")


def parse_message(data: bytes, budget: ParseBudget | None = None) -> EmailMessage:
    """*data* parsed as ``policy.default`` would, within the bounds above.

    Problems are defects: the parser's in each part's ``defects``, the header
    values not parsed whole in *budget*'s (a new budget when none is given).
    """
    policy = GUARDED.clone(budget=budget or ParseBudget())  # type: ignore[call-arg]
    parser = _BoundedFeedParser(policy)
    try:
        parser.feed(data)
        message = parser.close()
    except _TooComplex as error:
        flat = BytesFeedParser(policy=policy)
        flat._set_headersonly()  # type: ignore[attr-defined]
        flat.feed(data)
        message = flat.close()
        message.defects.append(MimeTooComplexDefect(f"{error}: the body was kept whole"))
    assert isinstance(message, EmailMessage)
    return message


def header_text(name: str, raw: str, budget: ParseBudget) -> str:
    """A header's value as ``policy.default`` presents it (``str`` of its header
    object), or unfolded as received when that would cost too much, or fails."""
    unfolded = "".join(_LINE_BREAK.split(raw))
    if not budget.allows(unfolded):
        budget.note(name, f"a value of {len(unfolded)} characters was read as received")
        return unfolded
    try:
        return str(GUARDED.header_factory(name, unfolded))
    except Exception as error:
        budget.note(name, f"unparseable value ({type(error).__name__}); read as received")
        return unfolded
