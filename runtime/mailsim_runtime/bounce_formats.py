"""Reading bounces as text: the parts of the message, and the non-standard formats.

:mod:`bounce` reads RFC 3464 field blocks; everything else a bounce says is text,
gathered here. :func:`collect` walks the message with the standard library (the
delivery-status parts, the decoded text parts, the headers of the returned
message). Many servers send no RFC 3464 part at all (qmail, Exim, old Postfix
and Sendmail, Courier, OpenSMTPD, Exchange, Gmail, Yahoo, Lotus Notes ...), but
nearly all write the same layout: an introduction, a list of failed addresses
each followed by the remote server's reply, then a copy of the returned message.
So a format here is only the sentence that recognises it and the sentence after
which its list starts; one splitter (:func:`split_blocks`) cuts every format's
list into per-address blocks, and small helpers pull the reply code, the status
code, the SMTP stage and the host names out of a block.

Input is bounded (text per part, lines, line length) and the expressions cannot
backtrack badly (possessive quantifiers where runs could overlap), so a hostile
message costs linear time.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.parser import HeaderParser
from email.policy import compat32

__all__ = [
    "ADDRESS",
    "Block",
    "Parts",
    "addresses",
    "clean_address",
    "collect",
    "detect_stage",
    "diagnostic_line",
    "embedded_report",
    "field_blocks",
    "find_failures",
    "find_remote_mta",
    "find_reply",
    "find_status",
    "header",
    "original_message_id",
    "reporting_mta",
    "split_blocks",
    "split_original",
    "unquoted",
]

MAX_TEXT = 65_536  # characters read from one text part
MAX_PARTS = 200  # parts visited in one message
MAX_LINE = 1000  # longer lines are cut: no report line is that long
MAX_HEADER = 4000  # characters read from one header value
MAX_BLOCK_LINES = 30
MAX_RECIPIENTS = 1000  # Postfix's limit per message: no report names more

_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]"
# The look-behind starts a match only where a run of local-part characters
# starts; otherwise a long run with no "@" is rescanned from every position.
ADDRESS = re.compile(rf"(?<!{_LOCAL}){_LOCAL}++@[A-Za-z0-9-]++(?:\.[A-Za-z0-9-]++)++")
_RECIPIENT_LINE = re.compile(
    rf"[ \t]*+(?:(?:to|recipient|address)[ \t]*+:[ \t]*+)?[\"']?<?({_LOCAL}++@[A-Za-z0-9-]++"
    r"(?:\.[A-Za-z0-9-]++)++)>?[\"']?(.*)",
    re.IGNORECASE,
)
# RFC 3463: class 2, 4 or 5; subject 0-7; detail up to three digits. The
# look-arounds keep version numbers and addresses ("4.16.55.1", "192.0.2.5") out.
STATUS = re.compile(r"(?<![\d.])([245])\.([0-7])\.(\d{1,3})(?!\d|\.\d)")
REPLY = re.compile(r"(?<![\w.:/\[-])([245][0-5]\d)(?=[ \t-]|$)", re.MULTILINE)
_SEPARATOR = re.compile(r"[ \t]*+[-=_*|#]{5}")
_ORIGINAL_MARKERS = re.compile(
    r"^[ \t|]*+-*+[ \t]*+(?:This is a copy of (?:the|your) message|Below this line is a copy"
    r"|(?:Original|Returned|Unsent|Undelivered) message(?: follows)?[ \t:-]*+$"
    r"|Message text follows|The original message follows|\[original message"
    r"|Content-Type: message/(?:rfc822|global)|Content-Type: text/rfc822-headers"
    r"|(?:The )?headers? of the original message|Original message headers)",
    re.IGNORECASE | re.MULTILINE,
)
_EMBEDDED_FIELDS = re.compile(
    r"^(?:Reporting-MTA|Final-Recipient|Original-Recipient):", re.IGNORECASE | re.MULTILINE
)
_MESSAGE_ID = re.compile(r"^Message-ID:[ \t]*+(<[^<>\s]{1,500}>)", re.I | re.M)
_QUOTE = re.compile(r"^[ \t]*+>[ \t]?", re.MULTILINE)
_FIELDS = HeaderParser(policy=compat32)


# Reading the message ------------------------------------------------------------


def header(message: Message, name: str) -> str:
    """A header's value on one line, RFC 2047 decoded; '' when missing or unreadable.

    The raw value is read and decoded with :mod:`email.header`: the structured
    header parsers of ``policy.default`` take quadratic time on hostile values.
    """
    wanted = name.lower()
    for key, value in message.raw_items():
        if key.lower() == wanted:
            text = str(value)[:MAX_HEADER]
            with contextlib.suppress(Exception):  # a broken encoded-word stays as written
                text = str(make_header(decode_header(text)))
            return " ".join(text.replace("\x00", "").split())
    return ""


def addresses(text: str) -> list[str]:
    """Every address in *text*, cleaned (see :func:`clean_address`)."""
    return [clean_address(found) for found in ADDRESS.findall(text[:MAX_HEADER])]


def clean_address(value: str) -> str:
    """``"rfc822; <User@Example.COM>"`` -> ``"User@example.com"``; '' if not an address."""
    found = ADDRESS.search(value.rpartition(";")[2].strip()[:MAX_LINE])
    if found is None:
        return ""
    local, _, domain = found.group(0).rpartition("@")
    return f"{local.strip('.')}@{domain.strip('.-').lower()}"


@dataclass
class Parts:
    """What a walk over a message found."""

    reports: list[list[Message]] = field(default_factory=list)  # delivery-status blocks
    texts: list[str] = field(default_factory=list)  # decoded text parts, in order
    original: Message | None = None  # headers of the returned message


def text_of(part: Message) -> str:
    """A part's decoded text (at most :data:`MAX_TEXT` characters), HTML tags dropped."""
    content: object = None
    if isinstance(part, EmailMessage):
        try:
            content = part.get_content()
        except Exception:  # unknown or lying charset, broken transfer encoding
            content = None
    if not isinstance(content, str):
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            return ""
        try:
            content = payload.decode(part.get_content_charset() or "utf-8", errors="replace")
        except LookupError:
            content = payload.decode("latin-1")
    text = str(content)[:MAX_TEXT].replace("\x00", "")
    if part.get_content_subtype() == "html":
        text = re.sub(r"<[^<>]{0,2000}>", " ", text)
    return text


