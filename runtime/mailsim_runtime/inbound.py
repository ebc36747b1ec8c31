"""What the receiver refuses, and how it stores a message with its envelope.

The checks here run on a message's content once the client has sent it all
(``\\r\\n.\\r\\n``), before anything is stored; each returns the SMTP reply that
refuses the message, or None. A message that passes is stored in the incoming
queue as :func:`encode_stored` writes it: a few envelope lines in header form
(the sender, every accepted recipient, the client) ahead of the content, so the
queue file is still a readable message and the envelope survives a crash with it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, getaddresses

__all__ = [
    "BARE_LINE_END",
    "NUL_IN_CONTENT",
    "Stored",
    "check_content",
    "decode_stored",
    "encode_stored",
    "envelope_from_headers",
    "header_size_reply",
    "line_too_long_reply",
    "loop_reply",
    "received_header",
    "too_big_reply",
]

# RFC 5321 §2.3.8: CR and LF may only appear together, as a line end. Anything else
# is how SMTP smuggling hides a second message inside the first.
BARE_LINE_END = "550 5.6.0 Message refused: bare CR or LF in its content (RFC 5321 section 2.3.8)"
NUL_IN_CONTENT = "550 5.6.0 Message refused: NUL character in its content (RFC 2045 section 2.7)"

_MAGIC = b"X-Mailsim-Envelope: 1"
_RECEIVED = re.compile(rb"^received[ \t]*:", re.IGNORECASE | re.MULTILINE)
_UNSAFE = re.compile(r"[^\x21-\x7e]")


def too_big_reply(limit: int) -> str:
    return f"552 5.3.4 Message too big: the limit is {limit} bytes"


def line_too_long_reply(limit: int) -> str:
    return (
        f"500 5.5.2 Line too long: the limit is {limit} bytes with CRLF "
        "(RFC 5321 section 4.5.3.1.6)"
    )


def header_size_reply(limit: int) -> str:
    return f"552 5.3.4 Message header too big: the limit is {limit} bytes"


def loop_reply(count: int) -> str:
    return f"554 5.4.6 Too many Received headers ({count}): a mail loop"


def check_content(
    content: bytes, lines: int, *, header_size: int, received_headers: int
) -> str | None:
    """The reply refusing *content* (its *lines* lines all end in CRLF), or None.

    Refused: any bare CR or LF, any NUL, a header section over *header_size*
    bytes, and *received_headers* or more ``Received`` headers (a loop). A limit
    of 0 is no limit.
    """
    # Every line ends in CRLF, so anything more than one CR and one LF per line
    # is a bare one; counting in C is far cheaper than scanning line by line.
    if content.count(b"\n") != lines or content.count(b"\r") != lines:
        return BARE_LINE_END
    if b"\0" in content:
        return NUL_IN_CONTENT
    end = content.find(b"\r\n\r\n")
    header = content if end < 0 else content[: end + 2]
    if content.startswith(b"\r\n"):
        header = b""
    if header_size and len(header) > header_size:
        return header_size_reply(header_size)
    if received_headers:
        count = len(_RECEIVED.findall(header))
        if count >= received_headers:
            return loop_reply(count)
    return None


def _safe(text: str, limit: int = 255) -> str:
    """*text* reduced to printable ASCII without spaces: fit for a trace header."""
    return _UNSAFE.sub("?", text)[:limit]


def received_header(
    *, helo: str | None, peer: str | None, hostname: str, protocol: str, recipients: Sequence[str]
) -> bytes:
    """The ``Received`` trace line a receiving server adds (RFC 5321 §4.4)."""
    parts = [f"Received: from {_safe(helo or 'unknown')} ({_safe(peer or 'local')})"]
    parts.append(f"by {_safe(hostname)} with {protocol}")
    if len(recipients) == 1:
        parts.append(f"for <{_safe(recipients[0])}>")
    parts[-1] += ";"
    parts.append(format_datetime(datetime.now(UTC)))
    return "\r\n\t".join(parts).encode("ascii") + b"\r\n"


@dataclass(frozen=True)
class Stored:
    """A queued message: its envelope and content as received."""

    sender: str
    recipients: tuple[str, ...]
    peer: str | None
    content: bytes


def _envelope_line(name: str, value: str) -> bytes:
    if "\r" in value or "\n" in value:
        # The receiver refuses such addresses at MAIL/RCPT; this is the last guard.
        raise ValueError(f"line break in envelope {name}: {value!r}")
    return f"{name}: {value}\r\n".encode("utf-8", "surrogateescape")


def encode_stored(
    sender: str, recipients: Sequence[str], peer: str | None, content: bytes
) -> bytes:
    """The queue file for a message: envelope lines, then *content* unchanged.

    The first line gives the content's length, so that a file cut short (by a
    disk that lied about an fsync, or a hand that copied it) is never taken for
    the whole message.
    """
    head = [
        _MAGIC + f"; recipients={len(recipients)}; size={len(content)}\r\n".encode("ascii"),
        _envelope_line("X-Mailsim-Peer", peer or ""),
        _envelope_line("Return-Path", f"<{sender}>"),
        *(_envelope_line("X-Mailsim-Envelope-To", f"<{r}>") for r in recipients),
    ]
    return b"".join([*head, content])


def _angle(value: bytes) -> str:
    text = value.decode("utf-8", "surrogateescape")
    if not (text.startswith("<") and text.endswith(">")):
        raise ValueError(f"expected <address>, got {text!r}")
    return text[1:-1]


def decode_stored(data: bytes) -> Stored | None:
    """The message :func:`encode_stored` made, or None if *data* is not one.

    Raises ValueError when *data* starts like one but is damaged.
    """
    if not data.startswith(_MAGIC):
        return None
    first, _, rest = data.partition(b"\r\n")
    found = re.fullmatch(rb"X-Mailsim-Envelope: 1; recipients=(\d+)(?:; size=(\d+))?", first)
    if not found:
        raise ValueError(f"unreadable envelope line {first[:80]!r}")
    count = int(found.group(1))
    size = None if found.group(2) is None else int(found.group(2))
    lines = rest.split(b"\r\n", count + 2)
    if len(lines) < count + 3:
        raise ValueError("the envelope is cut short")
    peer_line, sender_line, *recipient_lines = lines[: count + 2]
    if not peer_line.startswith(b"X-Mailsim-Peer: ") or not sender_line.startswith(
        b"Return-Path: "
    ):
        raise ValueError("the envelope lines are not in order")
    recipients = []
    for line in recipient_lines:
        name, _, value = line.partition(b": ")
        if name != b"X-Mailsim-Envelope-To":
            raise ValueError(f"expected a recipient line, got {line[:80]!r}")
        recipients.append(_angle(value))
    peer = peer_line.removeprefix(b"X-Mailsim-Peer: ").decode("utf-8", "surrogateescape")
    content = lines[count + 2]
    if size is not None and len(content) < size:
        raise ValueError(f"the file is cut short: {len(content)} of {size} bytes of content")
    return Stored(
        sender=_angle(sender_line.removeprefix(b"Return-Path: ")),
        recipients=tuple(recipients),
        peer=peer or None,
        content=content,
    )


_HEADER_END = re.compile(rb"\r?\n\r?\n")


def envelope_from_headers(data: bytes, accepts: Callable[[str], bool]) -> Stored | None:
    """The envelope of a message another MTA left in a Maildir, read off its headers.

    The sender is its ``Return-Path``; the recipient its topmost ``Delivered-To``
    or ``X-Original-To`` (what a delivering MTA writes), else those of its To and
    Cc addresses that *accepts* takes. None when no recipient can be found.
    """
    end = _HEADER_END.search(data)
    head = (data if end is None else data[: end.start()]).decode("utf-8", "surrogateescape")
    fields: dict[str, list[str]] = {}
    name = ""
    for line in re.split(r"\r?\n", head):
        if line[:1] in (" ", "\t") and name:
            fields[name][-1] += " " + line.strip()
            continue
        name, colon, value = line.partition(":")
        name = name.strip().lower()
        if colon:
            fields.setdefault(name, []).append(value.strip())
    sender = ""
    if fields.get("return-path"):
        sender = fields["return-path"][0].strip().removeprefix("<").removesuffix(">")
    recipients: list[str] = []
    for trace in ("delivered-to", "x-original-to"):
        if fields.get(trace):
            recipients = [fields[trace][0].strip().removeprefix("<").removesuffix(">")]
            break
    else:
        listed = getaddresses([*fields.get("to", []), *fields.get("cc", [])])
        recipients = [address for _, address in listed if address and accepts(address)]
    if not recipients:
        return None
    return Stored(sender, tuple(dict.fromkeys(recipients)), None, data)
