"""The SMTP/LMTP session state machine, fed bytes directly: what it answers, in which
order and in how many writes, what message it hands the intake, and what it keeps
in memory. (`test_server*.py` run the same sessions over real sockets.)"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mailsim_runtime.config import LimitsSection
from mailsim_runtime.inbound import BARE_LINE_END, check_content, too_big_reply
from mailsim_runtime.intake import Intake
from mailsim_runtime.queue import MaildirQueue
from mailsim_runtime.session import (
    COMMAND_TOO_LONG,
    MAIL_LINE,
    Session,
    SessionOptions,
    parse_parameters,
    parse_path,
)
from test_server_support import DOMAIN, recording_app


class Wire(asyncio.Transport):
    """A transport that records every write and the reading switch."""

    def __init__(self, peer: object = ("192.0.2.7", 4321)) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.reading = True
        self.peer = peer

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closed, "written after close"
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.peer if name == "peername" else default


class HeldIntake(Intake):
    """An intake whose acceptance is recorded, held until :attr:`gate` is done (when
    set), and answered from the content checks alone, storing nothing."""

    def __init__(self, folder: Path, *, lmtp: bool = False, **limits: Any) -> None:
        app, _ = recording_app()
        super().__init__(
            app,
            MaildirQueue(folder / "incoming"),
            limits=LimitsSection(**limits),
            hostname="mx.example.com",
            lmtp=lmtp,
        )
        self.messages: list[dict[str, Any]] = []
        self.gate: asyncio.Future[None] | None = None

    async def accept(self, **message: Any) -> list[str]:  # type: ignore[override]
        self.messages.append(message)
        if self.gate is not None:
            await self.gate
        refusal = message["refusal"] or check_content(
            message["content"], message["lines"], header_size=0, received_headers=0
        )
        if self.lmtp:
            return [refusal or f"250 2.1.5 <{r}> OK" for r in message["recipients"]]
        return [refusal or "250 2.0.0 OK, queued"]


class Client:
    """One session on a :class:`Wire`: bytes in, reply lines out."""

    def __init__(self, options: SessionOptions, peer: object = ("192.0.2.7", 4321)) -> None:
        self.wire = Wire(peer)
        self.session = Session(options)
        self.session.connection_made(self.wire)
        self.seen = 0

    def feed(self, *chunks: bytes) -> None:
        for chunk in chunks:
            self.session.data_received(chunk)

    def new_writes(self) -> list[bytes]:
        writes = self.wire.writes[self.seen :]
        self.seen = len(self.wire.writes)
        return writes

    def replies(self) -> list[str]:
        """The reply lines written since the last look."""
        return b"".join(self.new_writes()).decode().splitlines()

    def codes(self) -> list[str]:
        return [line[:3] for line in self.replies() if line[3:4] != "-"]

    def say(self, *lines: str) -> list[str]:
        self.feed(b"".join(line.encode() + b"\r\n" for line in lines))
        return self.replies()

    def ready(self, sender: str = "s@client.example", *recipients: str) -> None:
        """Greeted, EHLO'd, MAIL and RCPTs (one at DOMAIN by default) given, DATA begun."""
        self.replies()
        lines = ["EHLO client.example", f"MAIL FROM:<{sender}>"]
        lines += [f"RCPT TO:<{r}>" for r in recipients or [f"a@{DOMAIN}"]]
        assert self.say(*lines, "DATA")[-1].startswith("354 ")


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


async def settle() -> None:
    """Let the tasks the session started (storing a message) run."""
    for _ in range(10):
        await asyncio.sleep(0)


@pytest.fixture
def intake(tmp_path: Path) -> HeldIntake:
    return HeldIntake(tmp_path, message_size=20_000, line_length=100, recipients=3)


def options(intake: Intake, **changes: Any) -> SessionOptions:
    return SessionOptions(intake, hostname="mx.example.com", **changes)


# Greeting and offer ------------------------------------------------------------------


def test_the_greeting_and_the_ehlo_offer(intake: HeldIntake) -> None:
    async def scenario() -> None:
        client = Client(options(intake))
        assert client.replies() == ["220 mx.example.com ESMTP mailsim"]
        offer = client.say("EHLO client.example")
        assert offer == [
            "250-mx.example.com",
            "250-PIPELINING",
            "250-SIZE 20000",
            "250-8BITMIME",
            "250-SMTPUTF8",
            "250 ENHANCEDSTATUSCODES",
        ]
        assert client.say("HELO client.example") == ["250 mx.example.com"]
        tls = Client(options(intake, tls_context=ssl.create_default_context()))
        tls.replies()
        assert tls.say("EHLO client.example")[-1] == "250 STARTTLS"

    run(scenario)