def field_blocks(text: str) -> list[Message]:
    """RFC 3464 field blocks (groups of fields between blank lines) read from text."""
    chunks = re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n")[:MAX_TEXT])
    return [_FIELDS.parsestr(chunk.strip("\n") + "\n") for chunk in chunks if chunk.strip()]


def collect(message: Message) -> Parts:
    """Walk *message*: its delivery-status parts, its text, the returned message."""
    found = Parts()
    stack: list[Message] = [message]
    visited = 0
    while stack and visited < MAX_PARTS:
        part = stack.pop()
        visited += 1
        kind = part.get_content_type()
        payload = part.get_payload()
        if kind in ("message/delivery-status", "message/global-delivery-status"):
            if isinstance(payload, list):
                found.reports.append([b for b in payload if isinstance(b, Message)])
            else:
                found.reports.append(field_blocks(text_of(part)))
        elif kind in ("message/rfc822", "message/global", "text/rfc822-headers"):
            # The returned message: its headers matter, its words are not the report's.
            if found.original is None:
                inner = payload[0] if isinstance(payload, list) and payload else None
                found.original = (
                    inner if isinstance(inner, Message) else (_FIELDS.parsestr(text_of(part)))
                )
        elif part.is_multipart() and isinstance(payload, list):
            stack.extend(reversed([p for p in payload if isinstance(p, Message)]))
        elif (
            kind in ("text/plain", "text/html") or part.get_content_maintype() == "multipart"
        ) and len(found.texts) < 10:
            # (A multipart whose boundaries are missing is left as text: read it.)
            found.texts.append(text_of(part))
    return found


def embedded_report(text: str) -> list[Message]:
    """The field blocks of a delivery-status part that broken MIME left in the text."""
    found = _EMBEDDED_FIELDS.search(text)
    return field_blocks(text[found.start() :]) if found else []


def unquoted(text: str) -> str:
    """A bounce forwarded inline ("> " before every line) as the bounce itself."""
    for _ in range(3):
        lines = [line for line in text.splitlines()[:2000] if line.strip()]
        quoted = sum(line.lstrip().startswith(">") for line in lines)
        if not lines or quoted * 2 <= len(lines):
            break
        text = _QUOTE.sub("", text)
    return text


