"""``mailsim send``, ``mailsim sendmail`` and ``mailsim blast``: mail into a server.

All three talk SMTP (or LMTP) to the project's receiver by default, or to any
server named with --host/--port. ``send`` builds one message from options,
``sendmail`` takes one on standard input as the classic sendmail program does (so
mutt and friends can use the development server), and ``blast`` replays a whole
Maildir or mbox over one connection.
"""

from __future__ import annotations

import email.policy
import getpass
import mimetypes
import re
import smtplib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser
from email.utils import formatdate, getaddresses, make_msgid, parseaddr
from pathlib import Path

import click

from mailsim.cli import main
from mailsim.cli._common import fail
from mailsim.cli._folders import FolderError, MessageFolder
from mailsim.cli._smtp import (
    Outcome,
    Server,
    Session,
    SessionError,
    report_refusals,
    resolve_server,
    server_options,
)

# Header parsing for envelopes only: compat32 hands back the raw text, and never
# raises on the odd header the way the modern policy's typed headers can.
_HEADERS = BytesHeaderParser(policy=email.policy.compat32)
_WIRE = email.policy.SMTP
_HEADER_END = re.compile(rb"\r\n\r\n")


def _default_sender() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        user = "mailsim"
    return f"{user}@localhost"


def _addresses(headers: Message, *names: str) -> list[str]:
    values = [str(value) for name in names for value in headers.get_all(name, [])]
    return [address for _, address in getaddresses(values) if address]


@contextmanager
def _session(server: Server, *, starttls: bool, debug: bool, timeout: float) -> Iterator[Session]:
    """A connected session, closed at the end; a failure to connect fails the command."""
    session = Session(server, starttls=starttls, debug=debug, timeout=timeout)
    try:
        session.open()
    except SessionError as error:
        fail(str(error))
    try:
        yield session
    finally:
        session.close()


def _send_one(session: Session, sender: str, recipients: list[str], data: bytes) -> Outcome:
    try:
        return session.send(sender, recipients, data)
    except smtplib.SMTPServerDisconnected:
        fail(f"{session.server} closed the connection")
    except (smtplib.SMTPException, OSError) as error:
        fail(f"sending to {session.server} failed: {error}")


timeout_option = click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="Seconds to wait for the server at each step.",
)


# send -----------------------------------------------------------------------------


@main.command()
@click.option(
    "--to",
    "recipients",
    multiple=True,
    required=True,
    metavar="ADDRESS",
    help="A recipient (repeat for more).",
)
@click.option(
    "--from",
    "sender",
    metavar="ADDRESS",
    default=None,
    help="The sender, in From and MAIL FROM (default: you@localhost).",
)
@click.option("--subject", default="", help="The subject.")
@click.option("--body", default="", help="The text of the message; - reads it from stdin.")
@click.option(
    "--attach",
    "attachments",
    multiple=True,
    type=click.Path(path_type=Path),
    metavar="FILE",
    help="Attach FILE (repeat for more).",
)
@server_options
@click.option("--starttls", is_flag=True, help="Start TLS before sending (and insist on it).")
@click.option("--debug", is_flag=True, help="Show the SMTP conversation on stderr.")
@timeout_option
def send(
    recipients: tuple[str, ...],
    sender: str | None,
    subject: str,
    body: str,
    attachments: tuple[Path, ...],
    host: str | None,
    port: int | None,
    protocol: str | None,
    project: Path | None,
    starttls: bool,
    debug: bool,
    timeout: float,
) -> None:
    """Send one message to an SMTP server (by default, the project's receiver).

    \b
    Example:
      mailsim send --to echo@myapp.example.com --subject Hello --body "Hi there"

    With --starttls the server's certificate must be trusted by the system's
    certificate store (point SSL_CERT_FILE at a test CA to add one).
    """
    server = resolve_server(project, host, port, protocol)
    sender = sender if sender is not None else _default_sender()
    envelope_sender = parseaddr(sender)[1] or sender  # "Alice <a@x>" is sent from a@x
    if body == "-":
        body = sys.stdin.read()
    message = _build(sender, list(recipients), subject, body, attachments)
    data = message.as_bytes(policy=_WIRE)
    with _session(server, starttls=starttls, debug=debug, timeout=timeout) as session:
        outcome = _send_one(session, envelope_sender, list(recipients), data)
    report_refusals(outcome, server)
    click.echo(f"sent {message['Message-ID']} to {', '.join(outcome.accepted)} via {server}")