def test_pipelined_commands_are_answered_in_order_in_one_write(intake: HeldIntake) -> None:
    async def scenario() -> None:
        client = Client(options(intake))
        client.new_writes()
        client.feed(
            b"EHLO client.example\r\nMAIL FROM:<s@client.example>\r\n"
            b"RCPT TO:<a@example.com>\r\nRCPT TO:<x@elsewhere.example>\r\n"
            b"RCPT TO:<b@example.com>\r\nDATA\r\n"
        )
        [write] = client.new_writes()
        lines = write.decode().splitlines()
        assert [line[:4] for line in lines if line[3] == " "] == [
            "250 ",  # EHLO
            "250 ",  # MAIL
            "250 ",  # RCPT a
            "550 ",  # RCPT x
            "250 ",  # RCPT b
            "354 ",  # DATA
        ]
        assert "550 5.1.1 <x@elsewhere.example>: recipient rejected" in lines

    run(scenario)


def test_a_command_split_across_reads_is_answered_once_whole(intake: HeldIntake) -> None:
    async def scenario() -> None:
        client = Client(options(intake))
        client.replies()
        for piece in (b"NO", b"OP", b"\r"):
            client.feed(piece)
            assert client.replies() == []
        client.feed(b"\nNOOP\r\n")
        assert client.replies() == ["250 OK", "250 OK"]

    run(scenario)


# Transactions ------------------------------------------------------------------------


def test_a_message_is_handed_over_with_its_envelope_and_answered(intake: HeldIntake) -> None:
    async def scenario() -> None:
        client = Client(options(intake))
        client.ready("s@client.example", f"a@{DOMAIN}", f"b@{DOMAIN}")
        client.feed(b"Subject: hi\r\n\r\nbody\r\n.\r\n")
        assert client.replies() == []  # not before the intake answers
        assert not client.session.idle
        await settle()
        assert client.replies() == ["250 2.0.0 OK, queued"]
        assert client.session.idle
        [message] = intake.messages
        assert message["sender"] == "s@client.example"
        assert message["recipients"] == [f"a@{DOMAIN}", f"b@{DOMAIN}"]
        assert message["content"] == b"Subject: hi\r\n\r\nbody\r\n"
        assert message["lines"] == 3 and message["refusal"] is None
        assert message["peer"] == "192.0.2.7:4321" and message["helo"] == "client.example"
        assert message["with_"] == "ESMTP"
        # The transaction is over: a new one needs MAIL again.
        assert client.say(f"RCPT TO:<a@{DOMAIN}>") == ["503 5.5.1 Error: need MAIL command"]

    run(scenario)


def test_commands_pipelined_behind_a_message_wait_for_its_reply(intake: HeldIntake) -> None:
    async def scenario() -> None:
        client = Client(options(intake))
        client.ready()
        intake.gate = asyncio.get_running_loop().create_future()
        client.feed(b"Subject: one\r\n\r\nx\r\n.\r\nMAIL FROM:<t@client.example>\r\nRCPT TO:<b")
        await settle()
        assert client.replies() == []  # held: the 250 waits for the store
        assert not client.wire.reading  # and nothing more is read meanwhile
        client.feed(b"@example.com>\r\nNOOP\r\n")  # what was already on its way
        await settle()
        assert client.replies() == []
        intake.gate.set_result(None)
        await settle()
        [write] = client.new_writes()  # the reply and what waited, in one write
        assert write.decode().splitlines() == [
            "250 2.0.0 OK, queued",
            "250 2.1.0 OK",
            "250 2.1.5 OK",
            "250 2.0.0 OK",
        ]
        assert client.wire.reading
        assert client.session.sender == "t@client.example"

    run(scenario)


