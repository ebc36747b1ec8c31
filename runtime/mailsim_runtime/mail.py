"""Messages in and out: :class:`MailRequest` (what a handler receives) and
:class:`MailResponse` (what a handler sends).

Both sit on the standard library's :class:`email.message.EmailMessage` with
``policy.default``; nothing here writes MIME or RFC 2047 by hand.
"""

from __future__ import annotations

import email.policy
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from email.errors import MessageDefect
from email.header import Header
from email.headerregistry import (
    Address,
    AddressHeader,
    HeaderRegistry,
    MessageIDHeader,
    UniqueUnstructuredHeader,
    UnstructuredHeader,
)
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any, cast

from mailsim_runtime.mimeguard import ParseBudget, header_text, parse_message

if TYPE_CHECKING:
    from mailsim_runtime.bounce import BounceReport

__all__ = [
    "Attachment",
    "HeaderFields",
    "HeaderInjectionError",
    "MailRequest",
    "MailResponse",
    "check_header_value",
    "format_address",
    "is_simple_mailbox",
]


class _WirePolicy(email.policy.EmailPolicy):
    """``policy.SMTP``, except that a non-ASCII unstructured header (a Subject in French,
    say) is encoded by the standard library's :class:`email.header.Header`.

    The modern folder can turn the space where it splits two encoded-words into
    folding whitespace, which decoding then drops ("invités Réunion" comes back as
    "invitésRéunion"; CPython gh-144156, fixed after 3.13). The older encoder keeps
    every space inside the encoded-words.
    """

    def fold_binary(self, name: str, value: Any) -> bytes:
        text = str(value)
        kind = _REGISTRY.registry.get(name.lower(), _REGISTRY.default_class)
        if text.isascii() or not issubclass(kind, UnstructuredHeader) or _LINE_BREAKS & set(text):
            return super().fold_binary(name, value)
        encoded = Header(text, "utf-8", header_name=name, maxlinelen=self.max_line_length)
        return f"{name}: {encoded.encode(linesep=self.linesep)}{self.linesep}".encode("ascii")


# CRLF line ends, lines folded at 78.
_WIRE_POLICY = _WirePolicy(linesep="\r\n")
_UTF8_WIRE_POLICY = _WIRE_POLICY.clone(utf8=True)
# The legacy API reads and writes plain ASCII headers several times faster than the
# header registry; it is used only where its result is the same (see below).
_RAW_HEADER_PARSER = BytesHeaderParser(policy=email.policy.compat32)
_REGISTRY = cast(HeaderRegistry, email.policy.default.header_factory)
_MAX_LINE = 998  # RFC 5321 §4.5.3.1.6, without the CRLF
_CONTENT_HEADERS = frozenset({"mime-version", "content-type", "content-transfer-encoding"})
# What the legacy API adds to a plain ASCII text message (see MailResponse._plain_bytes).
_PLAIN_CONTENT_HEADERS = [
    "MIME-Version: 1.0",
    'Content-Type: text/plain; charset="us-ascii"',
    "Content-Transfer-Encoding: 7bit",
]
_PLAIN_CONTENT_FIELDS = tuple(
    (name, value) for name, _, value in (line.partition(": ") for line in _PLAIN_CONTENT_HEADERS)
)
_ANY_LINE_END = re.compile(r"\r\n|\r|\n")


_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_ADDR_SPEC = rf"{_ATOM}(?:\.{_ATOM})*@{_ATOM}(?:\.{_ATOM})*"
# Forms the registry gives back unchanged: in an address header a bare address or
# "Plain Name <address>" (single spaces, atoms only); a Message-ID without comments.
_SIMPLE_MAILBOX = re.compile(rf"{_ADDR_SPEC}|{_ATOM}(?: {_ATOM})* <{_ADDR_SPEC}>")
_SIMPLE_MESSAGE_ID = re.compile(rf"<{_ADDR_SPEC}>")
_ADDR_SPEC_IN = re.compile(_ADDR_SPEC)