def _build(
    sender: str, recipients: list[str], subject: str, body: str, attachments: tuple[Path, ...]
) -> EmailMessage:
    message = EmailMessage(policy=email.policy.default)
    try:
        message["From"] = sender
        message["To"] = ", ".join(recipients)
        message["Subject"] = subject
    except ValueError as error:  # a line break in a value: it would start a header
        fail(f"cannot use that as a header: {error}")
    message["Date"] = formatdate(localtime=True)
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid(domain=domain)
    message.set_content(body)
    for path in attachments:
        if not path.is_file():
            fail(f"--attach {path}: no such file")
        kind, encoding = mimetypes.guess_type(path.name)
        if kind is None or encoding is not None:  # e.g. .tar.gz: send the bytes as they are
            kind = "application/octet-stream"
        maintype, subtype = kind.split("/", 1)
        message.add_attachment(
            path.read_bytes(), maintype=maintype, subtype=subtype, filename=path.name
        )
    return message


# sendmail -------------------------------------------------------------------------


@main.command(
    context_settings={"ignore_unknown_options": True},
    epilog='Mutt: set sendmail="mailsim sendmail -oem -oi" (mailsim gen writes a muttrc).',
)
@click.option("-t", "read_recipients", is_flag=True, help="Also send to To, Cc and Bcc; drop Bcc.")
@click.option("-f", "-r", "envelope_sender", metavar="SENDER", help="The envelope sender.")
@click.option("-i", "ignore_dots", is_flag=True, help="A lone '.' line does not end the message.")
@click.option(
    "-o",
    "options",
    multiple=True,
    metavar="OPTION",
    help="Sendmail options: -oi is -i; others (-oem, -odb …) are accepted and ignored.",
)
@click.option("-b", "mode", default="m", metavar="MODE", help="Only -bm (deliver) is supported.")
@click.option("-v", "verbose", is_flag=True, help="The same as --debug.")
@click.option("-F", "full_name", hidden=True)
@click.option("-N", "dsn", hidden=True)
@click.option("-R", "dsn_return", hidden=True)
@click.option("-V", "envelope_id", hidden=True)
@click.option("-B", "body_type", hidden=True)
@click.option("-X", "log_file", hidden=True)
@click.option("-C", "config_file", hidden=True)
@click.option("-L", "label", hidden=True)
@click.option("-O", "long_options", multiple=True, hidden=True)
@click.option("-A", "submission", hidden=True)
@click.option("-G", "gateway", is_flag=True, hidden=True)
@click.option("-U", "initial", is_flag=True, hidden=True)
@click.option("-m", "me_too", is_flag=True, hidden=True)
@click.option("-n", "no_alias", is_flag=True, hidden=True)
@click.argument("recipients", nargs=-1)
@server_options
@click.option("--debug", is_flag=True, help="Show the SMTP conversation on stderr.")
@timeout_option
def sendmail(
    read_recipients: bool,
    envelope_sender: str | None,
    ignore_dots: bool,
    options: tuple[str, ...],
    mode: str,
    verbose: bool,
    recipients: tuple[str, ...],
    host: str | None,
    port: int | None,
    protocol: str | None,
    project: Path | None,
    debug: bool,
    timeout: float,
    **ignored: object,
) -> None:
    """Send the message on stdin, as sendmail(8) does: for mutt and scripts.

    Recipients are the arguments, plus with -t those in To, Cc and Bcc (the Bcc
    header is removed). The envelope sender is -f (or -r), else the From address. The
    message goes to the project's receiver unless --host/--port say otherwise.
    The other flags mail programs pass (-oem, -odb, -F, -N, -B8BITMIME …) are
    accepted and have no effect.

    \b
    Example:
      printf 'To: echo@myapp.example.com\\nSubject: Hi\\n\\nHello\\n' | mailsim sendmail -t
    """
    if mode != "m":
        fail(f"-b{mode}: only -bm (deliver the message on stdin) is supported")
    unknown = [r for r in recipients if r.startswith("-")]
    for flag in unknown:
        click.echo(f"mailsim sendmail: ignoring unknown option {flag}", err=True)
    targets = [r for r in recipients if not r.startswith("-")]
    raw = sys.stdin.buffer.read()
    if not (ignore_dots or "i" in options):
        raw = _cut_at_lone_dot(raw)
    data = _prepare(raw)
    headers = _HEADERS.parsebytes(data)
    if read_recipients:
        targets += _addresses(headers, "To", "Cc", "Bcc")
        data = _without_bcc(data)
    targets = list(dict.fromkeys(targets))  # each once, in order
    if not targets:
        fail("no recipients: give them as arguments, or -t to take them from To, Cc and Bcc")
    if envelope_sender is not None:
        sender = "" if envelope_sender in ("", "<>") else envelope_sender
    else:
        sender = next(iter(_addresses(headers, "From")), None) or _default_sender()
    server = resolve_server(project, host, port, protocol)
    with _session(server, starttls=False, debug=debug or verbose, timeout=timeout) as session:
        outcome = _send_one(session, sender, targets, data)
    report_refusals(outcome, server)