def split_original(text: str) -> tuple[str, str]:
    """Cut *text* where the copy of the returned message starts: (report, original)."""
    found = _ORIGINAL_MARKERS.search(text)
    return (text, "") if found is None else (text[: found.start()], text[found.start() :])


def human_part(text: str) -> str:
    """The report's prose: *text* up to any RFC 3464 fields left in it."""
    found = _EMBEDDED_FIELDS.search(text)
    return text[: found.start()] if found else text


# The formats ----------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """One failed address and the report's text about it."""

    recipient: str
    text: str


@dataclass(frozen=True)
class _Format:
    name: str
    signature: re.Pattern[str]
    start: re.Pattern[str] | None = None
    one_line: bool = False  # the diagnostic is the rest of the address's line only


def _re(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE | re.MULTILINE)


# The more specific first, where signatures overlap.
# fmt: off
FORMATS = (
    _Format("qmail", _re(r"qmail-send program|wasn't able to deliver your message to the"),
            _re(r"following addresses?\.?")),
    _Format("opensmtpd", _re(r"This is the MAILER-DAEMON, please DO NOT REPLY"),
            _re(r"list of\s+recipients:"), one_line=True),
    _Format("courier", _re(r"running the Courier mail server|^[ \t]*+UNDELIVERABLE MAIL[ \t]*$"),
            _re(r"recipients? cannot be delivered:")),
    _Format("exim", _re(r"created automatically by (?:mail delivery software|the SMTP relay)"
                        r"|A message that you sent (?:could not|has not yet been|contained)"),
            _re(r"address\(es\) failed:|not yet been delivered is:|addresses failed:"
                r"|incorrectly constructed:")),
    _Format("postfix", _re(r"This is the (?:mail system|Postfix program) at host"),
            _re(r"^[ \t]*+The (?:mail system|Postfix program)[ \t]*$|^-{20,}[ \t]*$")),
    _Format("sendmail", _re(r"^[ \t]*+-++ The following addresses had|Transcript of session"),
            _re(r"^[ \t]*+-++ The following addresses had[^\n]*")),
    _Format("exchange", _re(r"Delivery has failed to these recipients|did not reach the "
                            r"following recipient|could not be delivered to one or more recip"
                            r"|following recipient\(s\) cannot be reached"),
            _re(r"recipients or groups:|following recipient\(?s?\)?:|cannot be reached:")),
    _Format("office365", _re(r"Your message to \S+@\S+ couldn't be delivered"),
            _re(r"Your message to\s+")),
    _Format("gmail", _re(r"Delivery to the following recipients? failed|wasn't delivered to "
                         r"\S+@|The response from the remote server was"),
            _re(r"recipients? failed(?: permanently)?:|wasn't delivered to\s+")),
    _Format("yahoo", _re(r"unable to deliver your message to the following address"),
            _re(r"following address(?:es)?\.?")),
    _Format("notes", _re(r"^[ \t]*+was not delivered to:[ \t]*$"), _re(r"was not delivered to:")),
    _Format("generic", _re(r"(?:could ?n[o']t|cannot|can't|was ?n[o']t|unable to) (?:be )?"
                           r"deliver|undeliver|deliver\w* (?:has )?failed|failed recipient"
                           r"|permanent (?:fatal )?error|returned mail|delivery status notif"
                           r"|failed addresses")),
)
# fmt: on


def split_blocks(
    region: str,
    excluded: Iterable[str] = (),
    *,
    one_line: bool = False,
) -> list[Block]:
    """Cut a report's list of failed addresses into one block per address.

    A line that starts with an address opens that address's block; the lines
    after it belong to it until the next address, a separator line, or (once the
    block holds a reply code) a new unindented paragraph. A later block for the
    same address (a transcript line, a repeated address) is added to the first.
    """
    skip = {a.lower() for a in excluded}
    blocks: dict[str, list[str]] = {}
    current: str | None = None
    blank = False
    for raw in region.splitlines()[:2000]:
        line = raw[:MAX_LINE]
        found = _RECIPIENT_LINE.match(line)
        address = clean_address(found.group(1)) if found else ""
        if found and address and address.lower() not in skip:
            current = address
            blocks.setdefault(address, []).append(found.group(2))
            blank = False
        elif current is None:
            continue
        elif one_line or (_SEPARATOR.match(line) and "transcript" not in line.lower()):
            current = None
        elif not line.strip():
            blank = True
        elif blank and not line[:1].isspace() and REPLY.search("\n".join(blocks[current])):
            current = None  # a new paragraph after the server's reply: boilerplate
        elif len(blocks[current]) < MAX_BLOCK_LINES:
            blocks[current].append(line)
            blank = False
    return [Block(address, "\n".join(lines)) for address, lines in blocks.items()][:MAX_RECIPIENTS]