def test_the_null_sender_and_mail_parameters(intake: HeldIntake) -> None:
    async def scenario() -> None:
        client = Client(options(intake))
        client.say("EHLO client.example")
        assert client.say("MAIL FROM:<> BODY=8BITMIME SIZE=100") == ["250 2.1.0 OK"]
        assert client.session.sender == ""
        client.say("RSET")
        assert client.codes() == []
        for line, reply in [
            ("MAIL FROM:<s@client.example> SIZE=20001", too_big_reply(20_000)),
            ("MAIL FROM:<s@client.example> BODY=9BIT", "501 5.5.4 "),
            ("MAIL FROM:<s@client.example> SIZE=big", "501 5.5.4 "),
            ("MAIL FROM:<s@client.example> SMTPUTF8=yes", "501 5.5.4 "),
            ("MAIL FROM:<s@client.example> AUTH=<>", "555 5.5.4 "),
            ("MAIL FROM:<s@client.example> =x", "501 5.5.4 "),
            ("MAIL TO:<s@client.example>", "501 5.5.4 "),
        ]:
            [answer] = client.say(line)
            assert answer.startswith(reply), (line, answer)
        helo = Client(options(intake))
        helo.say("HELO client.example")
        [answer] = helo.say("MAIL FROM:<s@client.example> SIZE=10")
        assert answer.startswith("501 5.5.4 ")  # parameters need EHLO

    run(scenario)


def test_commands_out_of_order_are_refused_with_503(intake: HeldIntake) -> None:
    async def scenario() -> None:
        client = Client(options(intake))
        client.replies()
        assert client.say("MAIL FROM:<s@client.example>") == ["503 5.5.1 Error: send HELO first"]
        client.say("EHLO client.example")
        assert client.say(f"RCPT TO:<a@{DOMAIN}>")[0].startswith("503 5.5.1 ")
        assert client.say("DATA")[0].startswith("503 5.5.1 ")
        client.say("MAIL FROM:<s@client.example>")
        assert client.say("MAIL FROM:<s@client.example>")[0].startswith("503 5.5.1 ")
        assert client.say("DATA") == ["503 5.5.1 Error: need RCPT command"]

    run(scenario)


def test_rset_noop_vrfy_help_quit(intake: HeldIntake) -> None:
    async def scenario() -> None:
        client = Client(options(intake))
        client.replies()
        assert client.say("NOOP") == ["250 OK"]  # no enhanced codes before EHLO
        client.say("EHLO client.example", "MAIL FROM:<s@client.example>")
        assert not client.session.idle
        assert client.say("RSET", "NOOP") == ["250 2.0.0 OK", "250 2.0.0 OK"]
        assert client.session.idle and client.session.sender is None
        assert client.say("VRFY someone")[0].startswith("252 2.5.2 ")
        assert client.say("EXPN list")[0].startswith("502 5.5.1 ")
        [help_] = client.say("HELP")
        assert help_.startswith("214 ") and "MAIL" in help_ and "EXPN" not in help_
        assert client.say("QUIT") == ["221 2.0.0 Bye"]
        assert client.wire.closed

    run(scenario)


def test_unrecognized_commands_then_too_many_close_the_session(intake: HeldIntake) -> None:
    async def scenario() -> None:
        client = Client(options(intake))
        client.replies()
        assert client.say("") == ["500 5.5.2 Error: bad syntax"]
        for _ in range(3):
            assert client.say("BOGUS") == ["500 5.5.2 Command not recognized"]
        assert client.say("BOGUS", "NOOP") == [
            "421 4.7.0 Too many unrecognized commands, closing connection"
        ]
        assert client.wire.closed

    run(scenario)


# Addresses ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("<a@b.example>", ("a@b.example", [])),
        ("<a@b.example> SIZE=1 BODY=8BITMIME", ("a@b.example", ["SIZE=1", "BODY=8BITMIME"])),
        (" <a@b.example>", ("a@b.example", [])),
        ("a@b.example", ("a@b.example", [])),  # RFC 821 clients leave out the brackets
        ("<>", ("", [])),
        ("<@relay.example,@other.example:a@b.example>", ("a@b.example", [])),
        ('<"a b"@b.example>', ('"a b"@b.example', [])),
        ("<a@[192.0.2.1]>", ("a@[192.0.2.1]", [])),
        ("<Postmaster>", ("Postmaster", [])),
        ("<a..b.@b.example>", ("a..b.@b.example", [])),  # lenient, as Postfix
        ("<jürgen@bücher.example>", ("jürgen@bücher.example", [])),
        ("<a@b.example", None),
        ("<a@b.example>x", None),
        ("<a@b@c.example>", None),
        ("<a@b.example.>", None),
        ("<a(comment)@b.example>", None),
        ("<b.example!a>", None),
        ("<\udcffa@b.example>", None),  # an octet that is not UTF-8
        ("", None),
    ],
)
def test_parse_path(text: str, parsed: tuple[str, list[str]] | None) -> None:
    assert parse_path(text) == parsed


