"""Messages in and out: :class:`MailRequest` (what a handler receives) and
:class:`MailResponse` (what a handler sends).

Both sit on the standard library's :class:`email.message.EmailMessage` with
``policy.default``; nothing here writes MIME or RFC 2047 by hand.
"""

from __future__ import annotations

import email.policy
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from email.errors import MessageDefect
from email.header import Header
from email.headerregistry import (
    Address,
    AddressHeader,
    HeaderRegistry,
    MessageIDHeader,
    UnstructuredHeader,
)
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from functools import cached_property
from typing import TYPE_CHECKING, Any, cast

from mailsim_runtime.mimeguard import ParseBudget, header_text, parse_message

if TYPE_CHECKING:
    from mailsim_runtime.bounce import BounceReport

__all__ = [
    "Attachment",
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
_ANY_LINE_END = re.compile(r"\r\n|\r|\n")


_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_ADDR_SPEC = rf"{_ATOM}(?:\.{_ATOM})*@{_ATOM}(?:\.{_ATOM})*"
# Forms the registry gives back unchanged: in an address header a bare address or
# "Plain Name <address>" (single spaces, atoms only); a Message-ID without comments.
_SIMPLE_MAILBOX = re.compile(rf"{_ADDR_SPEC}|{_ATOM}(?: {_ATOM})* <{_ADDR_SPEC}>")
_SIMPLE_MESSAGE_ID = re.compile(rf"<{_ADDR_SPEC}>")
_ADDR_SPEC_IN = re.compile(_ADDR_SPEC)


def _decode_header(name: str, raw: str, budget: ParseBudget | None = None) -> str:
    """A header value as ``policy.default`` presents it, from its raw (folded) text.

    Plain ASCII without encoded-words in an unstructured header, or in one of the
    simple address and Message-ID forms, is only unfolded — exactly what the header
    registry would return, at a fraction of the cost. Anything else goes through
    the registry, within the message's *budget* (see :mod:`mailsim_runtime.mimeguard`).
    """
    if raw.isascii() and "=?" not in raw:
        unfolded = "".join(raw.splitlines())
        kind = _REGISTRY.registry.get(name.lower(), _REGISTRY.default_class)
        if (
            issubclass(kind, UnstructuredHeader)
            or (issubclass(kind, AddressHeader) and _SIMPLE_MAILBOX.fullmatch(unfolded))
            or (issubclass(kind, MessageIDHeader) and _SIMPLE_MESSAGE_ID.fullmatch(unfolded))
        ):
            return unfolded
    return header_text(name, raw, budget or ParseBudget())


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
    values = list(values)
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
    if not _LINE_BREAKS.isdisjoint(value):
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


# A header field's first line, as the feed parser knows one: a name of printable
# ASCII but the colon, then the colon.
_FIELD_NAME = re.compile(rb"[\x21-\x39\x3b-\x7e]+:")


def _plain_header_fields(data: bytes) -> list[tuple[str, str]] | None:
    """The (name, raw value) pairs ``compat32``'s header parser would find in *data*,
    when the header section is plain: ASCII, CRLF line ends only, every line a field
    or a continuation, then an empty line. None otherwise (the parser decides).

    Values are what :meth:`email.policy.Compat32.header_source_parse` makes of the
    field's lines; splitting them here costs a fraction of the feed parser's time.
    """
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = data[:end]
    if not head.isascii() or head.count(b"\r") != head.count(b"\n"):
        return None
    lines = head.split(b"\r\n")
    if len(lines) != head.count(b"\n") + 1:
        return None  # a CR and an LF, but not together
    fields: list[tuple[str, list[str]]] = []
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            if not fields:
                return None
            fields[-1][1].append(line.decode("ascii"))
            continue
        found = _FIELD_NAME.match(line)
        if found is None:
            return None
        text = line.decode("ascii")
        colon = found.end() - 1
        fields.append((text[:colon], [text[colon + 1 :].lstrip(" \t")]))
    return [
        (name, "".join(part + "\r\n" for part in parts).rstrip("\r\n")) for name, parts in fields
    ]


class _RawHeaders:
    """The header section as :func:`_plain_header_fields` read it, with the parts of
    :class:`email.message.Message`'s interface that :class:`MailRequest` uses."""

    __slots__ = ("_names", "_values")

    def __init__(self, fields: list[tuple[str, str]]) -> None:
        self._names = [name for name, _ in fields]
        self._values: dict[str, list[str]] = {}
        for name, value in fields:
            self._values.setdefault(name.lower(), []).append(value)

    def get_all(self, name: str, failobj: list[str]) -> list[str]:
        found = self._values.get(name.lower())
        return list(found) if found else failobj

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._names))


