"""The server side of one SMTP or LMTP connection: a state machine on :class:`asyncio.Protocol`.

A :class:`Session` is fed bytes by ``data_received`` and answers from them alone:
no coroutine per line, no stream reader. Each batch of input is cut into command
lines (RFC 5321 §2.3.8: only CRLF ends one) and answered in order, and the replies
of one batch leave in one ``transport.write``, so a pipelining client (RFC 2920)
gets them in one segment. DATA is read by searching the batch for ``CRLF.CRLF``
and checking the lines it holds as a whole (line length, size), then undoing the
dot-stuffing once for the message (RFC 5321 §4.5.2).

What the receiver decides (admission, each RCPT, the content checks and the
durable store) is :class:`~mailsim_runtime.intake.Intake`'s: the session asks it
and says what it answered. Once a message is read, the session stops reading
until the intake has stored it (the 250 comes only then); commands the client
pipelined meanwhile wait in the buffer and are answered after it, in order.

Memory stays bounded whatever the client does: a command line is kept up to
:data:`MAIL_LINE` octets and dropped past that (then refused with
:data:`COMMAND_TOO_LONG` once it ends); a DATA line past the line limit, or a
message past the size limit, is dropped as it comes and refused at its end; and
reading pauses while a message is being stored or while the client does not read
its replies (``pause_writing``).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import re
import ssl
from collections.abc import Awaitable, Callable
from typing import ClassVar, cast

from mailsim_runtime.inbound import line_too_long_reply, too_big_reply
from mailsim_runtime.intake import (
    BAD_ADDRESS,
    QUEUE_FAILED,
    TIMED_OUT,
    Intake,
    has_control,
    peer_text,
    set_nodelay,
)

__all__ = [
    "COMMAND_LINE",
    "COMMAND_TOO_LONG",
    "MAIL_LINE",
    "Session",
    "SessionOptions",
    "parse_parameters",
    "parse_path",
]

log = logging.getLogger("mailsim.server")

COMMAND_TOO_LONG = "500 5.5.2 Command line too long (RFC 5321 section 4.5.3.1.4)"
# RFC 5321 §4.5.3.1.4: 512 octets with CRLF; SIZE (RFC 1870 §3) and SMTPUTF8
# (RFC 6531 §3.4) each lengthen MAIL, by 26 and 10.
COMMAND_LINE = 512
MAIL_LINE = COMMAND_LINE + 26 + 10
UNRECOGNIZED_LIMIT = 5  # unrecognised commands before the session is closed
KEEP_ALIVE_EVERY = 65536  # octets of DATA that push back the command timeout

# RFC 5321 §4.1.2 paths, with RFC 6531's UTF-8 where ASCII text may be. The local
# part is read leniently (dots anywhere, as Postfix does): it is the app, not the
# grammar, that decides which recipients are taken. A source route is dropped
# (RFC 5321 appendix C). Lone surrogates (undecodable octets) match nowhere.
_UTF8 = r"\u0080-\ud7ff\ue000-\U0010ffff"
_ATEXT = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~\-" + _UTF8
_QTEXT = r"\x20\x21\x23-\x5b\x5d-\x7e" + _UTF8
_LOCAL = rf'(?:[{_ATEXT}.]+|"(?:[{_QTEXT}]|\\[\x20-\x7e])*")'
_LABEL = rf"[A-Za-z0-9_\-{_UTF8}]+"
_DOMAIN = rf"{_LABEL}(?:\.{_LABEL})*"
_MAILBOX = rf"{_LOCAL}@(?:{_DOMAIN}|\[[\x21-\x5a\x5e-\x7e]+\])"
_ROUTE = rf"@{_DOMAIN}(?:,@{_DOMAIN})*:"
_PATH = re.compile(
    rf"[ \t]*(?:<(?:{_ROUTE})?({_MAILBOX})>|<((?i:postmaster))>|<()>|({_MAILBOX}))(?:[ \t]+(.*))?"
)
_PARAMETER = re.compile(rf"([A-Za-z0-9][A-Za-z0-9-]*)(?:=([\x21-\x3c\x3e-\x7e{_UTF8}]+))?")


def parse_path(text: str) -> tuple[str, list[str]] | None:
    """The address of a MAIL or RCPT path and the parameters after it, or None if
    *text* is not one. The address of ``<>`` is empty; ``<Postmaster>`` (RFC 5321
    §4.1.1.3) is returned as written, without a domain."""
    found = _PATH.fullmatch(text)
    if found is None:
        return None
    angled, postmaster, _, bare, rest = found.groups()
    address = angled or postmaster or bare or ""
    return address, rest.split() if rest else []


def parse_parameters(words: list[str]) -> dict[str, str | None] | None:
    """``KEYWORD[=value]`` parameters (RFC 5321 §4.1.2) by upper-cased keyword, or
    None if one is malformed."""
    parameters: dict[str, str | None] = {}
    for word in words:
        found = _PARAMETER.fullmatch(word)
        if found is None:
            return None
        parameters[found.group(1).upper()] = found.group(2)
    return parameters


Handler = Callable[["Session", str], None]


class Phase(enum.Enum):
    COMMAND = enum.auto()  # reading command lines
    DATA = enum.auto()  # reading a message, up to CRLF.CRLF
    ACCEPTING = enum.auto()  # the intake is storing the message; reading paused
    TLS = enum.auto()  # the TLS handshake after STARTTLS; reading paused
    CLOSED = enum.auto()


class SessionOptions:
    """What every session of one receiver shares: the intake, the server's name,
    the TLS context for STARTTLS, the set of sessions open (for a graceful close)
    and *changed*, called when one closes or ends a transaction."""

    def __init__(
        self,
        intake: Intake,
        *,
        hostname: str,
        tls_context: ssl.SSLContext | None = None,
        sessions: set[Session] | None = None,
        changed: Callable[[], object] | None = None,
    ) -> None:
        self.intake = intake
        self.hostname = hostname
        self.tls_context = tls_context
        self.sessions: set[Session] = set() if sessions is None else sessions
        self.changed: Callable[[], object] = changed or (lambda: None)
        limits = intake.limits
        self.timeout = limits.command_timeout.total_seconds() or 300.0
        self.size_limit = limits.message_size
        self.line_limit = limits.line_length or 1000
        self.lmtp = intake.lmtp
        self.commands = Session.LMTP_COMMANDS if self.lmtp else Session.SMTP_COMMANDS
        self.greeting = f"220 {hostname} {'LMTP' if self.lmtp else 'ESMTP'} mailsim\r\n".encode()
        # No AUTH: this is an MX, not a submission server.
        size = f"SIZE {self.size_limit}" if self.size_limit else "SIZE"
        offer = [hostname, "PIPELINING", size, "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES"]
        self.ehlo = _multiline(250, offer)
        self.ehlo_tls = _multiline(250, [*offer, "STARTTLS"]) if tls_context else self.ehlo
        names = sorted(
            name
            for name, handler in self.commands.items()
            if handler not in Session.UNLISTED and (name != "STARTTLS" or tls_context)
        )
        self.help = f"214 2.0.0 Supported commands: {' '.join(names)}"


def _multiline(code: int, lines: list[str]) -> list[str]:
    return [f"{code}-{line}" for line in lines[:-1]] + [f"{code} {lines[-1]}"]


class Session(asyncio.Protocol):
    """One client's SMTP (or LMTP, RFC 2033) session with a receiver."""

    # The commands by verb, and those HELP does not name; set below the class.
    SMTP_COMMANDS: ClassVar[dict[str, Handler]]
    LMTP_COMMANDS: ClassVar[dict[str, Handler]]
    UNLISTED: ClassVar[tuple[Handler, ...]]

    def __init__(self, options: SessionOptions) -> None:
        self.options = options
        self.intake = options.intake
        self.transport: asyncio.Transport | None = None
        self.peer: str | None = None  # host:port; None on a UNIX socket
        self.client = "local"  # the peer's address, as connection limits count it
        self.counted = False  # admitted: in the intake's count and the open sessions
        self.helo: str | None = None
        self.extended = False  # EHLO or LHLO, not HELO
        self.tls = False
        self.sender: str | None = None  # None: no MAIL yet; "": the null sender
        self.smtputf8 = False
        self.recipients: list[str] = []
        self._commands = options.commands
        self._phase = Phase.COMMAND
        self._buffer = b""  # input not yet consumed
        self._out: list[str] = []  # replies of the batch under way
        self._active = False  # a command came in this batch: the timeout restarts
        self._overlong = False  # dropping a command line too long to keep
        self._unrecognized = 0
        self._reading = True
        self._write_paused = False
        self._eof = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._last_input = 0.0
        # Storing a message, or STARTTLS: held here, as the loop holds tasks weakly.
        self._task: asyncio.Task[None] | None = None
        # The message being read.
        self._chunks: list[bytes] = []
        self._size = 0
        self._refusal: str | None = None
        self._midline = False  # in a DATA line too long to keep, dropping it
        self._next_keep_alive = KEEP_ALIVE_EVERY

    def __repr__(self) -> str:
        return f"<Session {self.peer or self.client} {self._phase.name}>"

    @property
    def idle(self) -> bool:
        """Between transactions: closing now loses the client nothing."""
        return self.sender is None and self._phase not in (Phase.DATA, Phase.ACCEPTING)

    # asyncio.Protocol -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self._loop = asyncio.get_running_loop()
        set_nodelay(transport)
        peername = transport.get_extra_info("peername")
        self.peer = peer_text(peername)
        if isinstance(peername, tuple) and peername:
            self.client = str(peername[0])
        refusal = self.intake.admit(self.client)
        if refusal is not None:
            # RFC 5321 §3.1: a 421 greeting, then close.
            self._phase = Phase.CLOSED
            self.transport.write(refusal.encode("ascii") + b"\r\n")
            self.transport.close()
            return
        self.counted = True
        self.options.sessions.add(self)
        self._last_input = self._loop.time()
        self._timer = self._loop.call_at(
            self._last_input + self.options.timeout, self._check_timeout
        )
        self.transport.write(self.options.greeting)

    def data_received(self, data: bytes) -> None:
        phase = self._phase
        if phase is Phase.COMMAND or phase is Phase.DATA:
            self._buffer = self._buffer + data if self._buffer else data
            self._process()
        elif phase is Phase.ACCEPTING:
            # Reading is paused: this is at most what was already on its way.
            self._buffer += data
        # In TLS or CLOSED, nothing more is taken (RFC 3207 §4.2).

    def eof_received(self) -> bool | None:
        self._eof = True
        # A message still being stored gets its reply before the close; an SSL
        # transport cannot stay half open.
        return self._phase is Phase.ACCEPTING and not self.tls

    def connection_lost(self, exc: Exception | None) -> None:
        self._phase = Phase.CLOSED
        self._buffer = b""
        self._chunks = []
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.counted:
            self.counted = False
            self.intake.leave(self.client)
            self.options.sessions.discard(self)
        self.options.changed()

    def pause_writing(self) -> None:
        # The client is not reading its replies: stop reading its commands.
        self._write_paused = True
        self._set_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._set_reading()

    # Closing --------------------------------------------------------------------

    def shut(self, reply: str) -> None:
        """Say *reply* (a 421) and close (RFC 5321 §3.8)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self._phase is not Phase.TLS:  # mid-handshake, plain text would be garbage
            transport.write(reply.encode("ascii") + b"\r\n")
        self._phase = Phase.CLOSED
        transport.close()

    def _check_timeout(self) -> None:
        self._timer = None
        loop = self._loop
        if self._phase is Phase.CLOSED or loop is None:
            return
        now = loop.time()
        if self._phase is Phase.ACCEPTING:
            self._last_input = now  # the server's turn, not the client's
        due = self._last_input + self.options.timeout
        if now < due:
            self._timer = loop.call_at(due, self._check_timeout)
            return
        log.info("%s: no command for %.0f s; closing", self.peer or self.client, now - due)
        self.shut(TIMED_OUT)  # RFC 5321 §4.5.3.2: a 421 first

    # Input ----------------------------------------------------------------------

    def _process(self) -> None:
        """Answer what the buffer holds, up to where it must wait; one write."""
        buf, pos = self._buffer, 0
        self._buffer = b""
        while True:
            phase = self._phase
            if phase is Phase.DATA:
                end = self._read_data(buf, pos)
                if end < 0:
                    break  # the rest of the message is still to come
                self._buffer = buf[end:]
                self._end_data()
                break
            if phase is not Phase.COMMAND:
                break  # after STARTTLS the rest is dropped (RFC 3207 §4.2)
            end = buf.find(b"\r\n", pos)
            if end < 0:
                if self._overlong or len(buf) - pos > MAIL_LINE:
                    # Too long to be a command: dropped as it comes, refused at its end.
                    self._overlong = True
                    self._buffer = b"\r" if buf.endswith(b"\r") else b""
                else:
                    self._buffer = buf[pos:]
                break
            if self._overlong:
                self._overlong = False
                self._reply(COMMAND_TOO_LONG)
            else:
                self._command(buf[pos:end])
            # DATA reads on from the CRLF that ended its command: see _read_data.
            pos = end if self._phase is Phase.DATA else end + 2
        if self._active:
            self._active = False
            self._touch()
        self._flush()
        self._after_batch()

    def _command(self, line: bytes) -> None:
        text = line.decode("utf-8", "surrogateescape")
        verb, _, arg = text.partition(" ")
        verb = verb.upper()
        if len(line) + 2 > (MAIL_LINE if verb == "MAIL" else COMMAND_LINE):
            self._reply(COMMAND_TOO_LONG)
            return
        handler = self._commands.get(verb)
        if handler is None:
            self._unrecognized_command(verb)
            return
        self._active = True
        try:
            handler(self, arg.strip(" \t"))
        except Exception:
            log.exception("%s: %s failed", self.peer or self.client, verb)
            self._reply("451 4.3.0 Local error in processing, try again later")

    def _unrecognized_command(self, verb: str, text: str = "Command not recognized") -> None:
        self._unrecognized += 1
        if self._unrecognized >= UNRECOGNIZED_LIMIT:
            self._reply("421 4.7.0 Too many unrecognized commands, closing connection")
            self._phase = Phase.CLOSED
            return
        self._reply(f"500 5.5.2 {text}" if verb else "500 5.5.2 Error: bad syntax")

    def _after_batch(self) -> None:
        transport = self.transport
        if transport is None:
            return
        if self._phase is Phase.CLOSED:
            transport.close()
        elif self._phase is Phase.TLS:
            self._reading = False
            transport.pause_reading()  # the ClientHello waits for the TLS layer
            self._task = asyncio.ensure_future(self._start_tls())

    # DATA -----------------------------------------------------------------------

    def _begin_data(self) -> None:
        self._phase = Phase.DATA
        self._chunks = []
        self._size = 0
        self._refusal = None
        self._midline = False
        self._next_keep_alive = KEEP_ALIVE_EVERY

    def _read_data(self, buf: bytes, pos: int) -> int:
        """Take the message from *buf*, where ``buf[pos:pos + 2]`` is the CRLF that
        ended the previous line (or DATA), unless in a line too long to keep: the
        position after its ``CRLF.CRLF``, or -1 with the unread tail kept."""
        if self._midline:
            end = buf.find(b"\r\n", pos)
            if end < 0:
                keep = buf.endswith(b"\r")
                self._count(len(buf) - pos - keep)
                self._buffer = b"\r" if keep else b""
                return -1
            self._count(end - pos)
            self._midline = False
            pos = end
        stop = buf.find(b"\r\n.\r\n", pos)
        if stop >= 0:
            self._take(buf, pos + 2, stop + 2)
            self._touch()
            return stop + 5
        last = buf.rfind(b"\r\n", pos)
        self._take(buf, pos + 2, last + 2)
        tail = len(buf) - last - 2
        if tail > self.options.line_limit:
            # Already too long, however it ends: drop it as it comes.
            self._refuse(line_too_long_reply(self.options.line_limit))
            keep = buf.endswith(b"\r")
            self._count(tail - keep)
            self._midline = True
            self._buffer = b"\r" if keep else b""
        else:
            self._buffer = buf[last:]
        return -1

    def _count(self, size: int) -> None:
        self._size += size
        if self._size >= self._next_keep_alive:
            # Data still coming keeps the session alive, a trickle does not.
            self._next_keep_alive = self._size + KEEP_ALIVE_EVERY
            self._touch()

    def _take(self, buf: bytes, start: int, end: int) -> None:
        """Keep the whole lines ``buf[start:end]``, unless the message is refused."""
        if end <= start:
            return
        self._count(end - start)
        if self._refusal is not None:
            return
        limit = self.options.size_limit
        if limit and self._size > limit:
            self._refuse(too_big_reply(limit))
            return
        lines = buf[start:end]
        if end - start > self.options.line_limit and _has_long_line(lines, self.options.line_limit):
            self._refuse(line_too_long_reply(self.options.line_limit))
            return
        self._chunks.append(lines)

    def _refuse(self, reply: str) -> None:
        """Refuse the message once it ends; what was kept of it is dropped now."""
        if self._refusal is None:
            self._refusal = reply
        self._chunks = []

    def _end_data(self) -> None:
        content = b"".join(self._chunks)
        self._chunks = []
        # Undo dot-stuffing (RFC 5321 §4.5.2).
        if content.startswith(b"."):
            content = content[1:]
        if b"\r\n." in content:
            content = content.replace(b"\r\n.", b"\r\n")
        # RFC 3848 names: SMTP, ESMTP, LMTP, each with an S after STARTTLS.
        with_ = "LMTP" if self.options.lmtp else "ESMTP" if self.extended else "SMTP"
        accepting = self.intake.accept(
            sender=self.sender or "",
            recipients=self.recipients,
            content=content,
            lines=content.count(b"\r\n"),
            refusal=self._refusal,
            peer=self.peer,
            helo=self.helo,
            with_=(with_ + "S") if self.tls else with_,
        )
        replies = len(self.recipients) if self.options.lmtp else 1
        self._reset_transaction()
        self._phase = Phase.ACCEPTING
        self._set_reading()
        self._task = asyncio.ensure_future(self._accept(accepting, replies))

    async def _accept(self, accepting: Awaitable[list[str]], replies: int) -> None:
        try:
            answer = await accepting
        except Exception:
            log.exception("%s: storing a message failed", self.peer or self.client)
            answer = [QUEUE_FAILED] * replies
        self._task = None
        if self._phase is not Phase.ACCEPTING:
            return  # closed meanwhile
        self._out.extend(answer)
        self._phase = Phase.COMMAND
        self.options.changed()  # idle now: a graceful close may take it
        self._set_reading()
        self._process()  # what the client pipelined meanwhile
        if self._eof and self._phase is not Phase.CLOSED and self.transport is not None:
            self.transport.close()

    # Output and flow ------------------------------------------------------------

    def _reply(self, text: str) -> None:
        self._out.append(text)

    def _flush(self) -> None:
        if not self._out:
            return
        data = "\r\n".join(self._out).encode("utf-8", "surrogateescape") + b"\r\n"
        self._out.clear()
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def _touch(self) -> None:
        if self._loop is not None:
            self._last_input = self._loop.time()

    def _set_reading(self) -> None:
        """Read while the session can take input and the client reads its replies."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        wanted = not self._write_paused and self._phase in (Phase.COMMAND, Phase.DATA)
        if wanted is not self._reading:
            self._reading = wanted
            if wanted:
                transport.resume_reading()
            else:
                transport.pause_reading()

    # STARTTLS (RFC 3207) --------------------------------------------------------

    async def _start_tls(self) -> None:
        loop, transport, context = self._loop, self.transport, self.options.tls_context
        assert loop is not None and transport is not None and context is not None
        try:
            secure = await loop.start_tls(transport, self, context, server_side=True)
        except Exception as error:  # the handshake failed, or the client left
            log.info("%s: TLS handshake failed: %s", self.peer or self.client, error)
            transport.close()
            return
        finally:
            self._task = None
        if secure is None or self._phase is not Phase.TLS:
            transport.close()
            return
        # RFC 3207 §4.2: the session starts over, as if just connected.
        self.transport = secure
        self.tls = True
        self.helo = None
        self.extended = False
        self._reset_transaction()
        self._phase = Phase.COMMAND
        self._reading = True
        self._touch()
        self._set_reading()

    # Commands -------------------------------------------------------------------

    def _reset_transaction(self) -> None:
        if self.sender is not None:
            self.sender = None
            self.recipients = []
            self.smtputf8 = False
            self.options.changed()

    def _helo_needed(self) -> bool:
        if self.helo is None:
            self._reply(f"503 5.5.1 Error: send {'LHLO' if self.options.lmtp else 'HELO'} first")
            return True
        return False

    def smtp_HELO(self, arg: str) -> None:
        if not arg:
            self._reply("501 5.5.4 Syntax: HELO hostname")
            return
        self._reset_transaction()
        self.helo, self.extended = arg, False
        self._reply(f"250 {self.options.hostname}")

    def smtp_EHLO(self, arg: str) -> None:
        if not arg:
            self._reply("501 5.5.4 Syntax: EHLO hostname")
            return
        self._reset_transaction()
        self.helo, self.extended = arg, True
        self._out.extend(self.options.ehlo if self.tls else self.options.ehlo_tls)

    def lmtp_LHLO(self, arg: str) -> None:
        if not arg:
            self._reply("501 5.5.4 Syntax: LHLO hostname")
            return
        self.smtp_EHLO(arg)

    def lmtp_not_HELO(self, arg: str) -> None:
        self._unrecognized_command("HELO", "Command not recognized: LMTP has LHLO only")

    def smtp_MAIL(self, arg: str) -> None:
        if self._helo_needed():
            return
        if self.sender is not None:
            self._reply("503 5.5.1 Error: nested MAIL command")
            return
        if has_control(arg):
            self._reply(BAD_ADDRESS)
            return
        syntax = "501 5.5.4 Syntax: MAIL FROM:<address>"
        if arg[:5].upper() != "FROM:":
            self._reply(syntax)
            return
        path = parse_path(arg[5:])
        if path is None or (path[0] and "@" not in path[0]):
            self._reply("553 5.1.7 Error: malformed sender address")
            return
        address, words = path
        parameters = parse_parameters(words) if self.extended or not words else None
        if parameters is None:
            self._reply(syntax + " [SP <mail-parameters>]")
            return
        body = parameters.pop("BODY", "7BIT")
        if body is None or body.upper() not in ("7BIT", "8BITMIME"):
            self._reply("501 5.5.4 Error: BODY can only be one of 7BIT, 8BITMIME")
            return
        smtputf8 = "SMTPUTF8" in parameters
        if parameters.pop("SMTPUTF8", None) is not None:
            self._reply("501 5.5.4 Error: SMTPUTF8 takes no value")
            return
        size = parameters.pop("SIZE", "0")
        if size is None or not size.isdigit():
            self._reply("501 5.5.4 Error: SIZE takes a number of octets")
            return
        if self.options.size_limit and int(size) > self.options.size_limit:
            self._reply(too_big_reply(self.options.size_limit))
            return
        if parameters:
            self._reply("555 5.5.4 MAIL FROM parameters not recognized or not implemented")
            return
        if not smtputf8 and not address.isascii():
            self._reply("553 5.6.7 Error: a UTF-8 address needs SMTPUTF8 (RFC 6531)")
            return
        self.sender, self.smtputf8 = address, smtputf8
        self._reply("250 2.1.0 OK")

    def smtp_RCPT(self, arg: str) -> None:
        if self._helo_needed():
            return
        if self.sender is None:
            self._reply("503 5.5.1 Error: need MAIL command")
            return
        if has_control(arg):
            self._reply(BAD_ADDRESS)
            return
        if arg[:3].upper() != "TO:":
            self._reply("501 5.5.4 Syntax: RCPT TO:<address>")
            return
        path = parse_path(arg[3:])
        if path is None or not path[0]:
            self._reply("553 5.1.3 Error: malformed address")
            return
        address, words = path
        if words:
            self._reply("555 5.5.4 RCPT TO parameters not recognized or not implemented")
            return
        if "@" not in address:  # <Postmaster>: this server's (RFC 5321 §4.5.1)
            address = f"postmaster@{self.options.hostname}"
        if not self.smtputf8 and not address.isascii():
            self._reply("553 5.6.7 Error: a UTF-8 address needs SMTPUTF8 (RFC 6531)")
            return
        refusal = self.intake.recipient_refusal(address, len(self.recipients), self.client)
        if refusal is not None:
            self._reply(refusal)
            return
        self.recipients.append(address)
        self._reply("250 2.1.5 OK")

    def smtp_DATA(self, arg: str) -> None:
        if self._helo_needed():
            return
        if self.sender is None:
            self._reply("503 5.5.1 Error: need MAIL command")
        elif not self.recipients:
            self._reply("503 5.5.1 Error: need RCPT command")
        elif arg:
            self._reply("501 5.5.4 Syntax: DATA")
        else:
            self._reply("354 End data with <CR><LF>.<CR><LF>")
            self._begin_data()

    def smtp_RSET(self, arg: str) -> None:
        if arg:
            self._reply("501 5.5.4 Syntax: RSET")
            return
        self._reset_transaction()
        self._reply("250 2.0.0 OK")

    def smtp_NOOP(self, arg: str) -> None:
        # Enhanced status codes are owed once EHLO offered them (RFC 2034 §3).
        self._reply("250 2.0.0 OK" if self.extended else "250 OK")

    def smtp_QUIT(self, arg: str) -> None:
        if arg:
            self._reply("501 5.5.4 Syntax: QUIT")
            return
        self._reply("221 2.0.0 Bye")
        self._phase = Phase.CLOSED

    def smtp_VRFY(self, arg: str) -> None:
        if not arg:
            self._reply("501 5.5.4 Syntax: VRFY <address>")
            return
        # RFC 5321 §3.5.3: no way to tell without delivering, so neither yes nor no.
        self._reply("252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery")

    def smtp_EXPN(self, arg: str) -> None:
        self._reply("502 5.5.1 EXPN not implemented")

    def smtp_HELP(self, arg: str) -> None:
        self._reply(self.options.help)

    def smtp_STARTTLS(self, arg: str) -> None:
        if self.options.tls_context is None or self.tls:
            self._reply("502 5.5.1 STARTTLS not available")
            return
        if arg:
            self._reply("501 5.5.4 Syntax: STARTTLS")
            return
        self._reply("220 2.0.0 Ready to start TLS")
        self._phase = Phase.TLS