def test_parse_parameters() -> None:
    assert parse_parameters(["size=10", "SMTPUTF8"]) == {"SIZE": "10", "SMTPUTF8": None}
    assert parse_parameters(["SIZE="]) is None
    assert parse_parameters(["-X=1"]) is None
    assert parse_parameters(["X=a=b"]) is None  # "=" is not a value character


def test_address_refusals(intake: HeldIntake) -> None:
    async def scenario() -> None:
        client = Client(options(intake))
        client.say("EHLO client.example")
        assert client.say('MAIL FROM:<"a\rb"@client.example>')[0].startswith("553 5.1.3 ")
        assert client.say("MAIL FROM:<a@b@c.example>")[0].startswith("553 5.1.7 ")
        assert client.say("MAIL FROM:<Postmaster>")[0].startswith("553 5.1.7 ")
        assert client.say("MAIL FROM:<jürgen@client.example>")[0].startswith("553 5.6.7 ")
        assert client.say("MAIL FROM:<jürgen@client.example> SMTPUTF8") == ["250 2.1.0 OK"]
        assert client.say(f"RCPT TO:<\x00a@{DOMAIN}>")[0].startswith("553 5.1.3 ")
        assert client.say("RCPT TO:<>")[0].startswith("553 5.1.3 ")
        assert client.say(f"RCPT TO:<a@{DOMAIN}> NOTIFY=NEVER")[0].startswith("555 5.5.4 ")
        assert client.say(f"RCPT TO:<@elsewhere.example:a@{DOMAIN}>") == ["250 2.1.5 OK"]
        assert client.say("RCPT TO:<POSTMASTER>")[0].startswith("550 5.1.1 <postmaster@mx.")
        assert client.session.recipients == [f"a@{DOMAIN}"]
        for number in range(2):
            assert client.say(f"RCPT TO:<r{number}@{DOMAIN}>") == ["250 2.1.5 OK"]
        assert client.say(f"RCPT TO:<r3@{DOMAIN}>")[0].startswith("452 4.5.3 ")

    run(scenario)


# DATA --------------------------------------------------------------------------------


async def unstuffed(client: Client, intake: HeldIntake, *chunks: bytes) -> dict[str, Any]:
    before = len(intake.messages)
    client.feed(*chunks)
    await settle()
    assert len(intake.messages) == before + 1, "the message did not end"
    return intake.messages[-1]


def test_dot_stuffing_is_undone(intake: HeldIntake) -> None:
    async def scenario() -> None:
        client = Client(options(intake))
        client.ready()
        message = await unstuffed(
            client, intake, b"..Subject: dots\r\n\r\n..leading\r\n..\r\nx.\r\n...\r\n.\r\n"
        )
        assert message["content"] == b".Subject: dots\r\n\r\n.leading\r\n.\r\nx.\r\n..\r\n"
        assert message["lines"] == 6

    run(scenario)


def test_an_empty_message(intake: HeldIntake) -> None:
    async def scenario() -> None:
        client = Client(options(intake))
        client.ready()
        message = await unstuffed(client, intake, b".\r\n")
        assert (message["content"], message["lines"]) == (b"", 0)

    run(scenario)


lines = st.lists(st.text(alphabet=".aZ \t", max_size=12).map(str.encode), min_size=0, max_size=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=lines, cuts=st.lists(st.integers(min_value=1, max_value=400), max_size=12))
def test_any_split_of_the_input_gives_the_same_message_and_replies(
    tmp_path_factory: pytest.TempPathFactory, lines: list[bytes], cuts: list[int]
) -> None:
    intake = HeldIntake(tmp_path_factory.mktemp("split"))
    content = b"".join(line + b"\r\n" for line in lines)
    stuffed = b"".join((b"." if line.startswith(b".") else b"") + line + b"\r\n" for line in lines)
    wire = (
        b"EHLO c.example\r\nMAIL FROM:<s@c.example>\r\nRCPT TO:<a@example.com>\r\nDATA\r\n"
        + stuffed
        + b".\r\nNOOP\r\n"
    )
    pieces = [
        wire[a:b] for a, b in zip([0, *sorted(cuts)], [*sorted(cuts), len(wire)], strict=True)
    ]

    async def scenario() -> None:
        client = Client(options(intake))
        for piece in pieces:
            client.feed(piece)
            await settle()
        [message] = intake.messages
        assert message["content"] == content
        assert message["lines"] == len(lines)
        assert client.codes() == ["220", "250", "250", "250", "354", "250", "250"]

    run(scenario)


