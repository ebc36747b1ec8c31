"""Steps that try SMTP smuggling on a live server: a second mail hidden behind a fake end.

SMTP smuggling (CVE-2023-51764/5/6) ends the data of a first mail early with a line
end that is not ``CRLF.CRLF`` — ``\\n.\\n``, ``\\r.\\r``, ``\\r\\n\\0.\\r\\n``… — and
writes a whole second transaction behind it. A server that takes the fake end for
the real one delivers the second mail, forged, as if the client had sent it. A safe
server refuses any bare CR, LF or NUL in the data, so the whole thing is refused and
nothing else follows::

    When "alice@example.org" smuggles a mail to "support@responder.example.com" behind "\\n.\\n"
    Then the server refuses the smuggled mail

The ending is written with ``\\r``, ``\\n`` and ``\\0`` for CR, LF and NUL (``\\\\``
for a backslash), as in REFERENCE.md. The bytes go over one SMTP connection, exactly
as written: ``MAIL``, ``RCPT``, ``DATA``, a first mail, the ending, the smuggled
transaction (``MAIL``, ``RCPT``, ``DATA`` and a mail from the same person to the same
recipient), the real end of data and ``QUIT``, pipelined in one write.

These steps need a live server (``mailsim run --live``): the simulated world hands
mail over as whole messages, with no SMTP session whose bytes could be smuggled, so
there a scenario with them is skipped, saying so. Tag such scenarios ``@live`` and
run the world with ``--tags "not @live"``.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from typing import Any

from mailsim.live import Endpoint, LiveError, LiveScenario, NotPossibleLive
from mailsim.steps._phrases import phrase
from mailsim.steps._scene import StepFailed, scene_of

__all__ = [
    "SmuggledAttempt",
    "ending_bytes",
    "smuggle",
    "smuggles_a_mail",
    "the_server_refuses_the_smuggled_mail",
]

_ESCAPES = {"r": b"\r", "n": b"\n", "0": b"\0", "\\": b"\\"}
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_MAX_REPLIES = 8  # a server that split the mail answers 5 more times, then QUIT
_ATTEMPT = "mailsim_smuggled"  # where the When step leaves the attempt for the Then step


def ending_bytes(text: str) -> bytes:
    """``"\\r\\n\\0.\\r\\n"`` (as written in a feature) → the bytes CR LF NUL . CR LF."""

    def one(found: re.Match[str]) -> str:
        letter = found.group(1)
        if letter not in _ESCAPES:
            raise StepFailed(
                f"\\{letter} in the ending {text!r} means nothing: write \\r, \\n, \\0 or \\\\"
            )
        return _ESCAPES[letter].decode("latin-1")

    return _ESCAPE.sub(one, text).encode("latin-1")


@dataclass(frozen=True)
class SmuggledAttempt:
    """What the server answered once the first mail, the ending and the smuggled one were sent."""

    ending: str  # as the feature wrote it
    replies: tuple[tuple[int, str], ...]  # every reply after the data, in order
    closed: bool  # the server closed the connection before QUIT was answered

    def shown(self) -> str:
        said = "; ".join(f"{code} {text}" for code, text in self.replies) or "nothing"
        end = " (then it closed the connection)" if self.closed else ""
        return f"{said}{end}"


class _Session:
    """Just enough SMTP to write bytes as they are and read each reply."""

    def __init__(self, server: Endpoint, timeout: float) -> None:
        try:
            self.sock = socket.create_connection((server.host, server.port), timeout=timeout)
        except OSError as error:
            raise LiveError(f"cannot connect to the server at {server}: {error}") from error
        self.file = self.sock.makefile("rb")

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def reply(self) -> tuple[int, str]:
        """One reply, its lines joined; EOFError when the server has closed."""
        lines: list[str] = []
        while True:
            line = self.file.readline(2048)
            if not line:
                raise EOFError("the server closed the connection")
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            lines.append(text[4:])
            if text[3:4] != "-":
                return int(text[:3]), " ".join(lines)

    def command(self, line: str, expected: int) -> None:
        self.sock.sendall(line.encode("ascii") + b"\r\n")
        code, text = self.reply()
        if code != expected:
            raise LiveError(
                f"the server answered {line!r} with {code} {text}, so nothing could be smuggled "
                "past it (a person's ordinary mail would fail here too)"
            )


def smuggle(
    server: Endpoint, sender: str, recipient: str, ending: bytes, *, timeout: float
) -> tuple[tuple[tuple[int, str], ...], bool]:
    """Send a first mail, *ending*, a smuggled mail and the real end; the replies after
    the data, and whether the server closed the connection before answering QUIT."""
    session = _Session(server, timeout)
    try:
        if session.reply()[0] != 220:
            raise LiveError(f"the server at {server} did not greet with 220")
        session.command("EHLO smuggler.mailsim.invalid", 250)
        session.command(f"MAIL FROM:<{sender}>", 250)
        session.command(f"RCPT TO:<{recipient}>", 250)
        session.command("DATA", 354)
        head = f"From: {sender}\r\nTo: {recipient}\r\n".encode()
        first = head + b"Subject: first\r\n\r\nThe first mail."
        smuggled = (
            f"MAIL FROM:<{sender}>\r\nRCPT TO:<{recipient}>\r\nDATA\r\n".encode()
            + head
            + b"Subject: smuggled\r\n\r\nA second mail, smuggled behind the first.\r\n"
        )
        session.sock.sendall(first + ending + smuggled + b".\r\nQUIT\r\n")
        replies: list[tuple[int, str]] = []
        closed = False
        while len(replies) < _MAX_REPLIES:
            try:
                replies.append(session.reply())
            except (EOFError, OSError):
                closed = True
                break
            if replies[-1][0] == 221:
                break
        return tuple(replies), closed
    finally:
        session.close()


@phrase(
    "When",
    '"{person}" smuggles a mail to "{recipient}" behind "{ending}"',
    example='When "alice@example.org" smuggles a mail to "support@responder.example.com" '
    'behind "\\n.\\n"',
)
def smuggles_a_mail(context: Any, person: str, recipient: str, ending: str) -> None:
    """Over one SMTP connection, *person* sends *recipient* a mail whose data ends early
    with *ending*, followed by a whole second transaction (live only)."""
    scene = scene_of(context)
    driver = scene.driver
    if not isinstance(driver, LiveScenario):
        raise NotPossibleLive(
            "SMTP smuggling is not possible in the world: the simulated world hands mail "
            "over whole, with no SMTP session to smuggle bytes into; run it with --live"
        )
    data = ending_bytes(scene.expand(ending, localize=False))
    sender = driver.address_of(scene.expand(person, localize=False))
    to = scene.expand(recipient)
    replies, closed = smuggle(driver.run.server, sender, to, data, timeout=driver.run.timeout)
    setattr(context, _ATTEMPT, SmuggledAttempt(ending, replies, closed))


@phrase(
    "Then",
    "the server refuses the smuggled mail",
    example="Then the server refuses the smuggled mail",
)
def the_server_refuses_the_smuggled_mail(context: Any) -> None:
    """The server refused the data with a 5xx reply, and answered nothing else but
    QUIT: it neither took the fake ending for the end of the data, nor accepted a mail
    with a bare CR, LF or NUL in it."""
    scene_of(context)
    attempt: SmuggledAttempt | None = getattr(context, _ATTEMPT, None)
    if attempt is None:
        raise StepFailed(
            'nothing was smuggled yet: a step such as When "alice@example.org" smuggles a '
            'mail to "…" behind "\\n.\\n" comes first'
        )
    said = f"with {attempt.ending!r} in the data the server answered: {attempt.shown()}"
    if not attempt.replies:
        raise StepFailed(f"{said} — no answer to the data at all")
    (code, _), *rest = attempt.replies
    others = [reply for reply in rest if reply[0] != 221]
    if others and code < 400:
        raise StepFailed(
            f"{said}\nit took the smuggled ending for the end of the data, and what followed "
            "for a second mail: SMTP smuggling works against it"
        )
    if others:
        raise StepFailed(f"{said}\nit answered more than the data and QUIT: a second mail?")
    if code < 500:
        raise StepFailed(
            f"{said}\nit did not refuse a mail with a bare CR, LF or NUL in its data "
            "(RFC 5321 section 2.3.8): a 5xx reply was expected"
        )