class MailRequest:
    """A message as delivered to one recipient.

    ``sender`` is the envelope reverse-path (``""`` for a bounce's null sender),
    ``recipient`` the envelope recipient this delivery is for, ``peer`` the client
    that handed it over. ``original`` keeps the bytes exactly as received. The
    message is parsed only when something asks for it: headers alone on first header
    access, the whole message when a body, part or attachment is wanted.
    """

    __slots__ = ("__dict__", "original", "peer", "recipient", "sender")

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

    def __repr__(self) -> str:
        return (
            f"<MailRequest from={self.sender!r} to={self.recipient!r} {len(self.original)} bytes>"
        )

    @cached_property
    def _headers(self) -> Message | _RawHeaders:
        """The header section, values kept raw (decoded on demand by :meth:`get_all`)."""
        fields = _plain_header_fields(self.original)
        if fields is not None:
            return _RawHeaders(fields)
        return _RAW_HEADER_PARSER.parsebytes(self.original, headersonly=True)

    @cached_property
    def msg(self) -> EmailMessage:
        """The whole parsed message (``policy.default``, within the bounds of
        :mod:`mailsim_runtime.mimeguard`)."""
        return parse_message(self.original, self._budget)

    @cached_property
    def _budget(self) -> ParseBudget:
        return ParseBudget()

    @property
    def defects(self) -> list[MessageDefect]:
        """What was wrong with the message: the parser's defects of every part, then
        the header values too long or too strange to parse (read as received)."""
        return [*(d for part in self.walk() for d in part.defects), *self._budget.defects]

    # Header access ------------------------------------------------------------

    @cached_property
    def _decoded(self) -> dict[str, list[str]]:
        # Decoding a header through the header registry costs tens of microseconds
        # and handlers, the relay and the world ask for the same few again and again.
        return {}

    def __getitem__(self, name: str) -> str | None:
        values = self.get_all(name)
        return values[0] if values else None

    def __contains__(self, name: str) -> bool:
        return name in self._headers

    def get(self, name: str, default: str | None = None) -> str | None:
        value = self[name]
        return default if value is None else value

    def get_all(self, name: str) -> list[str]:
        """Every value of a (possibly repeated) header, in message order."""
        key = name.lower()
        values = self._decoded.get(key)
        if values is None:
            values = [
                _decode_header(name, str(raw), self._budget)
                for raw in self._headers.get_all(name, [])
            ]
            self._decoded[key] = values
        return values

    def keys(self) -> list[str]:
        return [str(k) for k in self._headers]

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
        check_header_value(name, value)
        del self[name]
        self._headers.append((name, value))

    def add_header(self, name: str, value: str) -> None:
        """Append a header, keeping any earlier one of the same name."""
        self._headers.append((name, check_header_value(name, value)))

    def __getitem__(self, name: str) -> str | None:
        key = name.lower()
        for field, value in self._headers:
            if field.lower() == key:
                return value
        return None

    def __delitem__(self, name: str) -> None:
        key = name.lower()
        self._headers = [(k, v) for k, v in self._headers if k.lower() != key]

    def __contains__(self, name: str) -> bool:
        return self[name] is not None

    def get_all(self, name: str) -> list[str]:
        key = name.lower()
        return [v for k, v in self._headers if k.lower() == key]

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
        values = self.get_all("To") + self.get_all("Cc") + self.get_all("Bcc")
        return addresses_in(values)

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
        if self._is_plain_ascii():
            return self._plain_bytes() or self._legacy_message().as_bytes(
                policy=_LEGACY_WIRE_POLICY
            )
        return self.to_message().as_bytes(policy=_WIRE_POLICY)

    def _plain_bytes(self) -> bytes | None:
        """What :meth:`_legacy_message` gives on the wire, written directly, when
        every header line is short enough to stay unfolded (else None)."""
        lines = [f"{name}: {value}" for name, value in self._headers if name.lower() != "bcc"]
        if any(len(line) > _PLAIN_LINE_LIMIT for line in lines):
            return None
        lines += _PLAIN_CONTENT_HEADERS
        body = self.body or ""
        text = "\r\n".join(lines) + "\r\n\r\n" + _ANY_LINE_END.sub("\r\n", body)
        if not body.endswith(("\n", "\r")):
            text += "\r\n"
        return text.encode("ascii")

    def _is_plain_ascii(self) -> bool:
        """A single ASCII text body and ASCII headers without encoded-words: the
        legacy API writes it byte for byte as the modern one would mean it."""
        if self.html is not None or self.attachments:
            return False
        body = self.body or ""
        if not body.isascii() or any(len(line) > _MAX_LINE for line in body.splitlines()):
            return False
        return all(
            value.isascii() and "=?" not in value and name.lower() not in _CONTENT_HEADERS
            for name, value in self._headers
        )

    def _legacy_message(self) -> Message:
        message = Message(policy=_LEGACY_WIRE_POLICY)
        for name, value in self._headers:
            if name.lower() != "bcc":
                message[name] = value
        message["MIME-Version"] = "1.0"
        body = self.body or ""
        message.set_payload(body if body.endswith("\n") else body + "\n", "us-ascii")
        return message


def format_address(display_name: str, address: str) -> str:
    """``"Name <addr>"`` with the name quoted or encoded as the standard library sees fit."""
    return str(Address(display_name=display_name, addr_spec=address))