def find_failures(
    text: str,
    excluded: Iterable[str] = (),
    *,
    anyhow: bool = False,
) -> tuple[str, list[Block]] | None:
    """Recognise a non-standard report in *text* (the prose, returned copy cut off).

    Returns the format's name and its blocks, or None when no format recognises
    the text; with *anyhow* (the headers leave no doubt that this is a bounce) an
    unrecognised text is still split into blocks (format ``"unknown"``).
    *excluded* addresses (the report's own sender and recipient) are not taken
    for failed ones unless they appear inside a format's list of failures. A
    recognised report whose addresses cannot be found gives one block with an
    empty recipient, so that its reason can still be read.
    """
    transcript = _smtpd_transcript(text)
    if transcript is not None:
        return "postfix-smtpd", transcript
    for form in FORMATS:
        signature = form.signature.search(text)
        if signature is None:
            continue
        start = None
        if form.start is not None:
            start = form.start.search(text, signature.start()) or form.start.search(text)
        region, skip = (text[start.end() :], ()) if start else (text, tuple(excluded))
        blocks = split_blocks(region, skip, one_line=form.one_line)
        if not blocks:
            found = [a for a in addresses(region[:MAX_TEXT]) if a.lower() not in skip]
            blocks = [Block(found[0] if found else "", region.strip()[:4000])]
        return form.name, blocks
    blocks = split_blocks(text, excluded) if anyhow else []
    return ("unknown", blocks) if blocks else None


_IN_RCPT = re.compile(r"^[ \t]*+In:[ \t]++RCPT[ \t]++TO:[ \t]*+<([^>\s]*+)>", re.I | re.M)
_IN_COMMAND = re.compile(r"^[ \t]*+In:[ \t]++(\S++(?:[ \t]++\S++)?)", re.MULTILINE)
_OUT_ERROR = re.compile(r"^[ \t]*+Out:[ \t]++([45]\d\d\b[^\n]*)", re.MULTILINE)


def _smtpd_transcript(text: str) -> list[Block] | None:
    """Postfix's "errors from <client>" notice: an SMTP session transcript (In:/Out:)."""
    if "Transcript of session follows" not in text or _IN_RCPT.search(text) is None:
        return None
    error = _OUT_ERROR.search(text)
    if error is None:
        return None
    # The command the error answered is the last "In:" before it; the reply to
    # DATA after "354" answers the message itself.
    commands = _IN_COMMAND.findall(text[: error.start()])
    command = commands[-1].upper() if commands else ""
    stage = "end of DATA" if command.startswith("DATA") else command
    return [
        Block(clean_address(m.group(1)), f"{error.group(1)} (in reply to {stage} command)")
        for m in _IN_RCPT.finditer(text)
    ]


# Reading a block -----------------------------------------------------------------


def find_status(text: str, *, failures_only: bool = True) -> str:
    """The first RFC 3463 status in *text* (only class 4 or 5 if *failures_only*)."""
    for found in STATUS.finditer(text):
        if found.group(1) in "45" or not failures_only:
            return ".".join(found.groups())
    return ""


def find_reply(text: str) -> str:
    """The SMTP reply code of the failure: the first 5xx, else the first 4xx, else ''."""
    codes = [m.group(1) for m in REPLY.finditer(text)]
    return next((c for c in codes if c[0] == "5"), next((c for c in codes if c[0] == "4"), ""))


def diagnostic_line(text: str, limit: int = 400) -> str:
    """The remote server's words in a block, from its reply code on, on one line."""
    flat = " ".join(text.split())
    found = next((m for m in REPLY.finditer(flat) if m.group(1)[0] in "45"), None)
    if found is not None:
        flat = flat[found.start() : found.start() + 2000]
    else:
        flat = re.sub(r"^.{0,200}?(?:said|reason):\s*", "", flat[:2000], flags=re.IGNORECASE)
    flat = re.sub(r"\s*\(in reply to [^)]*\)?\s*$", "", flat, flags=re.IGNORECASE)
    return flat.strip(" :()")[:limit]