def test_a_message_over_the_size_limit_is_dropped_as_it_comes(intake: HeldIntake) -> None:
    async def scenario() -> None:
        client = Client(options(intake))
        client.ready()
        line = b"y" * 98 + b"\r\n"
        for _ in range(300):  # 30,000 octets against a limit of 20,000
            client.feed(line)
            assert sum(map(len, client.session._chunks)) <= 20_000
        client.feed(b".\r\n")
        await settle()
        assert client.replies() == [too_big_reply(20_000)]
        assert intake.messages[-1]["content"] == b""

    run(scenario)


@pytest.mark.parametrize(
    ("line", "refused"),
    [
        (b"x" * 98, False),  # 100 with CRLF: the limit
        (b"x" * 99, True),
        (b"." + b"x" * 98, False),  # a dot-stuffing dot is not counted
        (b"." + b"x" * 99, True),
    ],
)
def test_the_line_length_limit(intake: HeldIntake, line: bytes, refused: bool) -> None:
    async def scenario() -> None:
        client = Client(options(intake))
        client.ready()
        client.feed(b"Subject: x\r\n\r\n" + line + b"\r\n.\r\n")
        await settle()
        [reply] = client.replies()
        assert reply.startswith("500 5.5.2 Line too long") == refused, reply

    run(scenario)


def test_an_endless_data_line_is_not_kept_and_its_tail_does_not_end_the_message(
    intake: HeldIntake,
) -> None:
    async def scenario() -> None:
        client = Client(options(intake))
        client.ready()
        client.feed(b"Subject: x\r\n\r\n")
        for _ in range(1000):
            client.feed(b"z" * 999 + b"\r")  # a bare CR at each end, as a trap
            assert len(client.session._buffer) <= 1
        # The long line ends in ".\r\n": not an end of data, which comes after.
        client.feed(b".\r\nmore\r\n.\r\nNOOP\r\n")
        await settle()
        [reply, noop] = client.replies()
        assert reply.startswith("500 5.5.2 Line too long") and noop == "250 2.0.0 OK"
        assert len(intake.messages) == 1

    run(scenario)


@pytest.mark.parametrize(
    "ending", [b"\n.\n", b"\r.\r", b"\r\n.\n", b"\n.\r\n", b"\r\n\0.\r\n", b"\r\n.\0\r\n"]
)
def test_a_smuggled_ending_neither_ends_the_message_nor_starts_another(
    intake: HeldIntake, ending: bytes
) -> None:
    async def scenario() -> None:
        client = Client(options(intake))
        client.ready()
        smuggled = b"MAIL FROM:<x@example.com>\r\nRCPT TO:<v@example.com>\r\nDATA\r\nforged\r\n"
        client.feed(b"Subject: first\r\n\r\nfirst" + ending + smuggled + b".\r\nQUIT\r\n")
        await settle()
        assert client.codes() == ["550", "221"]
        [message] = intake.messages
        assert b"forged" in message["content"]  # inside the one refused message
        assert check_content(
            message["content"], message["lines"], header_size=0, received_headers=0
        ) in (
            BARE_LINE_END,
            "550 5.6.0 Message refused: NUL character in its content (RFC 2045 section 2.7)",
        )

    run(scenario)


# Limits, time and flow ---------------------------------------------------------------


def test_a_command_line_too_long(intake: HeldIntake) -> None:
    async def scenario() -> None:
        client = Client(options(intake))
        client.replies()
        assert client.say("NOOP " + "x" * 600) == [COMMAND_TOO_LONG]
        client.say("EHLO client.example")
        # MAIL may be longer than other commands (SIZE and SMTPUTF8).
        address = "a" * (MAIL_LINE - 28) + "@client.example"  # one octet too many
        assert client.say(f"MAIL FROM:<{address}>") == [COMMAND_TOO_LONG]
        assert client.say(f"MAIL FROM:<{address[1:]}>") == ["250 2.1.0 OK"]
        # One that never ends is not kept, and answered once it does.
        for _ in range(1000):
            client.feed(b"y" * 1000)
            assert len(client.session._buffer) <= 1
        assert client.replies() == []
        assert client.say("", "NOOP") == [COMMAND_TOO_LONG, "250 2.0.0 OK"]

    run(scenario)


