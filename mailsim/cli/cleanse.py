"""``mailsim cleanse``: keep the messages of a corpus that the standard library reads cleanly.

Test corpora gathered from the wild hold messages that are broken in ways a test
did not mean to test: undecodable headers, bad base64, missing boundaries, NUL
bytes, overlong lines. ``cleanse`` parses every message with :mod:`email`
(``policy.default``), looks at every defect the parser records, writes the clean
ones back in canonical wire form (CRLF line ends, whatever the source had) into a
Maildir, and says why each of the others was set aside.
"""

from __future__ import annotations

import email.policy
from email.errors import MessageDefect
from email.message import EmailMessage, Message
from email.parser import BytesParser
from pathlib import Path

import click
from mailsim_runtime.queue import MaildirQueue
from mailsim_runtime.transport import normalise_line_ends

from mailsim.cli import main
from mailsim.cli._common import fail
from mailsim.cli._folders import FolderError, MessageFolder

_PARSER = BytesParser(policy=email.policy.default)

#: RFC 5322 §2.1.1: a line is at most 998 characters, CRLF excluded.
LONGEST_LINE = 998

#: At most this many reasons are given for one message; the first say enough.
_REASONS = 3


def _defect(defect: MessageDefect, where: str) -> str:
    # Most defects carry no text of their own; their class's docstring explains them.
    explained = str(defect) or (type(defect).__doc__ or "").strip().split("\n")[0]
    detail = " ".join(explained.split()).rstrip(".")
    name = type(defect).__name__
    text = f"{name} ({detail})" if detail and detail != name else name
    return f"{where}: {text}"


def _part_problems(part: Message, where: str) -> list[str]:
    problems: list[str] = []
    try:
        # The modern policy parses a header when it is read, and only then
        # records the header's defects (or, for a few hostile values, raises).
        headers = list(part.items())
    except Exception as error:  # the stdlib raises assorted errors on hostile headers
        headers = []
        problems.append(f"{where}: a header cannot be parsed ({type(error).__name__})")
    for name, value in headers:
        problems += [_defect(defect, f"{where} {name}") for defect in getattr(value, "defects", ())]
    if not part.is_multipart():
        try:
            # Decoding the payload adds base64 and quoted-printable defects to the
            # part's list, and reading text finds unknown charsets.
            part.get_payload(decode=True)
            if isinstance(part, EmailMessage) and part.get_content_maintype() == "text":
                part.get_content()
        except (LookupError, UnicodeError, ValueError, AssertionError, KeyError) as error:
            problems.append(f"{where}: content cannot be decoded ({error})")
    return [_defect(defect, where) for defect in part.defects] + problems


def problems_of(message: Message) -> list[str]:
    """Every defect the parser records in *message*, naming the part and header."""
    problems: list[str] = []
    for number, part in enumerate(message.walk()):
        where = "message" if number == 0 else f"part {number}"
        problems += _part_problems(part, where)
    return list(dict.fromkeys(problems))  # a defect seen twice is reported once


def cleansed(data: bytes) -> tuple[bytes | None, list[str]]:
    """The canonical form of *data* and ``[]``, or ``None`` and why it was set aside."""
    if b"\0" in data:
        return None, ["contains NUL bytes (RFC 5322 allows none)"]
    try:
        message = _PARSER.parsebytes(data)
        problems = problems_of(message)
    except Exception as error:  # the parser should not raise, but hostile input finds ways
        return None, [f"cannot be parsed ({type(error).__name__}: {error})"]
    if problems:
        return None, problems
    try:
        canonical = normalise_line_ends(message.as_bytes(policy=email.policy.SMTP))
    except Exception as error:  # the generator refuses some values the parser let through
        return None, [f"cannot be written back ({type(error).__name__}: {error})"]
    for number, line in enumerate(canonical.split(b"\r\n"), 1):
        if len(line) > LONGEST_LINE:
            return None, [f"line {number} is {len(line)} characters (over {LONGEST_LINE})"]
    # What is written must read back as cleanly as what was read.
    again = problems_of(_PARSER.parsebytes(canonical))
    if again:
        return None, [f"its canonical form reads back with defects: {again[0]}"]
    return canonical, []


def _reasons(reasons: list[str]) -> str:
    shown = "; ".join(reasons[:_REASONS])
    return f"{shown}; and {len(reasons) - _REASONS} more" if len(reasons) > _REASONS else shown


@main.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("target", type=click.Path(path_type=Path))
@click.option("--quiet", "-q", is_flag=True, help="Print only the totals.")
def cleanse(source: Path, target: Path, quiet: bool) -> None:
    """Copy the messages that parse cleanly from SOURCE into the Maildir TARGET.

    For cleaning test corpora: each message of SOURCE (a Maildir, an mbox file or
    a folder of .eml files) is parsed with Python's email package, and every
    defect it records is looked for (in headers, MIME structure, base64 and
    quoted-printable bodies, charsets), as are NUL bytes and lines over 998
    characters. Clean messages are written to TARGET (made if needed) in
    canonical wire form, CRLF line ends; the others are listed with the reason
    they were set aside. SOURCE itself is never changed.

    \b
    Example:
      mailsim cleanse ~/Mail/spam-archive.mbox tests/data/spam
    """
    try:
        folder = MessageFolder(source)
    except FolderError as error:
        fail(str(error))
    if target.exists() and not target.is_dir():
        fail(f"{target}: exists and is not a folder")
    if target.resolve() == source.resolve():
        fail(f"{target}: the target must not be the source")
    is_maildir = (target / "new").is_dir() and (target / "cur").is_dir()
    if target.is_dir() and any(target.iterdir()) and not is_maildir:
        fail(f"{target}: not empty and not a Maildir")
    # No fsync per message: a corpus can be made again, and fsync costs ~30 ms each.
    out = MaildirQueue(target, durable=False)
    written = total = 0
    try:
        for label, data in folder:
            total += 1
            canonical, reasons = cleansed(data)
            if canonical is None:
                if not quiet:
                    click.echo(f"set aside {label}: {_reasons(reasons)}")
                continue
            out.push(canonical)
            written += 1
    except OSError as error:
        fail(f"{source}: {error}")
    click.echo(f"wrote {written} of {total} messages to {target}; set aside {total - written}")