def _command_table(greetings: dict[str, Handler]) -> dict[str, Handler]:
    return {
        **greetings,
        "MAIL": Session.smtp_MAIL,
        "RCPT": Session.smtp_RCPT,
        "DATA": Session.smtp_DATA,
        "RSET": Session.smtp_RSET,
        "NOOP": Session.smtp_NOOP,
        "QUIT": Session.smtp_QUIT,
        "VRFY": Session.smtp_VRFY,
        "EXPN": Session.smtp_EXPN,
        "HELP": Session.smtp_HELP,
        "STARTTLS": Session.smtp_STARTTLS,
    }


Session.SMTP_COMMANDS = _command_table({"HELO": Session.smtp_HELO, "EHLO": Session.smtp_EHLO})
# RFC 2033 §4.1: an LMTP server refuses HELO and EHLO.
Session.LMTP_COMMANDS = _command_table(
    {"LHLO": Session.lmtp_LHLO, "HELO": Session.lmtp_not_HELO, "EHLO": Session.lmtp_not_HELO}
)
Session.UNLISTED = (Session.smtp_EXPN, Session.lmtp_not_HELO)


def _has_long_line(lines: bytes, limit: int) -> bool:
    """Whether a line of *lines* (each ending in CRLF) is longer than *limit* with its
    CRLF, not counting a leading dot added by dot-stuffing (RFC 5321 §4.5.3.1.6)."""
    pieces = lines.split(b"\r\n")
    if max(map(len, pieces)) + 2 <= limit:
        return False
    return any(
        len(piece) + 2 > limit and not (len(piece) + 1 == limit and piece[:1] == b".")
        for piece in pieces
    )