_STAGES = (
    ("EOD", _re(r"end of data|after I sent the message|failed on DATA command")),
    ("RCPT", _re(r"in reply to RCPT|after RCPT|progress was RCPT|does not like recipient")),
    ("MAIL", _re(r"in reply to MAIL|after MAIL FROM|progress was MAIL|sender was rejected")),
    ("DATA", _re(r"in reply to DATA|after (?:pipelined )?DATA\b|progress was DATA")),
    (
        "CONN",
        _re(
            r"after (?:initial connection|EHLO|HELO|greeting)|in reply to [EH]LO\b"
            r"|refused to talk to me|greeting failed|in reply to initial greeting"
            r"|my name was rejected"
        ),
    ),
)
_TRANSCRIPT_COMMAND = re.compile(r"^[ \t]*+>>>[ \t]*+(RCPT|MAIL|DATA|EHLO|HELO)", re.I | re.M)
_TRANSCRIPT_ERROR = re.compile(r"^[ \t]*+<<<[ \t]*+[45]\d\d", re.MULTILINE)


def detect_stage(text: str) -> str:
    """At which SMTP command the failure happened: CONN, MAIL, RCPT, DATA, EOD or ''."""
    flat = " ".join(text.split())  # "(in reply to\n    RCPT TO command)"
    for stage, pattern in _STAGES:
        if pattern.search(flat):
            return stage
    # Sendmail and Courier transcripts: the last ">>> COMMAND" before the first
    # error reply is the command that reply answered.
    error = _TRANSCRIPT_ERROR.search(text)
    commands = _TRANSCRIPT_COMMAND.findall(text[: error.start()]) if error else []
    if not commands:
        return ""
    command = commands[-1].upper()
    return "CONN" if command in ("EHLO", "HELO") else command


_HOST = r"([A-Za-z0-9-]++(?:\.[A-Za-z0-9-]++)++)"
_REMOTE = (
    re.compile(rf"\bhost {_HOST} ?\[[0-9A-Fa-f.:]+\]"),  # Postfix, Exim
    re.compile(rf"while talking to {_HOST}\.?:"),  # Sendmail
    re.compile(rf"^[ \t]++{_HOST} \[[0-9A-Fa-f.:]+\]:[ \t]*$", re.MULTILINE),  # Courier
    re.compile(rf"(?:Connected to|remote host) {_HOST}(?: but|\s+said)", re.IGNORECASE),
    re.compile(rf"^{_HOST} (?:does not like|failed after)", re.MULTILINE),  # qmail
    re.compile(rf"by the server for the\s+recipient\s+domain\s+\S+\s+by\s+{_HOST}"),  # Gmail
    re.compile(rf"Generating server: {_HOST}"),  # Exchange
)
_REPORTING = (
    re.compile(rf"This is the (?:mail system|Postfix program) at host {_HOST}"),
    re.compile(rf"qmail-send program at {_HOST}"),
    re.compile(rf"delivery status notification from {_HOST}", re.IGNORECASE),
    re.compile(rf"SMTP relay on {_HOST}"),
    re.compile(rf"on the queue on {_HOST}"),
)


def _first(patterns: Iterable[re.Pattern[str]], text: str) -> str:
    for pattern in patterns:
        found = pattern.search(text)
        if found is not None:
            return found.group(1).rstrip(".").lower()
    return ""


def find_remote_mta(text: str) -> str:
    """The remote server a block names ("host mx.example.com[192.0.2.1] said"), else ''."""
    return _first(_REMOTE, text)


def reporting_mta(message: Message, text: str) -> str:
    """The host that wrote a report: named in its introduction, else the domain of
    its MAILER-DAEMON or postmaster author, else ''."""
    author = [*addresses(header(message, "From")), "@"][0]
    local, _, domain = author.rpartition("@")
    daemon = local.lower() in ("mailer-daemon", "postmaster")
    return _first(_REPORTING, text) or (domain if daemon else "")


def original_message_id(original: Message | None, original_text: str) -> str | None:
    """The returned message's Message-ID: from its headers, else from its copy in text."""
    if original is not None and (value := header(original, "Message-ID")):
        return value
    found = _MESSAGE_ID.search(original_text)
    return found.group(1) if found else None