def _cut_at_lone_dot(raw: bytes) -> bytes:
    """The message up to a line holding only '.', as sendmail without -i reads it."""
    lines = raw.splitlines(keepends=True)
    for number, line in enumerate(lines):
        if line.rstrip(b"\r\n") == b".":
            return b"".join(lines[:number])
    return raw


def _prepare(raw: bytes) -> bytes:
    """CRLF line ends, and no mbox 'From ' line."""
    data = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if data.startswith(b"From "):  # an mbox separator, not a header (as Postfix does)
        data = data.partition(b"\n")[2]
    return data.replace(b"\n", b"\r\n")


def _without_bcc(data: bytes) -> bytes:
    """*data* (CRLF line ends) without its Bcc header lines; the rest byte for byte."""
    end = _HEADER_END.search(data)
    head, body = (data[: end.start() + 2], data[end.start() + 2 :]) if end else (data, b"")
    kept: list[bytes] = []
    dropping = False
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):  # a continuation belongs to the header above
            if not dropping:
                kept.append(line)
            continue
        dropping = line.split(b":", 1)[0].strip().lower() == b"bcc"
        if not dropping:
            kept.append(line)
    return b"".join(kept) + body


# blast ----------------------------------------------------------------------------


@main.command()
@click.argument("source", type=click.Path(path_type=Path))
@server_options
@click.option(
    "--sender",
    metavar="ADDRESS",
    default=None,
    help="The envelope sender for every message (default: each one's Return-Path, else "
    "From; '' for <>).",
)
@click.option(
    "--to",
    "recipients",
    multiple=True,
    metavar="ADDRESS",
    help="Send every message to ADDRESS (repeatable; default: each one's To, Cc and Bcc).",
)
@click.option("--starttls", is_flag=True, help="Start TLS before sending (and insist on it).")
@timeout_option
def blast(
    source: Path,
    host: str | None,
    port: int | None,
    protocol: str | None,
    project: Path | None,
    sender: str | None,
    recipients: tuple[str, ...],
    starttls: bool,
    timeout: float,
) -> None:
    """Send every message of a Maildir, mbox file or folder of .eml files to a server.

    One connection carries them all (it is made again if the server drops it).
    Messages go unchanged but for CRLF line ends. The counts sent and refused are
    reported at the end; the exit status is 1 if any message was refused or skipped
    (it had no recipients).

    \b
    Example:
      mailsim blast tests/data/corpus.mbox --host 127.0.0.1 --port 8823
    """
    try:
        folder = MessageFolder(source)
        total = len(folder)
    except (FolderError, OSError) as error:
        fail(str(error))
    server = resolve_server(project, host, port, protocol)
    sent = refused = skipped = 0
    problems: list[str] = []
    with (
        _session(server, starttls=starttls, debug=False, timeout=timeout) as session,
        click.progressbar(
            folder, length=total, label=f"blasting {source}", file=sys.stderr
        ) as messages,
    ):
        for label, data in messages:
            headers = _HEADERS.parsebytes(data)
            targets = list(recipients) or _addresses(headers, "To", "Cc", "Bcc")
            if not targets:
                skipped += 1
                problems.append(f"{label}: skipped: no recipients in To, Cc or Bcc (give --to)")
                continue
            envelope_sender = sender if sender is not None else _envelope_sender(headers)
            try:
                outcome = _blast_one(session, envelope_sender, targets, data)
            except SessionError as error:
                for problem in problems:
                    click.echo(problem, err=True)
                fail(f"{label}: {error} (after {sent} sent, {refused} refused of {total})")
            if outcome.accepted:
                sent += 1
            else:
                refused += 1
            problems += [f"{label}: refused {r}: {why}" for r, why in outcome.refused.items()]
    for problem in problems:
        click.echo(problem, err=True)
    click.echo(f"sent {sent}, refused {refused}, skipped {skipped} of {total} messages to {server}")
    if refused or skipped:
        raise SystemExit(1)


def _envelope_sender(headers: Message) -> str:
    return_path = headers.get("Return-Path")
    if return_path is not None:
        return str(return_path).strip().strip("<>").strip()
    return next(iter(_addresses(headers, "From")), "")


def _blast_one(session: Session, sender: str, recipients: list[str], data: bytes) -> Outcome:
    """Send one message; if the server has dropped the connection, connect once more."""
    try:
        return session.send(sender, recipients, data)
    except smtplib.SMTPServerDisconnected:
        pass  # servers may close after so many messages: a new connection carries on
    except (smtplib.SMTPException, OSError) as error:
        raise SessionError(f"sending to {session.server} failed: {error}") from None
    session.reconnect()
    try:
        return session.send(sender, recipients, data)
    except smtplib.SMTPServerDisconnected:
        raise SessionError(f"{session.server} closed the connection twice") from None
    except (smtplib.SMTPException, OSError) as error:
        raise SessionError(f"sending to {session.server} failed: {error}") from None