def _decode_header(name: str, raw: str, budget: Callable[[], ParseBudget] = ParseBudget) -> str:
    """A header value as ``policy.default`` presents it, from its raw (folded) text.

    Plain ASCII without encoded-words in an unstructured header, or in one of the
    simple address and Message-ID forms, is only unfolded — exactly what the header
    registry would return, at a fraction of the cost. Anything else goes through
    the registry, within the message's budget (see :mod:`mailsim_runtime.mimeguard`),
    which *budget* gives: asked for only then, as most messages never need one.
    """
    kind: type = _REGISTRY.registry.get(name.lower(), _REGISTRY.default_class)
    if (kind in _UNSTRUCTURED_KINDS or kind is MessageIDHeader) and (
        raw.isprintable()
        and raw.isascii()
        and "=?" not in raw
        and (kind is not MessageIDHeader or _SIMPLE_MESSAGE_ID.fullmatch(raw))
    ):
        # What _plain_text answers in the commonest cases, without keeping the value:
        # many are new with each message (Message-ID, In-Reply-To, References), and
        # hashing and keeping them costs more than these C loops.
        return raw
    plain = _kept_plain_text(kind, raw) if len(raw) <= _KEPT_VALUE else _plain_text(kind, raw)
    return plain if plain is not None else header_text(name, raw, budget())


def _plain_text(kind: type, raw: str) -> str | None:
    """*raw* unfolded, when that is what a header of the registry's class *kind* gives
    for it (see :func:`_decode_header`); None when the registry must decide."""
    if raw.isascii() and "=?" not in raw:
        # Unfolded as the registry unfolds: every CR and LF dropped, and nothing else
        # (a form feed stays). A printable value has neither.
        unfolded = raw if raw.isprintable() else raw.replace("\r", "").replace("\n", "")
        if (
            issubclass(kind, UnstructuredHeader)
            or (issubclass(kind, AddressHeader) and _SIMPLE_MAILBOX.fullmatch(unfolded))
            or (issubclass(kind, MessageIDHeader) and _SIMPLE_MESSAGE_ID.fullmatch(unfolded))
        ):
            return unfolded
    return None


# The registry's unstructured header classes, by identity: for these, _plain_text's
# answer is the value itself whenever it is printable ASCII without encoded-words.
_UNSTRUCTURED_KINDS = frozenset({UnstructuredHeader, UniqueUnstructuredHeader})

# The same From, To and Subject values come back message after message. Keyed on the
# header's class as the registry gives it at the time, not its name, so the answer
# stays the registry's own; short values only.
_KEPT_VALUE = 256
_kept_plain_text = lru_cache(maxsize=1024)(_plain_text)


class _PlainHeaderPolicy(email.policy.Compat32):
    """compat32 on the wire, writing a short ASCII header line as it is instead of
    passing it through :class:`email.header.Header` (the same bytes, much sooner)."""

    def _fold(self, name: str, value: Any, sanitize: bool) -> str:
        if isinstance(value, str) and value.isascii():
            line = f"{name}: {value}"
            if len(line) <= (self.max_line_length or _MAX_LINE) and "\n" not in value:
                return line + self.linesep
        # _fold is compat32's folding hook; typeshed does not list it.
        return str(super()._fold(name, value, sanitize))  # type: ignore[misc]


class HeaderInjectionError(ValueError):
    """A header value contained a CR or LF: it would have started a new header."""


# Every character str.splitlines() breaks at; the email package refuses them all in
# header values, so refuse them early with a message that names the header.
_LINE_BREAKS = frozenset("\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029")


_LEGACY_WIRE_POLICY = _PlainHeaderPolicy(linesep="\r\n")
_PLAIN_LINE_LIMIT = _LEGACY_WIRE_POLICY.max_line_length or _MAX_LINE


def addresses_in(values: Iterable[str]) -> list[str]:
    """The addresses in header *values* (``email.utils.getaddresses``, empty ones left out).

    That parser recurses once per nested comment and raises RecursionError on a run
    of "(": such values give the plain addresses a pattern finds in them instead.
    """
    values = tuple(values)
    if sum(map(len, values)) <= _CACHED_ADDRESSES_LENGTH:
        return list(_cached_addresses_in(values))
    return _addresses_in(values)