def test_the_command_timeout(tmp_path: Path) -> None:
    intake = HeldIntake(tmp_path, command_timeout=timedelta(seconds=30))

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        client = Client(options(intake))
        client.replies()
        session = client.session
        session._check_timeout()  # early: it only waits on
        assert not client.wire.closed and session._timer is not None
        client.say("NOOP")
        assert loop.time() - session._last_input < 1  # a command pushes it back
        session._last_input -= 31
        session._check_timeout()
        assert client.replies() == ["421 4.4.2 Command timeout exceeded, closing connection"]
        assert client.wire.closed

    run(scenario)


def test_a_client_that_does_not_read_its_replies_is_not_read(intake: HeldIntake) -> None:
    async def scenario() -> None:
        client = Client(options(intake))
        client.session.pause_writing()
        assert not client.wire.reading
        client.session.resume_writing()
        assert client.wire.reading
        client.ready()
        intake.gate = asyncio.get_running_loop().create_future()
        client.feed(b"x\r\n.\r\n")
        client.session.pause_writing()
        client.session.resume_writing()
        assert not client.wire.reading  # still storing the message
        intake.gate.set_result(None)
        await settle()
        assert client.wire.reading

    run(scenario)


def test_a_client_closing_its_side_still_gets_the_reply_due(intake: HeldIntake) -> None:
    async def scenario() -> None:
        client = Client(options(intake))
        client.ready()
        intake.gate = asyncio.get_running_loop().create_future()
        client.feed(b"x\r\n.\r\nQUIT\r\n")
        assert client.session.eof_received() is True  # kept half open
        intake.gate.set_result(None)
        await settle()
        assert client.codes() == ["250", "221"]
        assert client.wire.closed

    run(scenario)


def test_starttls_drops_what_was_pipelined_behind_it(intake: HeldIntake) -> None:
    async def scenario() -> None:
        client = Client(options(intake, tls_context=ssl.create_default_context()))
        client.say("EHLO client.example")
        client.feed(b"STARTTLS\r\nMAIL FROM:<injected@evil.example>\r\n")
        assert client.replies() == ["220 2.0.0 Ready to start TLS"]
        assert not client.wire.reading and client.session._buffer == b""
        client.feed(b"RCPT TO:<a@example.com>\r\n")  # read before the switch: dropped too
        assert client.replies() == [] and client.session.sender is None
        await settle()  # no TLS on this fake wire: the handshake fails, and it closes
        assert client.wire.closed

    run(scenario)


def test_connections_over_the_limit_per_client_get_421(tmp_path: Path) -> None:
    intake = HeldIntake(tmp_path, connections_per_client=1)
    changed: list[int] = []
    shared = options(intake, changed=lambda: changed.append(1))

    async def scenario() -> None:
        first = Client(shared)
        second = Client(shared)
        other = Client(shared, peer=("192.0.2.8", 1))
        assert second.replies() == [
            "421 4.7.0 Too many connections from your host, try again later"
        ]
        assert second.wire.closed
        assert shared.sessions == {first.session, other.session}
        first.session.connection_lost(None)
        assert shared.sessions == {other.session} and changed
        assert Client(shared).replies()[0].startswith("220 ")

    run(scenario)


def test_lmtp(tmp_path: Path) -> None:
    intake = HeldIntake(tmp_path, lmtp=True)

    async def scenario() -> None:
        client = Client(options(intake))
        assert client.replies() == ["220 mx.example.com LMTP mailsim"]
        assert client.say("EHLO client.example")[0].startswith("500 5.5.2 ")
        assert client.say("HELO client.example")[0].startswith("500 5.5.2 ")
        assert client.say("MAIL FROM:<s@client.example>")[0].startswith("503 5.5.1 ")
        assert client.say("LHLO client.example")[-1] == "250 ENHANCEDSTATUSCODES"
        client.say("MAIL FROM:<s@client.example>", "RCPT TO:<a@example.com>")
        client.say("RCPT TO:<b@example.com>", "DATA")
        client.feed(b"x\r\n.\r\n")
        await settle()
        assert client.replies() == ["250 2.1.5 <a@example.com> OK", "250 2.1.5 <b@example.com> OK"]
        assert intake.messages[0]["with_"] == "LMTP"

    run(scenario)


def test_the_help_of_each_protocol(tmp_path: Path) -> None:
    smtp = options(HeldIntake(tmp_path / "s"), tls_context=ssl.create_default_context())
    lmtp = options(HeldIntake(tmp_path / "l", lmtp=True))
    assert smtp.help.endswith(": DATA EHLO HELO HELP MAIL NOOP QUIT RCPT RSET STARTTLS VRFY")
    assert lmtp.help.endswith(": DATA HELP LHLO MAIL NOOP QUIT RCPT RSET VRFY")