# The same few To and From values are read again and again (the relay reads a
# reply's recipients for its limit, then for the envelope); short ones are kept.
_CACHED_ADDRESSES_LENGTH = 1000


@lru_cache(maxsize=1024)
def _cached_addresses_in(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(_addresses_in(values))


def _addresses_in(values: tuple[str, ...]) -> list[str]:
    if all(_SIMPLE_MAILBOX.fullmatch(value) for value in values):
        # "a@b" or "Plain Name <a@b>": getaddresses' answer, without its parser.
        return [value[value.find("<") + 1 : -1] if value[-1] == ">" else value for value in values]
    try:
        return [address for _, address in getaddresses(values) if address]
    except RecursionError:
        return [found.group(0) for value in values for found in _ADDR_SPEC_IN.finditer(value)]


def is_simple_mailbox(value: str) -> bool:
    """Whether *value* is a bare address or ``Plain Name <address>`` (atoms only): a
    form every parser reads the same, with nothing to quote, decode or refuse."""
    return _SIMPLE_MAILBOX.fullmatch(value) is not None


def check_header_value(name: str, value: str) -> str:
    """Return *value* unchanged, or raise :class:`HeaderInjectionError` if it holds a line break."""
    # No line break is printable, and isprintable() is one C loop: most values are
    # settled by it, the rest (a tab, say) by the set of line breaks. (str.isprintable:
    # anything but a string is a TypeError, as the set made it before.)
    if not str.isprintable(value) and not _LINE_BREAKS.isdisjoint(value):
        raise HeaderInjectionError(
            f"refusing header {name}: its value contains a line break ({value!r}); "
            "a value built from user data must not start a new header"
        )
    return value


@dataclass(frozen=True)
class Attachment:
    """One attached (or inline, named) part of a message."""

    filename: str | None
    content_type: str
    data: bytes
    disposition: str = "attachment"


def _part_to_attachment(part: Message) -> Attachment:
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    return Attachment(
        filename=part.get_filename(),
        content_type=part.get_content_type(),
        data=data,
        disposition=part.get_content_disposition() or "inline",
    )


def _decoded_text(part: Message) -> str:
    # Text comes off the wire with CRLF or LF depending on its transfer encoding;
    # handlers always see LF.
    return _decoded_raw_text(part).replace("\r\n", "\n")


def _decoded_raw_text(part: Message) -> str:
    if isinstance(part, EmailMessage):
        try:
            content = part.get_content()
        except (LookupError, UnicodeDecodeError, AssertionError):
            # Unknown or lying charset: fall back to bytes decoded leniently.
            content = None
        if isinstance(content, str):
            return content
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return str(part.get_payload())
    try:
        return payload.decode(part.get_content_charset() or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know: keep the text, mark the damage
        return payload.decode("utf-8", errors="replace")


# A header field as the feed parser knows one: a name of printable ASCII but the
# colon, the colon, the rest of its line and any continuation lines.
# A section splits into such fields in one way only, so the quantifiers are possessive
# (Python 3.11): a failed match gives nothing back, and hostile input costs linear time.
_FIELD_NAME = r"[\x21-\x39\x3b-\x7e]+"
_FIELD = r"[\x21-\x39\x3b-\x7e]++:[^\r\n]*+(?:\r\n[ \t][^\r\n]*+)*+"
_PLAIN_HEAD = re.compile(rf"(?:{_FIELD}\r\n)*+{_FIELD}")
# The same, capturing the name and the value as compat32 keeps it (blanks after the
# colon dropped, continuation lines kept with their CRLF).
_FIELD_PARTS = re.compile(rf"({_FIELD_NAME}):[ \t]*+([^\r\n]*+(?:\r\n[ \t][^\r\n]*+)*+)")


def _all_field_names(names: list[str]) -> bool:
    """Whether every one of *names* is a field name (``_FIELD_NAME``: printable ASCII
    but space and colon, at least one character). Each is a property of single
    characters, so the names joined have it exactly when each name does; four C
    loops over the joined names instead of a regular expression per name."""
    joined = "".join(names)
    return (
        all(names)
        and joined.isascii()
        and joined.isprintable()
        and " " not in joined
        and ":" not in joined
    )


# A header section split into (name, raw value) pairs, in order.
HeaderFields = tuple[tuple[str, str], ...]


def _plain_header_fields(data: bytes) -> list[tuple[str, str]] | None:
    """The (name, raw value) pairs ``compat32``'s header parser would find in *data*,
    when the header section is plain: ASCII, CRLF line ends only, every line a field
    or a continuation, then an empty line. None otherwise (the parser decides).

    Values are what :meth:`email.policy.Compat32.header_source_parse` makes of the
    field's lines. Once the whole section is known to be such fields, one pass
    of the regular expression engine splits it: a fraction of the feed parser's time.
    """
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = data[:end]
    if not head.isascii():
        return None
    text = head.decode("ascii")
    if _PLAIN_HEAD.fullmatch(text) is None:
        return None
    # The section is a run of whole fields, each starting where the last ended, so
    # the search finds exactly those fields, in order.
    return _FIELD_PARTS.findall(text)


# A plain header section as :func:`_plain_header_fields` splits it: the fields, and
# their names lower-cased. Two tuples of strings, which the garbage collector stops
# tracking: a world keeps every message it delivers, and a table of lists or dicts
# here would be walked by every full collection; and ``in``, ``index`` and ``count``
# on a dozen names are C-level scans, quicker than building a dict to look them up.
_PlainHead = tuple[HeaderFields, tuple[str, ...]]


def _plain_head(fields: Iterable[tuple[str, str]]) -> _PlainHead:
    fields = tuple(fields)
    return fields, _lowered(tuple([name for name, _ in fields]))


# Message after message has the same header names in the same order (those of the
# same program writing it): lower-cased once for each such list.
@lru_cache(maxsize=256)
def _lowered(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple([name.lower() for name in names])


# Headers whose values are message identifiers (RFC 5322 §3.6.4).
_IDENTIFIER_HEADERS = frozenset({"message-id", "in-reply-to", "references", "resent-message-id"})


def _needs_utf8_headers(message: EmailMessage) -> bool:
    """Whether *message* must be internationalized mail (RFC 6532), its headers in
    UTF-8: when an address or a message identifier in it is not ASCII. RFC 2047 may
    not encode those (the standard library would, or fail): the mail could not be
    answered. Such mail travels only where SMTPUTF8 is offered."""
    for name, value in message.items():
        if value.isascii():
            continue
        if name.lower() in _IDENTIFIER_HEADERS:
            return True
        if isinstance(value, AddressHeader) and not all(
            address.addr_spec.isascii() for address in value.addresses
        ):
            return True
    return False


class MailRequest:
    """A message as delivered to one recipient.

    ``sender`` is the envelope reverse-path (``""`` for a bounce's null sender),
    ``recipient`` the envelope recipient this delivery is for, ``peer`` the client
    that handed it over. ``original`` keeps the bytes exactly as received. The
    message is parsed only when something asks for it: headers alone on first header
    access, the whole message when a body, part or attachment is wanted.
    """

    # The header section and the decoded values live in slots, not in __dict__
    # (which only the rarer cached properties use): fewer objects per message.
    __slots__ = (
        "__dict__",
        "_decoded",
        "_head",
        "original",
        "peer",
        "recipient",
        "sender",
    )

    def __init__(
        self,
        peer: str | None,
        sender: str,
        recipient: str,
        original: bytes,
    ) -> None:
        self.peer = peer
        self.sender = sender
        self.recipient = recipient
        self.original = original
        self._head: _PlainHead | Message | None = None  # read on first header access
        # Header values as handlers see them, by lower-cased name: the one value of a
        # header that appears once (most do), else a tuple of them (empty when it is
        # absent). Decoding through the header registry costs tens of microseconds,
        # and handlers, the relay and the world ask for the same few again and
        # again. Strings and the empty tuple are objects the garbage collector does
        # not track, so neither is this dict while it holds only those: it adds
        # nothing for a collection to walk for each message a world keeps.
        self._decoded: dict[str, str | tuple[str, ...]] = {}

    @classmethod
    def with_head(
        cls,
        peer: str | None,
        sender: str,
        recipient: str,
        original: bytes,
        head: HeaderFields,
    ) -> MailRequest:
        """A request for *original* whose header section is already known to split
        into *head* — the (name, raw value) pairs :func:`_plain_header_fields` finds
        in it — because the caller wrote those bytes itself (see
        :meth:`MailResponse.wire_form`). Nothing is parsed again; every answer is
        the one the bytes alone would give."""
        request = cls(peer, sender, recipient, original)
        request._head = _plain_head(head)
        return request

    def __repr__(self) -> str:
        return (
            f"<MailRequest from={self.sender!r} to={self.recipient!r} {len(self.original)} bytes>"
        )

    @property
    def _headers(self) -> _PlainHead | Message:
        """The header section, values kept raw (decoded on demand by :meth:`get_all`)."""
        if self._head is None:
            fields = _plain_header_fields(self.original)
            self._head = (
                _plain_head(fields)
                if fields is not None
                else _RAW_HEADER_PARSER.parsebytes(self.original, headersonly=True)
            )
        return self._head

    @cached_property
    def msg(self) -> EmailMessage:
        """The whole parsed message (``policy.default``, within the bounds of
        :mod:`mailsim_runtime.mimeguard`)."""
        return parse_message(self.original, self._budget)

    @cached_property
    def _budget(self) -> ParseBudget:
        return ParseBudget()

    def _parse_budget(self) -> ParseBudget:
        return self._budget

    @property
    def defects(self) -> list[MessageDefect]:
        """What was wrong with the message: the parser's defects of every part, then
        the header values too long or too strange to parse (read as received)."""
        return [*(d for part in self.walk() for d in part.defects), *self._budget.defects]

    # Header access ------------------------------------------------------------

    def __getitem__(self, name: str) -> str | None:
        key = name.lower()
        found = self._decoded.get(key)  # a value asked for before: answered here, at once
        if found is None:
            found = self._decode(name, key)
        if isinstance(found, str):
            return found
        return found[0] if found else None

    def _values_or_empty(self, names: tuple[tuple[str, str], ...]) -> list[str]:
        """``[self[name] or "" for name, _ in names]``, each *names* pair a header name
        and its lower-cased key: the world asks four at a time for every message it
        delivers (see :mod:`mailsim.world.transcript`), and one call here does it
        without a method call and a ``lower()`` for each."""
        decoded = self._decoded
        values: list[str] = []
        for name, key in names:
            found = decoded.get(key)
            if found is None:
                found = self._decode(name, key)
            if isinstance(found, str):
                values.append(found)
            else:
                values.append((found[0] or "") if found else "")
        return values

    def __contains__(self, name: str) -> bool:
        head = self._head if self._head is not None else self._headers
        if isinstance(head, tuple):
            return name.lower() in head[1]
        return name in head

    def _first_of(self, names: Iterable[str]) -> str | None:
        """The first of *names* the message has a header of (None if none): ``name in
        self`` for each, in one look at the header section."""
        head = self._head if self._head is not None else self._headers
        # Loops: a generator would make cells of head and keys on every call.
        if isinstance(head, tuple):
            keys = head[1]
            for name in names:
                if name.lower() in keys:
                    return name
            return None
        for name in names:
            if name in head:
                return name
        return None

    def _has_any(self, keys: frozenset[str]) -> bool:
        """Whether the message has a header of any of the lower-cased names *keys*:
        ``any(name in self for name in keys)``, in one look at the header section."""
        head = self._head if self._head is not None else self._headers
        if isinstance(head, tuple):
            return not keys.isdisjoint(head[1])
        # (compat32 finds a name in any case; a generator here would make a cell of
        # head on every call, Python < 3.12.)
        return not keys.isdisjoint(map(str.lower, head.keys()))

    def get(self, name: str, default: str | None = None) -> str | None:
        value = self[name]
        return default if value is None else value

    def get_all(self, name: str) -> list[str]:
        """Every value of a (possibly repeated) header, in message order."""
        key = name.lower()
        found = self._decoded.get(key)
        if found is None:
            found = self._decode(name, key)
        return [found] if isinstance(found, str) else list(found)

    def _decode(self, name: str, key: str) -> str | tuple[str, ...]:
        """Every value of header *name* (lower-cased: *key*), decoded, in message
        order, and kept (see ``_decoded``): the one value of a header that appears
        once, else a tuple of them.

        Handlers, the relay and the world ask a dozen times per message, so this is
        one function rather than a chain of small ones.
        """
        head = self._head if self._head is not None else self._headers
        found: str | tuple[str, ...]
        if isinstance(head, tuple):
            fields, keys = head
            count = keys.count(key)  # one scan settles the usual cases: none, or one
            if not count:
                found = ()
            elif count == 1:
                found = _decode_header(name, fields[keys.index(key)][1], self._parse_budget)
            else:
                found = tuple(self._decode_all(name, _values_of(fields, keys, key)))
        else:
            # raw_items(), not get_all(): compat32 wraps a value holding 8-bit bytes
            # (UTF-8 headers, RFC 6532) in a Header whose str() replaces them.
            raws = [raw for field, raw in head.raw_items() if field.lower() == key]
            values = self._decode_all(name, raws)
            found = values[0] if len(values) == 1 else tuple(values)
        self._decoded[key] = found
        return found

    def _decode_all(self, name: str, raws: list[str]) -> list[str]:
        # Apart from _decode: a comprehension there that read its arguments would
        # make a cell of each on every call (Python < 3.12), for the rare repeated header.
        return [_decode_header(name, raw, self._parse_budget) for raw in raws]

    def keys(self) -> list[str]:
        head = self._headers
        if isinstance(head, tuple):
            return [name for name, _ in head[0]]
        return [str(k) for k in head]

    @property
    def message_id(self) -> str | None:
        return self["Message-ID"]

    @property
    def from_addresses(self) -> list[str]:
        """Addresses in the From header (the author, not the envelope sender)."""
        return addresses_in(self.get_all("From"))

    # Content ------------------------------------------------------------------

    def body(self) -> str | None:
        """The best text body, decoded, with LF line ends: text/plain preferred, else text/html."""
        part = self.msg.get_body(preferencelist=("plain", "html"))
        if part is None:
            if self.msg.get_content_maintype() == "text":
                return _decoded_text(self.msg)
            return None
        return _decoded_text(part)

    def html(self) -> str | None:
        part = self.msg.get_body(preferencelist=("html",))
        return None if part is None else _decoded_text(part)

    def walk(self) -> Iterator[Message]:
        """Every part of the message, depth first, the message itself included."""
        return self.msg.walk()

    def attachments(self) -> list[Attachment]:
        return [_part_to_attachment(part) for part in self.msg.iter_attachments()]

    def is_bounce(self, threshold: float = 0.3) -> bool:
        """Whether this message looks like a delivery status notification."""
        from mailsim_runtime.bounce import bounce_score

        return bounce_score(self) >= threshold

    @cached_property
    def bounce(self) -> BounceReport | None:
        """What this message reports as undeliverable, if it is a bounce."""
        from mailsim_runtime.bounce import analyze

        return analyze(self)


class MailResponse:
    """A message to send, built from plain values.

    ``response["X"] = v`` replaces header X; :meth:`add_header` appends another X.
    ``as_bytes()`` gives the wire form with CRLF line ends.
    """

    def __init__(
        self,
        to: str | Iterable[str] | None = None,
        from_: str | None = None,
        subject: str | None = None,
        body: str | None = None,
        html: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        attachments: Iterable[Attachment] = (),
    ) -> None:
        self.body = body
        self.html = html
        self.attachments: list[Attachment] = list(attachments)
        self._headers: list[tuple[str, str]] = []
        self._keys: list[str] = []  # the names lower-cased, in step with _headers
        if to is not None:
            self["To"] = to if isinstance(to, str) else ", ".join(to)
        if from_ is not None:
            self["From"] = from_
        if subject is not None:
            self["Subject"] = subject
        for name, value in (headers or {}).items():
            self[name] = value

    def __repr__(self) -> str:
        return f"<MailResponse to={self['To']!r} subject={self['Subject']!r}>"

    # Headers ------------------------------------------------------------------

    def __setitem__(self, name: str, value: str) -> None:
        if not str.isprintable(value):  # else no line break (see check_header_value)
            check_header_value(name, value)
        key = name.lower()
        if key in self._keys:
            self._remove(key)
        self._headers.append((name, value))
        self._keys.append(key)

    def add_header(self, name: str, value: str) -> None:
        """Append a header, keeping any earlier one of the same name."""
        self._headers.append((name, check_header_value(name, value)))
        self._keys.append(name.lower())

    def __getitem__(self, name: str) -> str | None:
        key = name.lower()
        keys = self._keys
        return self._headers[keys.index(key)][1] if key in keys else None

    def __delitem__(self, name: str) -> None:
        key = name.lower()
        if key in self._keys:
            self._remove(key)

    def _remove(self, key: str) -> None:
        kept = [i for i, k in enumerate(self._keys) if k != key]
        self._headers = [self._headers[i] for i in kept]
        self._keys = [self._keys[i] for i in kept]

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._keys

    def get_all(self, name: str) -> list[str]:
        key = name.lower()
        keys = self._keys
        if key not in keys:
            return []
        if keys.count(key) == 1:
            return [self._headers[keys.index(key)][1]]
        return _values_of(self._headers, keys, key)

    def items(self) -> list[tuple[str, str]]:
        return list(self._headers)

    def attach(
        self,
        data: bytes | str,
        *,
        filename: str | None = None,
        content_type: str = "application/octet-stream",
        disposition: str = "attachment",
    ) -> None:
        raw = data.encode() if isinstance(data, str) else data
        self.attachments.append(Attachment(filename, content_type, raw, disposition))

    # Envelope -----------------------------------------------------------------

    @property
    def recipients(self) -> list[str]:
        """Envelope recipients: every address in To, Cc and Bcc."""
        keys = self._keys
        if "cc" not in keys and "bcc" not in keys:  # the usual case, read at once
            return addresses_in(self.get_all("To"))
        return addresses_in(self.get_all("To") + self.get_all("Cc") + self.get_all("Bcc"))

    @property
    def sender_address(self) -> str:
        """The bare address of the From header ('' when there is none)."""
        found = addresses_in(self.get_all("From"))
        return found[0] if found else ""

    # Rendering ----------------------------------------------------------------

    def to_message(self) -> EmailMessage:
        """Build the standard library message (Bcc is left out: it is envelope only)."""
        msg = EmailMessage(policy=email.policy.default)
        for name, value in self._headers:
            if name.lower() != "bcc":
                msg[name] = value
        if self.body is not None:
            msg.set_content(self.body)
        if self.html is not None:
            if self.body is None:
                msg.set_content(self.html, subtype="html")
            else:
                msg.add_alternative(self.html, subtype="html")
        if self.body is None and self.html is None and not self.attachments:
            msg.set_content("")
        for attachment in self.attachments:
            maintype, _, subtype = attachment.content_type.partition("/")
            if maintype == "text":
                msg.add_attachment(
                    attachment.data.decode("utf-8", errors="replace"),
                    subtype=subtype or "plain",
                    filename=attachment.filename,
                    disposition=attachment.disposition,
                )
            else:
                msg.add_attachment(
                    attachment.data,
                    maintype=maintype,
                    subtype=subtype or "octet-stream",
                    filename=attachment.filename,
                    disposition=attachment.disposition,
                )
        return msg

    def as_bytes(self) -> bytes:
        """The message on the wire: CRLF line ends, long lines folded."""
        return self.wire_form()[0]

    def wire_form(self) -> tuple[bytes, HeaderFields | None]:
        """:meth:`as_bytes`, and the (name, raw value) pairs its header section splits
        into when that is known without parsing it (else None): the plain ASCII
        text messages written directly below. :meth:`MailRequest.with_head` takes both."""
        if self._is_plain_ascii():
            plain = self._plain_wire()
            if plain is not None:
                return plain
            return self._legacy_message().as_bytes(policy=_LEGACY_WIRE_POLICY), None
        message = self.to_message()
        policy = _UTF8_WIRE_POLICY if _needs_utf8_headers(message) else _WIRE_POLICY
        return message.as_bytes(policy=policy), None

    def _plain_wire(self) -> tuple[bytes, HeaderFields | None] | None:
        """What :meth:`_legacy_message` gives on the wire, written directly, when
        every header line is short enough to stay unfolded (else None); with the
        fields :func:`_plain_header_fields` splits it into.

        Each header is one line "Name: value" (values hold no CR or LF), so the
        parser gives back each value less its leading blanks, provided every name
        is a field name it knows (else the fields are left to it: None).
        """
        headers = (
            [pair for pair, key in zip(self._headers, self._keys, strict=True) if key != "bcc"]
            if "bcc" in self._keys
            else self._headers
        )
        lines = [f"{name}: {value}" for name, value in headers]
        if lines and max(map(len, lines)) > _PLAIN_LINE_LIMIT:
            return None
        body = self.body or ""
        # Only LF can end a line when there is no CR: one replace does the regex's work.
        wire_body = (
            body.replace("\n", "\r\n") if "\r" not in body else _ANY_LINE_END.sub("\r\n", body)
        )
        text = "\r\n".join(lines + _PLAIN_CONTENT_HEADERS) + "\r\n\r\n" + wire_body
        if not body.endswith(("\n", "\r")):
            text += "\r\n"
        data = text.encode("ascii")
        if not _all_field_names([name for name, _ in headers]):
            return data, None
        # The parser drops the blanks after the colon. Values seldom begin with one,
        # and then each (name, value) pair is already the field: kept as it is,
        # rather than a new tuple and a new string for every header of every message.
        fields = tuple(headers)
        for _, value in headers:
            if value.startswith((" ", "\t")):
                fields = tuple([(name, value.lstrip(" \t")) for name, value in headers])
                break
        return data, fields + _PLAIN_CONTENT_FIELDS

    def _is_plain_ascii(self) -> bool:
        """A single ASCII text body and ASCII headers without encoded-words: the
        legacy API writes it byte for byte as the modern one would mean it."""
        if self.html is not None or self.attachments:
            return False
        body = self.body or ""
        if not body.isascii():
            return False
        if len(body) > _MAX_LINE and any(len(line) > _MAX_LINE for line in body.splitlines()):
            return False
        if not _CONTENT_HEADERS.isdisjoint(self._keys):
            return False
        # NUL between the values: no "=?" can span two of them.
        values = "\0".join([value for _, value in self._headers])
        return values.isascii() and "=?" not in values

    def _legacy_message(self) -> Message:
        message = Message(policy=_LEGACY_WIRE_POLICY)
        for name, value in self._headers:
            if name.lower() != "bcc":
                message[name] = value
        message["MIME-Version"] = "1.0"
        body = self.body or ""
        message.set_payload(body if body.endswith("\n") else body + "\n", "us-ascii")
        return message


def _values_of(headers: Sequence[tuple[str, str]], keys: Sequence[str], key: str) -> list[str]:
    """The values of the *headers* whose lower-cased name (in *keys*) is *key*.
    (Apart from the callers, MailRequest._decode and MailResponse.get_all: a
    comprehension there that read *key* would make a cell of it on every call,
    Python < 3.12.)"""
    return [value for (_, value), k in zip(headers, keys, strict=True) if k == key]


def format_address(display_name: str, address: str) -> str:
    """``"Name <addr>"`` with the name quoted or encoded as the standard library sees fit."""
    return str(Address(display_name=display_name, addr_spec=address))
